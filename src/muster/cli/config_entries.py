"""``muster config write|read|list|delete``: Consul's ``consul config`` commands.

``write`` takes a file (or ``-`` for stdin) holding one entry in JSON or HCL, with
``-cas -modify-index=N`` for a check-and-set write; ``read``/``delete`` take ``-kind`` and
``-name``; ``list`` takes ``-kind``.  Messages follow ``command/config/*``: ``Config entry
written: <kind>/<name>``, ``Config entry deleted: <kind>/<name>``, the entry as indented JSON
for ``read``, one name per line for ``list``; errors go to stderr with exit 1.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from muster.api import ConsulError
from muster.cli.flags import FlagSet, add_http_flags
from muster.cli.ui import UI, make_client, parse_or_usage

__all__ = ["CONFIG_HELP", "config_delete", "config_list", "config_read", "config_write"]

CONFIG_HELP = """Usage: muster config <subcommand> [options] [args]

  This command has subcommands for interacting with Consul's centralized
  configuration entries.

Subcommands:
    delete    Delete a centralized config entry
    list      List centralized config entries of a given kind
    read      Read a centralized config entry
    write     Create or update a centralized config entry"""


def _parse_entry(text: str) -> dict[str, Any]:
    """One entry from JSON or HCL text (python-hcl2: the same parser as config files)."""
    try:
        obj = json.loads(text)
    except ValueError:
        from muster.config.sources import _hcl_loads

        try:
            obj = _hcl_loads(text)
        except Exception as err:  # noqa: BLE001 - hcl2 raises lark errors of many types
            raise ValueError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    if not isinstance(obj, dict):
        raise ValueError("the input is not an object")
    return _unwrap(obj)


def _unwrap(v: Any) -> Any:
    """python-hcl2 wraps each block in a one-element list: a block holding an object is an
    object, a list of blocks stays a list."""
    if isinstance(v, dict):
        return {k: _unwrap(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unwrap(x) for x in v]
    return v


def config_write(ui: UI, args: list[str]) -> int:
    fs = FlagSet("Usage: muster config write [options] FILE\n\n  Request a config entry to be created or updated.")
    fs.add("cas", "bool", False, "Perform a Check-And-Set operation (requires -modify-index).")
    fs.add("modify-index", "uint", 0, "The ModifyIndex of the entry, used with -cas.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if len(p.args) != 1:
        ui.err("Must provide exactly one positional argument to specify the config entry to write")
        return 1
    src = p.args[0]
    try:
        text = sys.stdin.read() if src == "-" else open(src, encoding="utf-8").read()  # noqa: SIM115
    except OSError as err:
        ui.err(f"Failed to load data: {err}")
        return 1
    try:
        entry = _parse_entry(text)
    except ValueError as err:
        ui.err(f"Failed to decode config entry input: {err}")
        return 1
    kind = next((v for k, v in entry.items() if k.lower() == "kind"), "")
    name = next((v for k, v in entry.items() if k.lower() == "name"), "")
    client = make_client(ui, p)
    try:
        ok = client.config_entry_set(entry, p["modify-index"] if p["cas"] else None)
    except ConsulError as err:
        ui.err(f"Error writing config entry {kind}/{name}: {err}")
        return 1
    if not ok:
        ui.err(f"Config entry not updated: {kind}/{name}")
        return 1
    ui.out(f"Config entry written: {kind}/{name}")
    return 0


def _kind_name(ui: UI, p: Any, need_name: bool) -> tuple[str, str] | None:
    if not p["kind"]:
        ui.err("Must specify the -kind parameter")
        return None
    if need_name and not p["name"]:
        ui.err("Must specify the -name parameter")
        return None
    return str(p["kind"]), str(p["name"]) if need_name else ""


def config_read(ui: UI, args: list[str]) -> int:
    fs = FlagSet("Usage: muster config read -kind <kind> -name <name> [options]\n\n  Reads the config entry specified by the given kind and name.")
    fs.add("kind", "string", "", "The kind of configuration to read.")
    fs.add("name", "string", "", "The name of configuration to read.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    kn = _kind_name(ui, p, True)
    if kn is None:
        return 1
    client = make_client(ui, p)
    try:
        entry = client.config_entry_get(kn[0], kn[1])
    except ConsulError as err:
        ui.err(f"Error reading config entry {kn[0]}/{kn[1]}: {err}")
        return 1
    ui.out(json.dumps(entry, indent=4))
    return 0


def config_list(ui: UI, args: list[str]) -> int:
    fs = FlagSet("Usage: muster config list -kind <kind> [options]\n\n  Lists all of the config entries for a given kind.")
    fs.add("kind", "string", "", "The kind of configurations to list.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    kn = _kind_name(ui, p, False)
    if kn is None:
        return 1
    client = make_client(ui, p)
    try:
        entries = client.config_entry_list(kn[0])
    except ConsulError as err:
        ui.err(f"Error listing config entries for kind {kn[0]!r}: {err}")
        return 1
    for entry in entries:
        ui.out(str(entry.get("Name", "")))
    return 0


def config_delete(ui: UI, args: list[str]) -> int:
    fs = FlagSet("Usage: muster config delete -kind <kind> -name <name> [options]\n\n  Deletes the configuration entry specified by the kind and name.")
    fs.add("kind", "string", "", "The kind of configuration to delete.")
    fs.add("name", "string", "", "The name of configuration to delete.")
    fs.add("cas", "bool", False, "Perform a Check-And-Set operation (requires -modify-index).")
    fs.add("modify-index", "uint", 0, "The ModifyIndex of the entry, used with -cas.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    kn = _kind_name(ui, p, True)
    if kn is None:
        return 1
    if p["cas"] and not p["modify-index"]:
        ui.err("Must specify a -modify-index greater than 0 with -cas")
        return 1
    if p["modify-index"] and not p["cas"]:
        ui.err("Cannot specify -modify-index without -cas")
        return 1
    client = make_client(ui, p)
    try:
        ok = client.config_entry_delete(kn[0], kn[1], p["modify-index"] if p["cas"] else None)
    except ConsulError as err:
        ui.err(f"Error deleting config entry {kn[0]}/{kn[1]}: {err}")
        return 1
    if not ok:
        ui.err(f"Config entry not deleted: {kn[0]}/{kn[1]}")
        return 1
    ui.out(f"Config entry deleted: {kn[0]}/{kn[1]}")
    return 0
