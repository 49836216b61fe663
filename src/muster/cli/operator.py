"""``muster operator raft ...`` and ``muster snapshot ...`` (docs/compat/cli.md#commands-and-what-they-print).

``list-peers`` prints Consul's table (Node, ID, Address, State, Voter, RaftProtocol, Commit
Index, Trails Leader By); ``snapshot save`` verifies the archive it received before reporting
success; ``snapshot inspect`` reads a local file only and prints the meta data and a per-table
summary of the state it contains.
"""

from __future__ import annotations

import os
from typing import Any

from muster.cli.flags import FlagSet, add_http_flags
from muster.cli.ui import UI, api_errors, make_client, parse_or_usage

__all__ = [
    "raft_list_peers",
    "raft_remove_peer",
    "raft_transfer_leader",
    "snapshot_inspect",
    "snapshot_restore",
    "snapshot_save",
]


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]


def format_peers(conf: dict[str, Any]) -> list[str]:
    servers = conf.get("Servers") or []
    leader_index = max((int(s.get("LastIndex", 0)) for s in servers if s.get("Leader")), default=0)
    rows = [["Node", "ID", "Address", "State", "Voter", "RaftProtocol", "Commit Index", "Trails Leader By"]]
    for s in servers:
        last = int(s.get("LastIndex", 0))
        trails = "-" if s.get("Leader") else f"{max(0, leader_index - last)} commits"
        rows.append(
            [
                str(s.get("Node", "")),
                str(s.get("ID", "")),
                str(s.get("Address", "")),
                "leader" if s.get("Leader") else "follower",
                str(bool(s.get("Voter"))).lower(),
                str(s.get("ProtocolVersion", "3")),
                str(last),
                trails,
            ]
        )
    return _table(rows)


def raft_list_peers(ui: UI, args: list[str]) -> int:
    fs = FlagSet("Usage: muster operator raft list-peers [options]\n\n  Displays the current Raft peer configuration.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    client = make_client(ui, p)
    with api_errors(ui, "Error getting peers"):
        conf = client.operator_raft_configuration(stale=bool(p["stale"]) if p.is_set("stale") else False)
    for line in format_peers(conf):
        ui.out(line)
    return 0


def raft_remove_peer(ui: UI, args: list[str]) -> int:
    fs = FlagSet("Usage: muster operator raft remove-peer [options]\n\n  Remove the Consul server with given -id from the Raft configuration.")
    add_http_flags(fs)
    fs.add("id", "str", "", "The ID to remove from the Raft configuration.")
    fs.add("address", "str", "", "The address to remove from the Raft configuration (IP:port).")
    p = parse_or_usage(ui, fs, args)
    pid, addr = str(p["id"] or ""), str(p["address"] or "")
    if bool(pid) == bool(addr):
        ui.err("Error removing peer: Must specify exactly one of -id or -address")
        return 1
    client = make_client(ui, p)
    params = [("id", pid)] if pid else [("address", addr)]
    with api_errors(ui, "Error removing peer"):
        client._call("DELETE", "/v1/operator/raft/peer", params)
    ui.out(f'Removed peer with id "{pid}"' if pid else f'Removed peer with address "{addr}"')
    return 0


def raft_transfer_leader(ui: UI, args: list[str]) -> int:
    fs = FlagSet("Usage: muster operator raft transfer-leader [options]\n\n  Transfer raft leadership to another server.")
    add_http_flags(fs)
    fs.add("id", "str", "", "The ID of the server to transfer leadership to (default: the most caught-up).")
    p = parse_or_usage(ui, fs, args)
    client = make_client(ui, p)
    params = [("id", str(p["id"]))] if p["id"] else []
    with api_errors(ui, "Error transferring leadership"):
        client._call("POST", "/v1/operator/raft/transfer-leader", params)
    ui.out("Success: leadership transferred.")
    return 0


def snapshot_save(ui: UI, args: list[str]) -> int:
    from muster.http.operator import read_archive

    fs = FlagSet("Usage: muster snapshot save [options] FILE\n\n  Retrieves an atomic, point-in-time snapshot of the state of the servers.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if len(p.args) != 1:
        ui.err("This command takes one argument: <file>")
        return 1
    client = make_client(ui, p)
    params = [("stale", "")] if p.is_set("stale") and p["stale"] else []
    with api_errors(ui, "Error saving snapshot"):
        resp = client._call("GET", "/v1/snapshot", params, timeout=300)
    try:
        meta, _state = read_archive(resp.body)
    except Exception as err:  # noqa: BLE001 - any verification failure is reported, not raised
        ui.err(f"Error verifying snapshot file: {err}")
        return 1
    path = p.args[0]
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(resp.body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    ui.out(f"Saved and verified snapshot to index {meta.get('Index', 0)}")
    return 0


def snapshot_restore(ui: UI, args: list[str]) -> int:
    fs = FlagSet("Usage: muster snapshot restore [options] FILE\n\n  Restores an atomic, point-in-time snapshot of the state of the servers.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if len(p.args) != 1:
        ui.err("This command takes one argument: <file>")
        return 1
    try:
        with open(p.args[0], "rb") as f:
            data = f.read()
    except OSError as err:
        ui.err(f"Error opening snapshot file: {err}")
        return 1
    client = make_client(ui, p)
    with api_errors(ui, "Error restoring snapshot"):
        client._call("PUT", "/v1/snapshot", (), data, timeout=300)
    ui.out("Restored snapshot")
    return 0


def snapshot_inspect(ui: UI, args: list[str]) -> int:
    from muster.errors import MusterError
    from muster.http.operator import read_archive
    from muster.state.store import StateStore

    fs = FlagSet("Usage: muster snapshot inspect FILE\n\n  Displays information about a snapshot file on disk.")
    p = parse_or_usage(ui, fs, args)
    if len(p.args) != 1:
        ui.err("This command takes one argument: <file>")
        return 1
    try:
        with open(p.args[0], "rb") as f:
            meta, state = read_archive(f.read())
        store = StateStore()
        store.restore(state)
    except (OSError, MusterError) as err:
        ui.err(f"Error inspecting snapshot: {err}")
        return 1
    for line in _table([[k, str(meta.get(k, ""))] for k in ("ID", "Size", "Index", "Term", "Version")]):
        ui.out(line)
    ui.out("")
    rows = [["Type", "Count"]] + [[t, str(n)] for t, n in sorted(store.summary().items())]
    for line in _table(rows):
        ui.out(line)
    return 0
