#!/bin/sh
# Runs python-consul2's own test suite, unmodified, against `muster agent` (docs/client-suites.md).
#
#   scripts/run-python-consul2-suite.sh SUITE_DIR [pytest args...]
#
# SUITE_DIR holds a checkout of https://github.com/poppyred/python-consul2 (at least tests/;
# its PyPI sdists ship no tests). The suite's conftest starts tests/consul.linux64 (and
# consul.aarch64 on arm64): both are replaced by tests/clientsuites/shim/python_consul2/consul,
# which execs `muster agent` with the same arguments. The client is python-consul2 from PyPI
# (PC2_VERSION, default 0.1.5), installed with the suite's test dependencies into
# SUITE_DIR/.suite-venv; a `consul/` directory in SUITE_DIR would shadow it (the conftest puts
# SUITE_DIR first on sys.path), which is how a checkout's own client is used instead.
# Deselected: the four asyncio tests that call asyncio.sleep(..., loop=loop), which Python >= 3.10
# rejects (tests/clientsuites/python-consul2-deselect.txt).
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
SUITE=$(cd "${1:?usage: $0 SUITE_DIR [pytest args]}" && pwd)
shift
PC2_VERSION=${PC2_VERSION:-0.1.5}
MUSTER_PYTHON=${MUSTER_PYTHON:-$HERE/.venv/bin/python}
export MUSTER_PYTHON
"$MUSTER_PYTHON" -c 'import muster' || { echo "no muster in $MUSTER_PYTHON (run make venv)" >&2; exit 2; }

for arch in linux64 aarch64; do
    cp "$HERE/tests/clientsuites/shim/python_consul2/consul" "$SUITE/tests/consul.$arch"
    chmod +x "$SUITE/tests/consul.$arch"
done

VENV=$SUITE/.suite-venv
if [ ! -x "$VENV/bin/pytest" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "python-consul2==$PC2_VERSION" pytest pytest-httpserver pytest-asyncio pytest-timeout \
        pytest-twisted requests six aiohttp tornado twisted treq
fi

# Paths given after SUITE_DIR (relative to it) narrow the run; without any, all of tests/.
paths=tests
for arg in "$@"; do
    case $arg in -*) ;; *) paths= ;; esac
done

cd "$SUITE"
# The agents the conftest starts run until the fixture's terminate(); timeout bounds the run.
exec timeout "${PC2_TIMEOUT:-1800}" "$VENV/bin/pytest" -p no:cacheprovider -o addopts= --continue-on-collection-errors -o timeout="${PC2_TEST_TIMEOUT:-120}" $paths \
    $(grep -v '^#' "$HERE/tests/clientsuites/python-consul2-deselect.txt" | sed 's/^/--deselect=/') "$@"
