"""``muster debug``: record a debugging bundle of an agent, as ``consul debug`` does.

Flags and texts are Consul's (``command/debug/debug.go``): ``-interval`` (30s, at least 5s),
``-duration`` (5m, at least 10s, not shorter than the interval; 2s of grace are added so the
last interval is captured), ``-output`` (``consul-debug-<UTC time>``; the directory must not
exist), ``-capture`` (repeatable: ``metrics``, ``logs``, ``host``, ``agent``, ``members``;
``cluster`` is the old name of ``members``; everything by default), ``-archive`` (true: the
directory becomes ``<output>.tar.gz`` and is removed).

The bundle: ``index.json`` (format version, agent version, interval, duration, targets),
``agent.json`` (``/v1/agent/self``), ``host.json`` (``/v1/agent/host``), ``members.json``
(``/v1/agent/members?wan=1``), ``metrics.json`` (``/v1/agent/metrics`` sampled at the start and
every interval, one JSON document per line), ``consul.log`` (the agent's log lines at TRACE
through ``/v1/agent/monitor``), ``listpeers.json`` (the Raft configuration as ``operator raft
list-peers`` prints it, the file name Consul uses) and ``raft.json`` (the same configuration as
JSON, a Muster addition).  ``pprof`` is accepted and skipped with a warning: a Muster agent has no
Go profiles.  Interrupting (Ctrl-C) stops the capture early and still writes the bundle.

Redaction, before anything reaches the disk: values of JSON keys naming a token, a secret, a
private key, a password or the gossip encryption key become ``hidden``; in log lines a
``token=`` query parameter, an ``X-Consul-Token`` header and a ``Bearer`` credential become
``<hidden>``; and the token this command itself uses never appears anywhere.  (The agent's own
endpoints return no secrets: ``/v1/agent/self``'s ``DebugConfig`` is an allow-list.)
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

from muster.api import Client, ConsulError
from muster.cli.flags import FlagSet, add_http_flags
from muster.cli.operator import format_peers
from muster.cli.ui import UI, make_client, parse_or_usage
from muster.durations import format_duration_ns

HELP = """Usage: muster debug [options]

  Monitors a Muster agent for the specified period of time, recording
  information about the agent, cluster, and environment to an archive
  written to the specified path.

  If ACLs are enabled, an 'operator:read' token must be supplied in order
  to perform this operation.

      $ muster debug -interval=20s -duration=1m
      $ muster debug -capture metrics -capture agent
      $ muster debug -output=/foo/bar/my-debugging -archive=false

  Sensitive material such as ACL tokens is redacted automatically, but
  review the data within the archive before transmitting it."""

SECOND = 1_000_000_000
INTERVAL = 30 * SECOND
DURATION = 5 * 60 * SECOND
GRACE = 2 * SECOND
MIN_INTERVAL = 5 * SECOND
MIN_DURATION = 10 * SECOND
PROTOCOL_VERSION = 1
ARCHIVE_EXT = ".tar.gz"
TARGETS = ("metrics", "logs", "host", "agent", "members")
ALLOWED = frozenset(TARGETS) | {"pprof", "cluster"}

_SECRET_KEY = re.compile(r"token|secret|private|password|encrypt", re.IGNORECASE)
_TOKEN_PARAM = re.compile(r"((?:^|[?&\s;])token=)[^&\s\"']*", re.IGNORECASE)
_TOKEN_HEADER = re.compile(r"(X-Consul-Token[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[^\s\"',}]+", re.IGNORECASE)


class Redactor:
    """Removes secrets from what the bundle stores (see the module docstring)."""

    def __init__(self, own_token: str) -> None:
        self.own_token = own_token

    def text(self, s: str) -> str:
        s = _TOKEN_PARAM.sub(r"\1<hidden>", s)
        s = _TOKEN_HEADER.sub(r"\1<hidden>", s)
        s = _BEARER.sub(r"\1<hidden>", s)
        if self.own_token:
            s = s.replace(self.own_token, "<hidden>")
        return s

    def json(self, obj: Any) -> Any:
        if isinstance(obj, dict):
            return {
                k: ("hidden" if _SECRET_KEY.search(k) and isinstance(v, str) and v else self.json(v))
                for k, v in obj.items()
            }
        if isinstance(obj, list):
            return [self.json(v) for v in obj]
        if isinstance(obj, str):
            return self.text(obj)
        return obj


class Bundle:
    """The output directory; every write goes through the redactor."""

    def __init__(self, path: Path, redact: Redactor) -> None:
        self.path = path
        self.redact = redact
        self.lock = threading.Lock()

    def write_json(self, name: str, obj: Any) -> None:
        (self.path / name).write_text(json.dumps(self.redact.json(obj), indent="\t"), encoding="utf-8")

    def append_line(self, name: str, line: str) -> None:
        with self.lock, open(self.path / name, "a", encoding="utf-8") as f:
            f.write(self.redact.text(line) + "\n")

    def write_text(self, name: str, text: str) -> None:
        (self.path / name).write_text(self.redact.text(text), encoding="utf-8")


def _get(client: Client, path: str, params: list[tuple[str, str]] | None = None) -> Any:
    return client._call("GET", path, params or []).json()


def _archive(output: Path) -> Path:
    """``<output>.tar.gz`` holding ``<basename>/...``, written to a temporary name first; the
    directory is removed once the archive is complete."""
    target = output.with_name(output.name + ARCHIVE_EXT)
    tmp = output.with_name(output.name + ARCHIVE_EXT + ".tmp")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(str(output), arcname=output.name)
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    shutil.rmtree(output)
    return target


def debug(ui: UI, args: list[str]) -> int:
    fs = FlagSet(HELP)
    fs.add("capture", "list", None, "One or more types of information to capture: " + ", ".join(TARGETS) + ".")
    fs.add("interval", "duration", INTERVAL, "The interval in which to capture dynamic information such as telemetry.")
    fs.add("duration", "duration", DURATION, "The total time to record information.")
    fs.add("archive", "bool", True, "Whether the files are archived and compressed (else the directory is left).")
    fs.add(
        "output",
        "string",
        "consul-debug-" + time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime()),
        "The path to the compressed archive that will be created with the information after collection.",
    )
    add_http_flags(fs, server=False)
    p = parse_or_usage(ui, fs, args)
    if p.args:
        ui.err("==> debug: Too many arguments provided, expected 0")
        return 1
    client = make_client(ui, p)
    interval, duration = int(p["interval"]), int(p["duration"])
    output = Path(str(p["output"]))
    capture = list(p["capture"] or [])

    def failed(msg: str) -> int:
        ui.err(f"==> Capture validation failed: {msg}")
        return 1

    if duration < MIN_DURATION:
        return failed(f"duration must be longer than {format_duration_ns(MIN_DURATION)}")
    if interval < MIN_INTERVAL:
        # Consul's message names the minimum duration here, not the minimum interval.
        return failed(f"interval must be longer than {format_duration_ns(MIN_DURATION)}")
    if duration < interval:
        return failed(f"duration ({format_duration_ns(duration)}) must be longer than interval ({format_duration_ns(interval)})")
    try:
        self_info = _get(client, "/v1/agent/self")
    except ConsulError as err:
        return failed(f"error querying target agent: {err}. verify connectivity and agent address")
    version = str((self_info.get("Config") or {}).get("Version", ""))
    if not capture:
        capture = list(TARGETS)
    for t in capture:
        if t not in ALLOWED:
            return failed(f"target not found: {t}")
    if "pprof" in capture:
        capture = [t for t in capture if t != "pprof"]
        ui.err("[WARN] Unable to capture pprof: a Muster agent has no Go runtime profiles.")
    if output.exists():
        return failed(f"output directory already exists: {output}")
    try:
        output.mkdir(parents=True, mode=0o755)
    except OSError as err:
        return failed(f"could not create output directory: {err}")
    wanted = set(capture) | ({"members"} if "cluster" in capture else set())
    bundle = Bundle(output, Redactor(client.token))
    shown = str(output) + (ARCHIVE_EXT if p["archive"] else "")

    ui.out("==> Starting debugger and capturing static information...")
    ui.out(f"     Agent Version: '{version}'")
    ui.out(f"          Interval: '{format_duration_ns(interval)}'")
    ui.out(f"          Duration: '{format_duration_ns(duration)}'")
    ui.out(f"            Output: '{shown}'")
    ui.out(f"           Capture: '{', '.join(capture)}'")
    duration += GRACE

    static = (("host", "/v1/agent/host", None), ("agent", "/v1/agent/self", None), ("members", "/v1/agent/members", [("wan", "1")]))
    for target, path, params in static:
        if target in wanted:
            try:
                bundle.write_json(f"{target}.json", _get(client, path, params))
            except ConsulError as err:
                ui.err(f"Static capture failed: {err}")

    # Interrupting stops the capture; the bundle is still written (as Consul does).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stops: list[Any] = []
    log_thread: threading.Thread | None = None
    if "logs" in wanted:
        (output / "consul.log").touch()

        def capture_logs() -> None:
            try:
                for line in client.agent_monitor("TRACE", on_open=stops.append):
                    bundle.append_line("consul.log", line)
            except ConsulError as err:
                ui.err(f"==> Error encountered during collection: {err}")

        log_thread = threading.Thread(target=capture_logs, name="debug-logs", daemon=True)
        log_thread.start()

    started = time.monotonic()
    deadline = started + duration / SECOND
    try:
        if "metrics" in wanted:
            n = 0
            ui.out(f"==> Beginning capture interval {_now()} ({n})")
            while True:
                try:
                    sample = _get(client, "/v1/agent/metrics")
                    bundle.append_line("metrics.json", json.dumps(bundle.redact.json(sample), separators=(",", ":")))
                    ui.out(f"==> Capture successful {_now()} ({n})")
                except ConsulError as err:
                    ui.err(f"==> Error encountered during collection: {err}")
                n += 1
                nxt = started + n * interval / SECOND
                if nxt >= deadline:
                    break
                time.sleep(max(0.0, nxt - time.monotonic()))
        if "logs" in wanted:
            time.sleep(max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        ui.err("==> Error encountered during collection: stopping collection due to shutdown signal")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for stop in stops:
            stop()
        if log_thread is not None:
            log_thread.join(timeout=10)

    index = {
        "Version": PROTOCOL_VERSION,
        "AgentVersion": version,
        "Interval": format_duration_ns(interval),
        "Duration": format_duration_ns(duration),
        "Targets": capture,
    }
    bundle.write_json("index.json", index)
    try:
        conf = _get(client, "/v1/operator/raft/configuration")
        bundle.write_json("raft.json", conf)
        bundle.write_text("listpeers.json", "\n".join(format_peers(conf)))
    except ConsulError as err:
        ui.err(f"Raft list peers capture failed: Failed to retrieve raft configuration: {err}")
    if p["archive"]:
        try:
            _archive(output)
        except OSError as err:
            ui.err(f"Archive creation failed: {err}")
            return 1
    ui.out(f"     Saved debug archive: {shown}")
    return 0


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d} +0000 UTC"
