"""``muster join``, ``muster force-leave`` and ``muster keyring`` (Consul's command texts)."""

from __future__ import annotations

import json

from muster.api import ConsulError
from muster.cli.flags import FlagSet, add_http_flags
from muster.cli.ui import UI, api_errors, make_client, parse_or_usage

__all__ = ["force_leave", "join", "keyring"]


def join(ui: UI, args: list[str]) -> int:
    fs = FlagSet("Usage: muster join [options] address ...\n\n  Tells a running agent to join the cluster by specifying at least one existing member.")
    add_http_flags(fs, server=False)
    fs.add("wan", "bool", False, "Joins a server to another server in the WAN pool.")
    p = parse_or_usage(ui, fs, args)
    if not p.args:
        ui.err("At least one address to join must be specified.")
        ui.err(fs.help_text().rstrip("\n"))
        return 1
    client = make_client(ui, p)
    joined = 0
    for addr in p.args:
        try:
            client._call("PUT", f"/v1/agent/join/{addr}", [("wan", "1")] if p["wan"] else [])
            joined += 1
        except ConsulError as err:
            ui.err(f"Error joining address '{addr}': {err}")
    if joined == 0:
        return 1
    ui.out(f"Successfully joined cluster by contacting {joined} nodes.")
    return 0


def force_leave(ui: UI, args: list[str]) -> int:
    fs = FlagSet("Usage: muster force-leave [options] name\n\n  Forces a member of the cluster to enter the \"left\" state.")
    add_http_flags(fs, server=False)
    fs.add("prune", "bool", False, "Remove agent forcibly from list of members")
    fs.add("wan", "bool", False, "Exclusively leave the agent from the WAN serf pool.")
    p = parse_or_usage(ui, fs, args)
    if len(p.args) != 1:
        ui.err("A single node name must be specified to force leave.")
        ui.err(fs.help_text().rstrip("\n"))
        return 1
    client = make_client(ui, p)
    params = [("prune", "1")] if p["prune"] else []
    with api_errors(ui, "Error force leaving"):
        client._call("PUT", f"/v1/agent/force-leave/{p.args[0]}", params)
    return 0


def keyring(ui: UI, args: list[str]) -> int:
    fs = FlagSet("Usage: muster keyring [options]\n\n  Manages encryption keys used for gossip messages.")
    add_http_flags(fs, server=False)
    fs.add("install", "str", "", "Install a new encryption key.")
    fs.add("use", "str", "", "Change the primary encryption key.")
    fs.add("remove", "str", "", "Remove the given key from the cluster.")
    fs.add("list", "bool", False, "List all keys currently in use within the cluster.")
    fs.add("list-primary", "bool", False, "List all primary keys currently in use within the cluster.")
    p = parse_or_usage(ui, fs, args)
    actions = [a for a in ("install", "use", "remove") if p[a]] + [a for a in ("list", "list-primary") if p[a]]
    if len(actions) != 1:
        ui.err("Exactly one keyring action may be specified")
        return 1
    client = make_client(ui, p)
    action = actions[0]
    with api_errors(ui, "error"):
        if action in ("list", "list-primary"):
            ui.out("==> Gathering installed encryption keys...")
            pools = client._call("GET", "/v1/operator/keyring").json()
            for pool in pools:
                ui.out("")
                ui.out(f"{'WAN' if pool['WAN'] else 'LAN'}:")
                keys = pool["PrimaryKeys"] if action == "list-primary" else pool["Keys"]
                for key, count in sorted(keys.items()):
                    ui.out(f"  {key} [{count}/{pool['NumNodes']}]")
            return 0
        method = {"install": "POST", "use": "PUT", "remove": "DELETE"}[action]
        verb = {"install": "Installing new gossip encryption key", "use": "Changing primary gossip encryption key", "remove": "Removing gossip encryption key"}[action]
        ui.out(f"==> {verb}...")
        client._call(method, "/v1/operator/keyring", (), json.dumps({"Key": p[action]}).encode())
    return 0
