"""``muster watch``: Consul's ``consul watch`` for key, keyprefix, services, nodes, service
and checks views.

Behaviour follows ``command/watch`` and ``api/watch/plan.go``:

* without a handler the current value is printed once as indented JSON and the command
  exits 0 (Consul's watch stops after the first handler call);
* with a handler (``watch -type=key -key=k ./handler.sh``) the handler runs with the JSON
  on stdin and ``CONSUL_INDEX`` in its environment, first for the current value and then
  each time a blocking query returns a changed result; a failing handler stops the watch
  with exit 1;
* errors are retried with Consul's backoff (5 s x failures², at most 180 s).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from types import FrameType
from typing import Any

from muster.api import Client, ConsulError, QueryMeta
from muster.cli.flags import FlagSet, add_http_flags
from muster.cli.format import go_json, go_json_indent, kvpair_go
from muster.cli.lock import child_command, describe_exit
from muster.cli.ui import UI, api_errors, make_client, parse_or_usage
from muster.goparse import parse_bool

__all__ = ["build_fetcher", "watch"]

RETRY_INTERVAL = 5.0
MAX_BACKOFF = 180.0

Fetcher = Callable[[int], tuple[Any, QueryMeta]]


class WatchParamError(Exception):
    """Invalid watch parameters (Consul's ``watch.Parse`` errors)."""


def build_fetcher(client: Client, params: dict[str, Any]) -> Fetcher:
    """The blocking read for one watch type; results are shaped like the Go client's."""
    wtype = params["type"]
    stale = bool(params.get("stale"))

    def need(name: str) -> str:
        value = params.get(name, "")
        if not value:
            raise WatchParamError(f"Must specify a single {name} to watch")
        return str(value)

    def forbid(*names: str) -> None:
        for name in names:
            if params.get(name):
                raise WatchParamError(f"Invalid parameters: [{name}]")

    if wtype == "key":
        key = need("key")
        forbid("prefix", "service", "tag", "passingonly", "state", "name")

        def fetch_key(index: int) -> tuple[Any, QueryMeta]:
            entry, meta = client.kv_get(key, index=index, stale=stale)
            return (kvpair_go(entry) if entry is not None else None), meta

        return fetch_key
    if wtype == "keyprefix":
        prefix = need("prefix")
        forbid("key", "service", "tag", "passingonly", "state", "name")

        def fetch_prefix(index: int) -> tuple[Any, QueryMeta]:
            entries, meta = client.kv_list(prefix, index=index, stale=stale)
            return ([kvpair_go(e) for e in entries] if entries else None), meta

        return fetch_prefix
    if wtype == "services":
        forbid("key", "prefix", "service", "tag", "passingonly", "state", "name")

        def fetch_services(index: int) -> tuple[Any, QueryMeta]:
            return client.catalog_services(index=index)

        return fetch_services
    if wtype == "nodes":
        forbid("key", "prefix", "service", "tag", "passingonly", "state", "name")

        def fetch_nodes(index: int) -> tuple[Any, QueryMeta]:
            return client.catalog_nodes(index=index)

        return fetch_nodes
    if wtype == "service":
        service = need("service")
        forbid("key", "prefix", "state", "name")
        tag = str(params.get("tag", "") or "")
        passing = bool(params.get("passingonly"))

        def fetch_service(index: int) -> tuple[Any, QueryMeta]:
            return client.health_service(service, passing=passing, tag=tag, index=index)

        return fetch_service
    if wtype == "checks":
        forbid("key", "prefix", "tag", "passingonly", "name")
        service = str(params.get("service", "") or "")
        state = str(params.get("state", "") or "")
        if service and state:
            raise WatchParamError("Cannot specify service and state")

        def fetch_checks(index: int) -> tuple[Any, QueryMeta]:
            if service:
                return client.health_checks(service, index=index)
            return client.health_state(state or "any", index=index)

        return fetch_checks
    raise WatchParamError(f"Unsupported watch type: {wtype}")


def watch(ui: UI, args: list[str]) -> int:
    """``watch -type=key|keyprefix|services|nodes|service|checks [...] [handler...]``."""
    fs = FlagSet(
        "Usage: muster watch [options] [child...]\n\n"
        "  Watches for changes in a given data view. If a child process is specified,\n"
        "  it will be invoked with the latest results on changes. Otherwise, the latest\n"
        "  values are dumped to stdout and the watch terminates."
    )
    fs.add("type", "string", "", "Watch type: key, keyprefix, services, nodes, service or checks.")
    fs.add("key", "string", "", "The key to watch (type key).")
    fs.add("prefix", "string", "", "The key prefix to watch (type keyprefix).")
    fs.add("service", "string", "", "The service to watch (type service; optional for checks).")
    fs.add("tag", "string", "", "Service tag to filter on (type service).")
    fs.add("passingonly", "string", "", "Only instances passing all checks: true or false (type service).")
    fs.add("state", "string", "", "Check state to watch (type checks).")
    fs.add("name", "string", "", "Event name (type event).")
    fs.add("shell", "bool", True, "Use a shell to run the handler ($SHELL, default /bin/sh).")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if not p["type"]:
        ui.err("Watch type must be specified")
        ui.err("")
        ui.err(fs.help_text().rstrip("\n"))
        return 1
    params: dict[str, Any] = {"type": p["type"]}
    for name in ("key", "prefix", "service", "tag", "state", "name"):
        if p[name]:
            params[name] = p[name]
    if p["stale"]:
        params["stale"] = True
    if p["passingonly"]:
        try:
            params["passingonly"] = parse_bool(p["passingonly"])
        except ValueError as err:
            ui.err(f"Failed to parse passingonly flag: {err}")
            return 1
    client = make_client(ui, p)
    try:
        fetch = build_fetcher(client, params)
    except WatchParamError as err:
        ui.err(str(err))
        return 1
    with api_errors(ui, "Error querying Consul agent"):
        client.agent_node_name()

    stopped = {"flag": False}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped["flag"] = True
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run(ui, client, fetch, p.args, bool(p["shell"]), p["type"])
    except KeyboardInterrupt:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(ui: UI, client: Client, fetch: Fetcher, handler: list[str], shell: bool, wtype: str) -> int:
    def on_error(err: ConsulError, failures: int) -> float:
        retry = min(RETRY_INTERVAL * failures * failures, MAX_BACKOFF)
        ui.err(f"[ERR] consul.watch: Watch (type: {wtype}) errored: {err}, retry in {int(retry)}s")
        return retry

    for index, result in client.watch(fetch, on_error=on_error):
        if not handler:
            ui.out(go_json_indent(result, "    "))
            return 0
        if not _invoke(ui, handler, shell, index, result):
            return 1
    return 0


def _invoke(ui: UI, handler: list[str], shell: bool, index: int, data: Any) -> bool:
    """Run the handler with the JSON on stdin; False (after printing why) if it failed."""
    env = dict(ui.environ)
    env["CONSUL_INDEX"] = str(index)
    payload = (go_json(data) + "\n").encode("utf-8")
    try:
        proc = subprocess.Popen(child_command(handler, shell, env), env=env, stdin=subprocess.PIPE)
    except OSError as err:
        ui.err(f"Error starting handler: {err}")
        return False
    try:
        assert proc.stdin is not None
        proc.stdin.write(payload)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    rc = proc.wait()
    if rc != 0:
        ui.err(f"Error executing handler: {describe_exit(rc)}")
        return False
    return True
