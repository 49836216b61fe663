"""The ``muster`` command line: Consul's CLI, command for command.

``muster agent ...`` runs the agent; every other command talks to an agent's HTTP API
through :mod:`muster.api` (``CONSUL_HTTP_ADDR``/``-http-addr``, ``CONSUL_HTTP_TOKEN``/
``-token``...).  Flags are Go-style (``-flag=value``, single dash), outputs and exit codes
follow Consul (docs/compat/cli.md#exit-codes): 0 success, 1 error (message on stderr), 2 for ``members``
with no match.  No command prints a traceback: unexpected failures are reported as one
line on stderr with exit 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from muster.cli import commands
from muster.cli.acl import ACL_COMMANDS, ACL_GROUPS
from muster.cli.config_entries import CONFIG_HELP, config_delete, config_list, config_read, config_write
from muster.cli.debug import debug
from muster.cli.kv import KV_HELP, kv_delete, kv_export, kv_get, kv_import, kv_put
from muster.cli.kvhistory import kv_history, kv_rollback
from muster.cli.lock import lock
from muster.cli.membership import force_leave, join, keyring
from muster.cli.monitor import monitor
from muster.cli.operator import (
    raft_list_peers,
    raft_remove_peer,
    raft_transfer_leader,
    snapshot_inspect,
    snapshot_restore,
    snapshot_save,
)
from muster.cli.rtt import rtt
from muster.cli.tls import tls_ca_create, tls_cert_create
from muster.cli.ui import UI, UsageExit
from muster.cli.watch import watch

__all__ = ["COMMANDS", "main", "run"]

Command = Callable[[UI, list[str]], int]

#: command path -> (synopsis, implementation)
COMMANDS: dict[str, tuple[str, Command]] = {
    "agent": ("Runs a Muster (Consul-compatible) agent", commands.agent),
    "catalog datacenters": ("Lists all known datacenters", commands.catalog_datacenters),
    "catalog nodes": ("Lists all nodes in the given datacenter", commands.catalog_nodes),
    "catalog services": ("Lists all registered services in a datacenter", commands.catalog_services),
    "config delete": ("Delete a centralized config entry", config_delete),
    "config list": ("List centralized config entries of a given kind", config_list),
    "config read": ("Read a centralized config entry", config_read),
    "config write": ("Create or update a centralized config entry", config_write),
    "debug": ("Records a debugging archive for operators", debug),
    "event": ("Fire a new event", commands.event),
    "info": ("Provides debugging information for operators.", commands.info),
    "join": ("Tell Consul agent to join cluster", join),
    "force-leave": ("Forces a member of the cluster to enter the \"left\" state", force_leave),
    "keyring": ("Manages gossip layer encryption keys", keyring),
    "keygen": ("Generates a new encryption key", commands.keygen),
    "kv delete": ("Removes data from the KV store", kv_delete),
    "kv export": ("Exports a tree from the KV store as JSON", kv_export),
    "kv get": ("Retrieves or lists data from the KV store", kv_get),
    "kv history": ("Lists the recorded versions of a key (Muster extension)", kv_history),
    "kv import": ("Imports a tree stored as JSON to the KV store", kv_import),
    "kv put": ("Sets or updates data in the KV store", kv_put),
    "kv rollback": ("Writes an earlier version of a key back (Muster extension)", kv_rollback),
    "leave": ("Gracefully leaves the Consul cluster and shuts down", commands.leave),
    "lock": ("Execute a command holding a lock", lock),
    "maint": ("Controls node or service maintenance mode", commands.maint),
    "members": ("Lists the members of a Consul cluster", commands.members),
    "monitor": ("Stream logs from a Muster agent", monitor),
    "operator raft list-peers": ("Display the current Raft peer configuration", raft_list_peers),
    "operator raft remove-peer": ("Remove a Consul server from the Raft configuration", raft_remove_peer),
    "operator raft transfer-leader": ("Transfer raft leadership to another server", raft_transfer_leader),
    "snapshot inspect": ("Displays information about a Consul snapshot file", snapshot_inspect),
    "snapshot restore": ("Restores snapshot of Consul server state", snapshot_restore),
    "snapshot save": ("Saves snapshot of Consul server state", snapshot_save),
    "reload": ("Triggers the agent to reload configuration files", commands.reload),
    "rtt": ("Estimates network round trip time between nodes", rtt),
    "services deregister": ("Deregister services with the local agent", commands.services_deregister),
    "services register": ("Register services with the local agent", commands.services_register),
    "tls ca create": ("Create a new Consul CA", tls_ca_create),
    "tls cert create": ("Create a new certificate", tls_cert_create),
    "version": ("Prints the Muster version", commands.version),
    "watch": ("Watch for changes in Consul", watch),
    **ACL_COMMANDS,
}

_GROUPS: dict[str, tuple[str, str]] = {
    **ACL_GROUPS,
    "operator": (
        "Provides cluster-level tools for Consul operators",
        "Usage: muster operator <subcommand> [options]\n\n"
        "Subcommands:\n"
        "    raft    Provides cluster-level tools for Consul operators",
    ),
    "operator raft": (
        "Provides cluster-level tools for Consul operators",
        "Usage: muster operator raft <subcommand> [options]\n\n"
        "Subcommands:\n"
        "    list-peers         Display the current Raft peer configuration\n"
        "    remove-peer        Remove a Consul server from the Raft configuration\n"
        "    transfer-leader    Transfer raft leadership to another server",
    ),
    "tls": (
        "Builtin helpers for creating CAs and certificates",
        "Usage: muster tls <subcommand> <subcommand> [options]\n\n"
        "Subcommands:\n"
        "    ca      Helpers for CAs\n"
        "    cert    Helpers for certificates",
    ),
    "tls ca": ("Helpers for CAs", "Usage: muster tls ca <subcommand>\n\nSubcommands:\n    create    Create a new Consul CA"),
    "tls cert": ("Helpers for certificates", "Usage: muster tls cert <subcommand>\n\nSubcommands:\n    create    Create a new certificate"),
    "snapshot": (
        "Saves, restores and inspects snapshots of Consul server state",
        "Usage: muster snapshot <subcommand> [options] [args]\n\n"
        "Subcommands:\n"
        "    inspect    Displays information about a Consul snapshot file\n"
        "    restore    Restores snapshot of Consul server state\n"
        "    save       Saves snapshot of Consul server state",
    ),
    "kv": ("Interact with the key-value store", KV_HELP),
    "config": ("Interact with Consul's Centralized Configurations", CONFIG_HELP),
    "catalog": (
        "Interact with the catalog",
        "Usage: muster catalog <subcommand> [options] [args]\n\n"
        "  This command has subcommands for interacting with the catalog.\n\n"
        "Subcommands:\n"
        "    datacenters    Lists all known datacenters\n"
        "    nodes          Lists all nodes in the given datacenter\n"
        "    services       Lists all registered services in a datacenter",
    ),
    "services": (
        "Interact with services",
        "Usage: muster services <subcommand> [options] [args]\n\n"
        "  This command has subcommands for interacting with services.\n\n"
        "Subcommands:\n"
        "    deregister    Deregister services with the local agent\n"
        "    register      Register services with the local agent",
    ),
}

_HELP_ARGS = ("-h", "-help", "--help")
_VERSION_ARGS = ("-v", "-version", "--version")


def usage() -> str:
    """The top-level help (mitchellh/cli layout)."""
    names: dict[str, str] = {}
    for path, (synopsis, _) in COMMANDS.items():
        if " " not in path:
            names[path] = synopsis
    for group, (synopsis, _) in _GROUPS.items():
        if " " not in group:  # nested groups are listed by their parent's help
            names[group] = synopsis
    width = max(len(n) for n in names) + 4
    lines = ["Usage: muster [--version] [--help] <command> [<args>]", "", "Available commands are:"]
    for name in sorted(names):
        lines.append(f"    {name.ljust(width)}{names[name]}")
    return "\n".join(lines)


def run(argv: Sequence[str], ui: UI) -> int:
    """Dispatch ``argv`` (without the program name) and return the exit code."""
    args = list(argv)
    if not args or args[0] in _HELP_ARGS:
        (ui.out if args else ui.err)(usage())
        return 0 if args else 1
    if args[0] in _VERSION_ARGS:
        args = ["version"] + args[1:]
    name = args[0]
    rest = args[1:]
    while name in _GROUPS:
        # Descend through command groups ("operator" -> "operator raft" -> "operator raft list-peers").
        nxt = f"{name} {rest[0]}" if rest else ""
        if rest and (nxt in COMMANDS or nxt in _GROUPS):
            name, rest = nxt, rest[1:]
            continue
        help_text = _GROUPS[name][1]
        if rest and rest[0] in _HELP_ARGS:
            ui.out(help_text)
            return 0
        if rest:
            ui.err(f'Unknown subcommand "{rest[0]}" for "{name}"')
        ui.err(help_text)
        return 1
    entry = COMMANDS.get(name)
    if entry is None:
        ui.err(f'Unknown command "{name}"')
        ui.err("")
        ui.err(usage())
        return 1
    try:
        return entry[1](ui, rest)
    except UsageExit as done:
        return done.code
    except KeyboardInterrupt:
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``muster`` script and of ``python -m muster``."""
    ui = UI.system()
    try:
        return run(sys.argv[1:] if argv is None else argv, ui)
    except BrokenPipeError:
        # The reader went away (``muster kv get -recurse | head``): exit quietly, and keep the
        # interpreter's final flush from complaining about the closed pipe.
        import os

        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 1
    except Exception as err:  # noqa: BLE001 - last resort: one line, never a traceback
        try:
            ui.err(f"Error: {type(err).__name__}: {err}")
            if ui.environ.get("MUSTER_TRACEBACK"):
                import traceback

                ui.err(traceback.format_exc())
        except OSError:
            pass
        return 1
