"""``muster kv get|put|delete|export|import``: Consul's ``consul kv`` commands.

Messages, exit codes and argument handling follow ``command/kv/*`` in Consul: a leading
``/`` in a key is stripped, ``@file`` and ``-`` (stdin) supply data, a missing key is
``Error! No key exists at: KEY`` with exit 1.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
from typing import Any

from muster.api import decode_value
from muster.cli.flags import FlagSet, add_http_flags
from muster.cli.format import export_entries, format_kv_detailed
from muster.cli.ui import UI, api_errors, make_client, parse_or_usage

__all__ = ["KV_HELP", "kv_delete", "kv_export", "kv_get", "kv_import", "kv_put"]

KV_HELP = """Usage: muster kv <subcommand> [options] [args]

  This command has subcommands for interacting with Consul's key-value
  store. Here are some simple examples, and more detailed examples are
  available in the subcommands or the documentation.

  Create or update the key named "redis/config/connections" with the value "5":

      $ muster kv put redis/config/connections 5

  Read this value back:

      $ muster kv get redis/config/connections

  Or get detailed key information:

      $ muster kv get -detailed redis/config/connections

  Finally, delete the key:

      $ muster kv delete redis/config/connections

Subcommands:
    delete    Removes data from the KV store
    export    Exports a tree from the KV store as JSON
    get       Retrieves or lists data from the KV store
    history   Lists the recorded versions of a key (Muster extension)
    import    Imports a tree stored as JSON to the KV store
    put       Sets or updates data in the KV store
    rollback  Writes an earlier version of a key back (Muster extension)"""


def strip_slash(key: str) -> str:
    return key[1:] if key.startswith("/") else key


def key_argument(ui: UI, p: Any) -> str | None:
    """The one KEY_OR_PREFIX argument of ``kv delete`` / ``kv history`` without its leading
    slash; ``None`` (after printing Consul's error) for more than one argument, or for none
    without ``-recurse`` (an empty key then names the whole tree)."""
    if len(p.args) > 1:
        ui.err(f"Too many arguments (expected 1, got {len(p.args)})")
        return None
    key = strip_slash(p.args[0] if p.args else "")
    if key == "" and not p["recurse"]:
        ui.err("Error! Missing KEY argument")
        return None
    return key


def kv_get(ui: UI, args: list[str]) -> int:
    """``kv get [-recurse|-keys [-separator=/]] [-detailed] [-base64] KEY``."""
    fs = FlagSet(
        "Usage: muster kv get [options] [KEY_OR_PREFIX]\n\n  Retrieves the value from the key-value store."
    )
    fs.add("base64", "bool", False, "Base64 encode the value.")
    fs.add("detailed", "bool", False, "Provide additional metadata about the key.")
    fs.add("keys", "bool", False, "List keys which start with the given prefix, but not their values.")
    fs.add("recurse", "bool", False, "Recursively look at all keys prefixed with the given path.")
    fs.add("separator", "string", "/", "String to use as a separator between keys (with -keys).")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if len(p.args) > 1:
        ui.err(f"Too many arguments (expected 1, got {len(p.args)})")
        return 1
    key = strip_slash(p.args[0] if p.args else "")
    if key == "" and not (p["recurse"] or p["keys"]):
        ui.err("Error! Missing KEY argument")
        return 1
    client = make_client(ui, p)
    with api_errors(ui, "Error querying Consul agent"):
        if p["keys"] and p["recurse"]:
            entries, _ = client.kv_list(key)
            for i, item in enumerate(entries):
                if p["detailed"]:
                    ui.out(format_kv_detailed(item, b"", False, keys_only=True))
                    if i < len(entries) - 1:
                        ui.out("")
                else:
                    ui.out(str(item.get("Key", "")))
            return 0
        if p["keys"]:
            keys, _ = client.kv_keys(key, p["separator"])
            for k in keys:
                ui.out(k)
            return 0
        if p["recurse"]:
            entries, _ = client.kv_list(key)
            for i, item in enumerate(entries):
                value = decode_value(item)
                if p["detailed"]:
                    ui.out(format_kv_detailed(item, value, p["base64"]))
                    if i < len(entries) - 1:
                        ui.out("")
                elif p["base64"]:
                    ui.out(f"{item.get('Key', '')}:{base64.b64encode(value).decode('ascii')}")
                else:
                    ui.out(str(item.get("Key", "")).encode("utf-8") + b":" + value)
            return 0
        entry, _ = client.kv_get(key)
    if entry is None:
        ui.err(f"Error! No key exists at: {key}")
        return 1
    value = decode_value(entry)
    if p["detailed"]:
        ui.out(format_kv_detailed(entry, value, p["base64"]))
    elif p["base64"]:
        ui.out(base64.b64encode(value).decode("ascii"))
    else:
        ui.out(value)
    return 0


def _data_from_arg(ui: UI, data: str) -> bytes:
    """Consul's DATA argument: ``@file`` reads a file, ``-`` reads stdin, else literal."""
    if not data:
        return b""
    if data[0] == "@":
        try:
            with open(data[1:], "rb") as fh:
                return fh.read()
        except OSError as err:
            raise ValueError(
                f"Failed to read file: open {data[1:]}: {(err.strerror or str(err)).lower()}"
            ) from None
    if data[0] == "-" and len(data) == 1:
        try:
            return ui.stdin.read()
        except OSError as err:
            raise ValueError(f"Failed to read stdin: {err}") from None
    return data.encode("utf-8", errors="surrogateescape")


def kv_put(ui: UI, args: list[str]) -> int:
    """``kv put [-flags N] [-cas -modify-index N] [-acquire|-release -session S] [-base64] KEY [DATA]``."""
    fs = FlagSet(
        "Usage: muster kv put [options] KEY [DATA]\n\n"
        '  Writes the data to the given path in the key-value store. DATA may be "@file"\n'
        '  to read a file or "-" to read stdin.'
    )
    fs.add("acquire", "bool", False, "Obtain a lock on the key (requires -session).")
    fs.add("base64", "bool", False, "Treat the data as base 64 encoded.")
    fs.add("cas", "bool", False, "Perform a Check-And-Set operation (requires -modify-index).")
    fs.add("flags", "uint", 0, "Unsigned integer value to assign to this key-value pair.")
    fs.add("modify-index", "uint", 0, "The ModifyIndex of the key, used with -cas.")
    fs.add("release", "bool", False, "Forfeit the lock on the key (requires -session).")
    fs.add("session", "string", "", "Session ID for -acquire and -release.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if not p.args:
        ui.err("Error! Missing KEY argument")
        return 1
    if len(p.args) > 2:
        ui.err(f"Error! Too many arguments (expected 1 or 2, got {len(p.args)})")
        return 1
    key = p.args[0]
    try:
        data = _data_from_arg(ui, p.args[1]) if len(p.args) == 2 else b""
    except ValueError as err:
        ui.err(f"Error! {err}")
        return 1
    if p["base64"]:
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as err:
            ui.err(f"Error! Cannot base 64 decode data: {err}")
            return 1
    if (p["release"] or p["acquire"]) and not p["session"]:
        ui.err("Error! Missing -session (required with -acquire and -release)")
        return 1
    if p["cas"] and p["modify-index"] == 0:
        ui.err("Must specify -modify-index with -cas!")
        return 1
    client = make_client(ui, p)
    flags = p["flags"] or None
    with api_errors(ui, "Error! Failed writing data"):
        if p["cas"]:
            with api_errors(ui, f"Error! Did not write to {key}"):
                ok = client.kv_put(key, data, flags=flags, cas=p["modify-index"])
            if not ok:
                ui.err(f"Error! Did not write to {key}: CAS failed")
                return 1
            ui.out(f"Success! Data written to: {key}")
            return 0
        if p["acquire"]:
            if not client.kv_put(key, data, flags=flags, acquire=p["session"]):
                ui.err("Error! Did not acquire lock")
                return 1
            ui.out(f"Success! Lock acquired on: {key}")
            return 0
        if p["release"]:
            if not client.kv_put(key, data, flags=flags, release=p["session"]):
                ui.err("Error! Did not release lock")
                return 1
            ui.out(f"Success! Lock released on: {key}")
            return 0
        client.kv_put(key, data, flags=flags)
    ui.out(f"Success! Data written to: {key}")
    return 0


def kv_delete(ui: UI, args: list[str]) -> int:
    """``kv delete [-recurse] [-cas -modify-index N] KEY``."""
    fs = FlagSet("Usage: muster kv delete [options] KEY_OR_PREFIX\n\n  Removes the value at the given path.")
    fs.add("cas", "bool", False, "Perform a Check-And-Set operation (requires -modify-index).")
    fs.add("modify-index", "uint", 0, "The ModifyIndex of the key, used with -cas.")
    fs.add("recurse", "bool", False, "Recursively delete all keys with the path.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    key = key_argument(ui, p)
    if key is None:
        return 1
    if p["cas"] and p["modify-index"] == 0:
        ui.err("Cannot delete a key that does not exist. Provide a -modify-index greater than than 0.")
        return 1
    if p["modify-index"] != 0 and not p["cas"]:
        ui.err("Cannot specify -modify-index without -cas!")
        return 1
    if p["recurse"] and p["cas"]:
        ui.err("Cannot specify both -cas and -recurse!")
        return 1
    client = make_client(ui, p)
    if p["recurse"]:
        with api_errors(ui, f"Error! Did not delete prefix {key}"):
            client.kv_delete(key, recurse=True)
        ui.out(f"Success! Deleted keys with prefix: {key}")
        return 0
    if p["cas"]:
        with api_errors(ui, f"Error! Did not delete key {key}"):
            ok = client.kv_delete(key, cas=p["modify-index"])
        if not ok:
            ui.err(f"Error! Did not delete key {key}: CAS failed")
            return 1
        ui.out(f"Success! Deleted key: {key}")
        return 0
    with api_errors(ui, f"Error deleting key {key}"):
        client.kv_delete(key)
    ui.out(f"Success! Deleted key: {key}")
    return 0


def kv_export(ui: UI, args: list[str]) -> int:
    """``kv export [PREFIX]``: tab-indented JSON of ``{"key","flags","value"}``."""
    fs = FlagSet(
        "Usage: muster kv export [KEY_OR_PREFIX]\n\n  Writes the JSON representation of a KV tree to stdout."
    )
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if len(p.args) > 1:
        ui.err(f"Too many arguments (expected 1, got {len(p.args)})")
        return 1
    key = strip_slash(p.args[0] if p.args else "")
    client = make_client(ui, p)
    with api_errors(ui, "Error querying Consul agent"):
        entries, _ = client.kv_list(key)
    ui.out(export_entries(entries))
    return 0


def _parse_import(data: bytes) -> list[dict[str, Any]]:
    """Decode ``kv import`` data; Go's decoder matches field names case-insensitively."""
    try:
        raw = json.loads(data)
    except ValueError as err:
        raise ValueError(str(err)) from None
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError(f"json: cannot unmarshal {type(raw).__name__} into Go value of type []*impexp.Entry")
    entries = []
    for item in raw:
        if item is None:
            continue
        if not isinstance(item, dict):
            raise ValueError(
                f"json: cannot unmarshal {type(item).__name__} into Go value of type impexp.Entry"
            )
        lowered = {str(k).lower(): v for k, v in item.items()}
        key = lowered.get("key", "")
        flags = lowered.get("flags", 0)
        value = lowered.get("value", "")
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError("json: cannot unmarshal non-string key/value into impexp.Entry")
        if isinstance(flags, bool) or not isinstance(flags, int) or not 0 <= flags < 1 << 64:
            raise ValueError(
                f"json: cannot unmarshal {flags!r} into Go struct field Entry.flags of type uint64"
            )
        entries.append({"key": key, "flags": flags, "value": value})
    return entries


def kv_import(ui: UI, args: list[str]) -> int:
    """``kv import [-prefix P] [@file|-|JSON]``: writes every entry, printing ``Imported: KEY``."""
    fs = FlagSet(
        "Usage: muster kv import [options] [DATA]\n\n"
        '  Imports key-value pairs generated by "muster kv export". DATA may be "@file"\n'
        '  or "-" for stdin.'
    )
    fs.add("prefix", "string", "", "Key prefix for imported data.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if not p.args:
        ui.err("Error! Missing DATA argument")
        return 1
    if len(p.args) > 1:
        ui.err(f"Error! Too many arguments (expected 1, got {len(p.args)})")
        return 1
    if p.args[0] == "":
        ui.err("Error! Empty DATA argument")
        return 1
    try:
        data = _data_from_arg(ui, p.args[0])
    except ValueError as err:
        ui.err(f"Error! {err}")
        return 1
    client = make_client(ui, p)
    try:
        entries = _parse_import(data)
    except ValueError as err:
        ui.err(f"Cannot unmarshal data: {err}")
        return 1
    for entry in entries:
        try:
            value = base64.b64decode(entry["value"], validate=True)
        except (binascii.Error, ValueError) as err:
            ui.err(f"Error base 64 decoding value for key {entry['key']}: {err}")
            return 1
        key = posixpath.join(p["prefix"], entry["key"]) if p["prefix"] else entry["key"]
        with api_errors(ui, f"Error! Failed writing data for key {key}"):
            client.kv_put(key, value, flags=entry["flags"] or None)
        ui.out(f"Imported: {key}")
    return 0
