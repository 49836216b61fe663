"""``muster monitor [-log-level=LEVEL] [-log-json]``: follow an agent's log as ``consul monitor``.

Lines are printed as the agent writes them.  Interrupting (Ctrl-C) ends the command with exit
0; the agent ending the stream (it stopped or crashed) prints Consul's notice and exits 1; a
bad level is refused by the agent before any line (``Error starting monitor: ...``, exit 1).
"""

from __future__ import annotations

import signal

from muster.api import ConsulError
from muster.cli.flags import FlagSet, add_http_flags
from muster.cli.ui import UI, make_client, parse_or_usage

HELP = (
    "Usage: muster monitor [options]\n\n"
    "  Attaches to a running agent and prints its log lines as they are written. The\n"
    "  monitor may ask for a finer level than the agent logs at (DEBUG while the agent\n"
    "  logs at INFO) without changing what the agent itself writes."
)

ENDED = "Remote side ended the monitor! This usually means that the\nremote side has exited or crashed."


def monitor(ui: UI, args: list[str]) -> int:
    fs = FlagSet(HELP)
    fs.add("log-level", "string", "INFO", "Log level of the agent.")
    fs.add("log-json", "bool", False, "Output logs in JSON format.")
    add_http_flags(fs, server=False)
    p = parse_or_usage(ui, fs, args)
    client = make_client(ui, p)
    # Interrupting is how a monitor ends: take SIGINT even when this process was started with
    # it ignored (a background job of a non-interactive shell), as Consul's signal.Notify does;
    # otherwise the CLI would hang until the agent logs again or goes away.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stream = client.agent_monitor(p["log-level"], log_json=p["log-json"])
    try:
        try:
            first = next(stream)
        except StopIteration:
            first = None
        except ConsulError as err:
            ui.err(f"Error starting monitor: {err}")
            return 1
        if first is not None:
            ui.out(first)
            for line in stream:
                ui.out(line)
        ui.out("")
        ui.out(ENDED)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stream.close()
