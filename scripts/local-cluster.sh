#!/usr/bin/env bash
# Start the StatefulSet's three servers on this machine: consul-0..2 on 127.0.0.1/2/3
# (standard ports on each address), data under .local-cluster/, UI on http://127.0.0.1:8500/ui/.
# Ctrl-C stops all three (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
mkdir -p .local-cluster
pids=()
for i in 0 1 2; do
  ip="127.0.0.$((i + 1))"
  "$BIN/muster" agent -server -bootstrap-expect=3 -ui -data-dir=".local-cluster/consul-$i" \
    -bind="$ip" -advertise="$ip" -client="$ip" -node="consul-$i" -dns-port=-1 \
    -retry-join=127.0.0.1 -retry-join=127.0.0.2 -retry-join=127.0.0.3 \
    > ".local-cluster/consul-$i.log" 2>&1 &
  pids+=("$!")
done
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
echo "consul-0..2 starting on 127.0.0.1-3 (logs in .local-cluster/); UI: http://127.0.0.1:8500/ui/"
wait
