"""The ``muster`` CLI's agent, cluster, catalog, services and event commands.

Each function takes the :class:`~muster.cli.ui.UI` and the arguments after the command
name and returns the exit code.  Texts and exit codes follow Consul's ``command/*``
packages (docs/compat/cli.md#commands-and-what-they-print).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from collections.abc import Mapping
from typing import Any

from muster.cli.flags import FlagSet, add_http_flags
from muster.cli.format import format_catalog_nodes, format_catalog_services, format_info, format_members
from muster.cli.ui import UI, api_errors, make_client, parse_or_usage
from muster.goparse import atoi
from muster.version import REVISION, VERSION

__all__ = [
    "agent",
    "catalog_datacenters",
    "catalog_nodes",
    "catalog_services",
    "event",
    "info",
    "keygen",
    "leave",
    "maint",
    "members",
    "reload",
    "services_deregister",
    "services_register",
    "version",
]


def agent(ui: UI, args: list[str]) -> int:
    """``agent``: parse the agent flags (``muster.config``) and run it (``muster.process``)."""
    from muster.config import USAGE, ConfigError, HelpRequested, UsageError, parse_agent_flags

    # The container image sets MUSTER_CONFIG_DIR=/consul/config: like the official Consul
    # image's entrypoint adding -config-dir, it lets a ConfigMap configure the agent while the
    # StatefulSet's args stay exactly the seed's.  Flags given on the command line still win.
    extra_dir = ui.environ.get("MUSTER_CONFIG_DIR", "")
    if extra_dir and os.path.isdir(extra_dir):
        args = [f"-config-dir={extra_dir}", *args]
    try:
        config = parse_agent_flags(args)
    except HelpRequested:
        ui.out(USAGE.rstrip("\n"))
        return 0
    except UsageError as err:
        ui.err(str(err))
        ui.err(USAGE.rstrip("\n"))
        return 1
    except ConfigError as err:
        ui.err(str(err))
        return 1
    from muster.process import run_agent

    return int(run_agent(config, list(args)))


def members(ui: UI, args: list[str]) -> int:
    """``members [-detailed] [-wan] [-status=RE] [-segment=S] [-filter=EXPR]``; exit 2 if none match."""
    fs = FlagSet("Usage: muster members [options]\n\n  Outputs the members of a running agent.")
    fs.add("detailed", "bool", False, "Provides detailed information about nodes.")
    fs.add("wan", "bool", False, "Return the peers in the WAN pool.")
    fs.add("status", "string", ".*", "Filter on the member status (regular expression).")
    fs.add("segment", "string", "_all", "Network segment (accepted for compatibility).")
    fs.add("filter", "string", "", "Filter to use with the request.")
    add_http_flags(fs, server=False)
    p = parse_or_usage(ui, fs, args)
    try:
        re.compile(p["status"])
    except re.error as err:
        ui.err(f"Failed to compile status regexp: {err}")
        return 1
    client = make_client(ui, p)
    with api_errors(ui, "Error retrieving members"):
        result = client.agent_members(wan=p["wan"], segment=p["segment"], filter_expr=p["filter"])
    output = format_members(result, detailed=p["detailed"], status_re=p["status"], segment=p["segment"])
    if output is None:
        return 2
    ui.out(output)
    return 0


def info(ui: UI, args: list[str]) -> int:
    """``info``: the agent's ``Stats`` sections."""
    fs = FlagSet("Usage: muster info [options]\n\n  Provides debugging information for operators.")
    add_http_flags(fs, server=False)
    p = parse_or_usage(ui, fs, args)
    client = make_client(ui, p)
    with api_errors(ui, "Error querying agent"):
        self_info = client.agent_self()
    stats = self_info.get("Stats")
    if not isinstance(stats, Mapping):
        ui.err(f"Agent response did not contain 'Stats' key: {self_info}")
        return 1
    try:
        ui.out(format_info(stats))
    except ValueError as err:
        ui.err(str(err))
        return 1
    return 0


def _no_args(ui: UI, extra: list[str]) -> bool:
    if extra:
        ui.err(f"Too many arguments (expected 0, got {len(extra)})")
        return False
    return True


def catalog_datacenters(ui: UI, args: list[str]) -> int:
    """``catalog datacenters``: one datacenter per line."""
    fs = FlagSet("Usage: muster catalog datacenters [options]\n\n  Lists all known datacenters.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if not _no_args(ui, p.args):
        return 1
    client = make_client(ui, p)
    with api_errors(ui, "Error listing datacenters"):
        dcs = client.catalog_datacenters()
    for dc in dcs:
        ui.out(dc)
    return 0


def catalog_nodes(ui: UI, args: list[str]) -> int:
    """``catalog nodes [-detailed] [-service S] [-near N] [-node-meta k=v] [-filter E]``."""
    fs = FlagSet("Usage: muster catalog nodes [options]\n\n  Lists the nodes registered in a datacenter.")
    fs.add("detailed", "bool", False, "Output detailed information about the nodes.")
    fs.add("filter", "string", "", "Filter to use with the request.")
    fs.add("near", "string", "", "Node name to sort the node list by estimated round-trip time.")
    fs.add("node-meta", "map", None, "Filter nodes with the given key=value pairs (repeatable).")
    fs.add("service", "string", "", "Only nodes providing the given service id or name.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if not _no_args(ui, p.args):
        return 1
    client = make_client(ui, p)
    nodes: list[dict[str, Any]]
    if p["service"]:
        with api_errors(ui, "Error listing nodes for service"):
            instances, _ = client.catalog_service(
                p["service"], node_meta=p["node-meta"], near=p["near"], filter_expr=p["filter"]
            )
        nodes = [
            {
                "ID": s.get("ID", ""),
                "Node": s.get("Node", ""),
                "Address": s.get("Address", ""),
                "Datacenter": s.get("Datacenter", ""),
                "TaggedAddresses": s.get("TaggedAddresses") or {},
                "Meta": s.get("NodeMeta") or {},
            }
            for s in instances
        ]
    else:
        with api_errors(ui, "Error listing nodes"):
            nodes, _ = client.catalog_nodes(node_meta=p["node-meta"], near=p["near"], filter_expr=p["filter"])
    if not nodes:
        ui.err("No nodes match the given query - try expanding your search.")
        return 0
    ui.out(format_catalog_nodes(nodes, detailed=p["detailed"]))
    return 0


def catalog_services(ui: UI, args: list[str]) -> int:
    """``catalog services [-tags] [-node N] [-node-meta k=v]``."""
    fs = FlagSet(
        "Usage: muster catalog services [options]\n\n  Lists the services registered in a datacenter."
    )
    fs.add("node", "string", "", "Node id or name for which to list services.")
    fs.add("node-meta", "map", None, "Filter nodes with the given key=value pairs (repeatable).")
    fs.add("tags", "bool", False, "Display each service's tags as a comma-separated list.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if not _no_args(ui, p.args):
        return 1
    client = make_client(ui, p)
    services: dict[str, list[str]] = {}
    if p["node"]:
        with api_errors(ui, "Error listing services for node"):
            node, _ = client.catalog_node(p["node"], node_meta=p["node-meta"])
        if node:
            for svc in (node.get("Services") or {}).values():
                services.setdefault(str(svc.get("Service", "")), []).extend(svc.get("Tags") or [])
    else:
        with api_errors(ui, "Error listing services"):
            services, _ = client.catalog_services(node_meta=p["node-meta"])
    if not services:
        ui.err("No services match the given query - try expanding your search.")
        return 0
    ui.out(format_catalog_services(services, tags=p["tags"]))
    return 0


def _ci_get(d: Mapping[str, Any], name: str) -> Any:
    """Look a field up the way the agent decodes it: case-insensitive, ``_`` ignored."""
    want = name.lower().replace("_", "")
    for k, v in d.items():
        if str(k).lower().replace("_", "") == want:
            return v
    return None


def _ci_set(d: dict[str, Any], name: str, value: Any) -> None:
    want = name.lower().replace("_", "")
    for k in list(d):
        if str(k).lower().replace("_", "") == want:
            d[k] = value
            return
    d[name] = value


def _parse_service_addr(value: str) -> dict[str, Any]:
    """``api.ParseServiceAddr``: ``host:port`` (or a bare host) -> ``{"Address","Port"}``."""
    host, sep, port = value.rpartition(":")
    if not sep:
        return {"Address": value, "Port": 0}
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return {"Address": host, "Port": atoi(port)}


def _services_from_files(files: list[str]) -> list[dict[str, Any]]:
    """Service definitions from agent config files (JSON or HCL), via ``muster.config``."""
    from muster.config import ConfigError, UsageError, parse_agent_flags

    argv = ["-dev"] + [f"-config-file={f}" for f in files]
    try:
        cfg = parse_agent_flags(argv)
    except (ConfigError, UsageError) as err:
        raise ValueError(str(err)) from None
    return [dict(s) for s in cfg.services]


def services_register(ui: UI, args: list[str]) -> int:
    """``services register FILE...`` or ``services register -name=N [-id -address -port -tag -meta]``."""
    fs = FlagSet(
        "Usage: muster services register [options] [FILE...]\n\n"
        "  Register one or more services with the local agent, from config files (HCL or\n"
        "  JSON) or from flags."
    )
    fs.add("id", "string", "", "ID of the service (defaults to -name).")
    fs.add("name", "string", "", "Name of the service.")
    fs.add("address", "string", "", "Address of the service.")
    fs.add("port", "int", 0, "Port of the service.")
    fs.add("socket", "string", "", "Path to the Unix domain socket of the service.")
    fs.add("meta", "map", None, "Metadata key=value (repeatable).")
    fs.add("tag", "list", None, "Tag to add to the service (repeatable).")
    fs.add("tagged-address", "map", None, "Tagged address key=host:port (repeatable).")
    fs.add("kind", "string", "", "The service's kind.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    tagged: dict[str, Any] = {}
    for k, v in p["tagged-address"].items():
        try:
            tagged[k] = _parse_service_addr(v)
        except ValueError as err:
            ui.err(f"Invalid Tagged Address: {err}")
            return 1
    from_flags: dict[str, Any] = {}
    for key, value in (
        ("Kind", p["kind"]),
        ("ID", p["id"]),
        ("Name", p["name"]),
        ("Address", p["address"]),
        ("Port", p["port"]),
        ("SocketPath", p["socket"]),
        ("Tags", p["tag"]),
        ("Meta", p["meta"]),
        ("TaggedAddresses", tagged),
    ):
        if value:
            from_flags[key] = value
    if not p.args and not p["name"]:
        ui.err("Service registration requires at least one argument or flags.")
        return 1
    if p.args and p["name"]:
        ui.err("Service registration requires arguments or -id, not both.")
        return 1
    svcs: list[dict[str, Any]]
    if p.args:
        try:
            svcs = _services_from_files(p.args)
        except ValueError as err:
            ui.err(f"Error: {err}")
            return 1
        for svc in svcs:
            for key in ("ID", "Name", "Address", "Port", "Kind", "SocketPath"):
                if from_flags.get(key) and not _ci_get(svc, key):
                    _ci_set(svc, key, from_flags[key])
            meta = dict(_ci_get(svc, "Meta") or {})
            meta.update(p["meta"])
            _ci_set(svc, "Meta", meta)
            addrs = dict(_ci_get(svc, "TaggedAddresses") or {})
            addrs.update(tagged)
            _ci_set(svc, "TaggedAddresses", addrs)
            _ci_set(svc, "Tags", list(_ci_get(svc, "Tags") or []) + list(p["tag"]))
    else:
        svcs = [from_flags]
    client = make_client(ui, p)
    for svc in svcs:
        name = _ci_get(svc, "Name") or ""
        with api_errors(ui, f'Error registering service "{name}"'):
            client.agent_service_register(svc)
        ui.out(f"Registered service: {name}")
    return 0


def services_deregister(ui: UI, args: list[str]) -> int:
    """``services deregister FILE...`` or ``services deregister -id=ID``."""
    fs = FlagSet(
        "Usage: muster services deregister [options] [FILE...]\n\n"
        "  Deregister services previously registered with the local agent."
    )
    fs.add("id", "string", "", "ID to delete. This must not be set if arguments are given.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if not p.args and not p["id"]:
        ui.err("Service deregistration requires at least one argument or -id.")
        return 1
    if p.args and p["id"]:
        ui.err("Service deregistration requires arguments or -id, not both.")
        return 1
    svcs: list[dict[str, Any]] = [{"ID": p["id"]}]
    if p.args:
        try:
            svcs = _services_from_files(p.args)
        except ValueError as err:
            ui.err(f"Error: {err}")
            return 1
    client = make_client(ui, p)
    for svc in svcs:
        sid = _ci_get(svc, "ID") or _ci_get(svc, "Name") or ""
        if not sid:
            continue
        with api_errors(ui, f'Error registering service "{_ci_get(svc, "Name") or ""}"'):
            client.agent_service_deregister(str(sid))
        ui.out(f"Deregistered service: {sid}")
    return 0


def event(ui: UI, args: list[str]) -> int:
    """``event -name=N [-node RE] [-service RE] [-tag RE] [PAYLOAD]``: prints ``Event ID: <uuid>``."""
    fs = FlagSet("Usage: muster event [options] [payload]\n\n  Dispatches a custom user event.")
    fs.add("name", "string", "", "Name of the event.")
    fs.add("node", "string", "", "Regular expression to filter on node names.")
    fs.add("service", "string", "", "Regular expression to filter on service instances.")
    fs.add("tag", "string", "", "Regular expression to filter on service tags (requires -service).")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if not p["name"]:
        ui.err("Event name must be specified")
        ui.err("")
        ui.err(fs.help_text().rstrip("\n"))
        return 1
    for flag, label in (("node", "node"), ("service", "service"), ("tag", "tag")):
        if p[flag]:
            try:
                re.compile(p[flag])
            except re.error as err:
                ui.err(f"Failed to compile {label} filter regexp: {err}")
                return 1
    if p["tag"] and not p["service"]:
        ui.err("Cannot provide tag filter without service filter.")
        return 1
    if len(p.args) > 1:
        ui.err("Too many command line arguments.")
        ui.err("")
        ui.err(fs.help_text().rstrip("\n"))
        return 1
    payload = p.args[0].encode("utf-8", errors="surrogateescape") if p.args else b""
    client = make_client(ui, p)
    with api_errors(ui, "Error querying Consul agent"):
        client.agent_node_name()
    with api_errors(ui, "Error firing event"):
        fired = client.event_fire(p["name"], payload, node=p["node"], service=p["service"], tag=p["tag"])
    ui.out(f"Event ID: {fired.get('ID', '')}")
    return 0


def leave(ui: UI, args: list[str]) -> int:
    """``leave``: graceful leave and shutdown of the agent."""
    fs = FlagSet(
        "Usage: muster leave [options]\n\n  Causes the agent to gracefully leave the cluster and shut down."
    )
    add_http_flags(fs, server=False)
    p = parse_or_usage(ui, fs, args)
    if p.args:
        ui.err(f"Error found unexpected args: [{' '.join(p.args)}]")
        ui.out(fs.help_text().rstrip("\n"))
        return 1
    client = make_client(ui, p)
    with api_errors(ui, "Error leaving"):
        client.agent_leave()
    ui.out("Graceful leave complete")
    return 0


def reload(ui: UI, args: list[str]) -> int:
    """``reload``: ask the agent to reload its configuration files."""
    fs = FlagSet("Usage: muster reload [options]\n\n  Causes the agent to reload configurations.")
    add_http_flags(fs, server=False)
    p = parse_or_usage(ui, fs, args)
    client = make_client(ui, p)
    with api_errors(ui, "Error reloading"):
        client.agent_reload()
    ui.out("Configuration reload triggered")
    return 0


def maint(ui: UI, args: list[str]) -> int:
    """``maint [-enable|-disable] [-reason R] [-service ID]``; without flags, list what is in maintenance."""
    fs = FlagSet(
        "Usage: muster maint [options]\n\n"
        "  Places a node or service into maintenance mode (an extra critical check). With no\n"
        "  arguments the agent's maintenance status is shown."
    )
    fs.add("enable", "bool", False, "Enable maintenance mode.")
    fs.add("disable", "bool", False, "Disable maintenance mode.")
    fs.add("reason", "string", "", "Text describing the maintenance reason.")
    fs.add("service", "string", "", "Control maintenance mode for a specific service ID.")
    add_http_flags(fs, server=False)
    p = parse_or_usage(ui, fs, args)
    if p["enable"] and p["disable"]:
        ui.err("Only one of -enable or -disable may be provided")
        return 1
    if not p["enable"] and p["reason"]:
        ui.err("Reason may only be provided with -enable")
        return 1
    if not p["enable"] and not p["disable"] and p["service"]:
        ui.err("Service requires either -enable or -disable")
        return 1
    client = make_client(ui, p)
    with api_errors(ui, "Error querying Consul agent"):
        node_name = client.agent_node_name()
    service = p["service"]
    if not p["enable"] and not p["disable"]:
        with api_errors(ui, "Error getting checks"):
            checks = client.agent_checks()
        for check_id in sorted(checks):
            check = checks[check_id]
            if check_id == "_node_maintenance":
                ui.out("Node:")
                ui.out("  Name:   " + node_name)
                ui.out("  Reason: " + str(check.get("Notes", "")))
                ui.out("")
            elif check_id.startswith("_service_maintenance:"):
                ui.out("Service:")
                ui.out("  ID:     " + str(check.get("ServiceID", "")))
                ui.out("  Reason: " + str(check.get("Notes", "")))
                ui.out("")
        return 0
    verb = "enabling" if p["enable"] else "disabling"
    state = "enabled" if p["enable"] else "disabled"
    with api_errors(ui, f"Error {verb} {'service' if service else 'node'} maintenance"):
        if service:
            client.agent_service_maintenance(service, bool(p["enable"]), p["reason"])
        else:
            client.agent_maintenance(bool(p["enable"]), p["reason"])
    if service:
        ui.out(f'Service maintenance is now {state} for "{service}"')
    else:
        ui.out(f"Node maintenance is now {state}")
    return 0


def keygen(ui: UI, args: list[str]) -> int:
    """``keygen``: 32 random bytes, standard base64 (a gossip encryption key)."""
    fs = FlagSet("Usage: muster keygen\n\n  Generates a new encryption key for gossip (-encrypt).")
    p = parse_or_usage(ui, fs, args)
    if p.args:
        ui.err(f"Too many arguments (expected 0, got {len(p.args)})")
        return 1
    ui.out(base64.b64encode(secrets.token_bytes(32)).decode("ascii"))
    return 0


def version(ui: UI, args: list[str]) -> int:
    """``version [-format=text|json]``: the Consul version Muster speaks, then Muster's own."""
    from muster import __version__

    fs = FlagSet("Usage: muster version [options]\n\n  Prints the version.")
    fs.add("format", "string", "text", "Output format: text or json.")
    p = parse_or_usage(ui, fs, args)
    if p["format"] == "json":
        data = {
            "Version": VERSION,
            "Revision": REVISION,
            "Prerelease": "",
            "FIPS": "",
            "BuildDate": "",
            "RPC": {"Default": 2, "Min": 2, "Max": 3},
            "Muster": __version__,
        }
        ui.out(json.dumps(data, indent=2))
        return 0
    if p["format"] != "text":
        ui.err(f'Invalid format "{p["format"]}": must be one of text, json')
        return 1
    ui.out(f"Consul v{VERSION}")
    ui.out(f"Revision {REVISION}")
    ui.out(f"Muster v{__version__}")
    ui.out(
        "Protocol 2 spoken by default, understands 2 to 3 "
        "(agent will automatically use protocol >2 when speaking to compatible agents)"
    )
    return 0
