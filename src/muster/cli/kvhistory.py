"""``muster kv history`` and ``muster kv rollback``: the KV history extension
(docs/kv-history.md), in the style of the ``consul kv`` commands (``Error! ...`` on stderr and
exit 1 on failure, ``Success! ...`` on stdout).
"""

from __future__ import annotations

import base64
from typing import Any

from muster.cli.flags import FlagSet, add_http_flags
from muster.cli.format import columnize
from muster.cli.kv import key_argument, strip_slash
from muster.cli.ui import UI, api_errors, make_client, parse_or_usage

__all__ = ["kv_history", "kv_rollback", "show_value"]

VALUE_WIDTH = 40


def show_value(v: dict[str, Any]) -> str:
    """A version's value on one line: text (escaped, cut at ``VALUE_WIDTH``), or a marker for a
    deletion, an empty value or a binary value."""
    if v.get("Deleted"):
        return "<deleted>"
    raw = base64.b64decode(v["Value"]) if v.get("Value") else b""
    if not raw:
        return "<empty>"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"<binary, {len(raw)} bytes>"
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def kv_history(ui: UI, args: list[str]) -> int:
    """``kv history [-recurse] [-diff [-from N] [-to N]] KEY``."""
    fs = FlagSet(
        "Usage: muster kv history [options] KEY_OR_PREFIX\n\n"
        "  Lists the recorded versions of a key, newest first: the index that made each one,\n"
        "  when, the operation, its flags, who made it (token accessor and client address)\n"
        "  and its value. The current version is marked with '*'. With -diff, shows a unified\n"
        "  diff of two versions instead (by default the newest and the one before it)."
    )
    fs.add("recurse", "bool", False, "List the history of every key under the given prefix.")
    fs.add("diff", "bool", False, "Show the difference between two versions.")
    fs.add("from", "uint", 0, "With -diff: the ModifyIndex of the older version.")
    fs.add("to", "uint", 0, "With -diff: the ModifyIndex of the newer version (default: the newest).")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    key = key_argument(ui, p)
    if key is None:
        return 1
    if p["diff"] and p["recurse"]:
        ui.err("Cannot specify both -diff and -recurse!")
        return 1
    if (p["from"] or p["to"]) and not p["diff"]:
        ui.err("Cannot specify -from or -to without -diff!")
        return 1
    client = make_client(ui, p)
    if p["diff"]:
        with api_errors(ui, f"Error! Could not diff {key}"):
            d = client.kv_history_diff(key, frm=p["from"] or None, to=p["to"] or None)
        if d is None:
            ui.err(f"Error! No history exists for: {key}")
            return 1
        if d["Diff"]:
            ui.stdout.write(d["Diff"].encode("utf-8", errors="surrogateescape"))
            ui.stdout.flush()
        else:
            ui.out(f"No difference in value between versions {d['From']} and {d['To']}")
        if d.get("FlagsChanged"):
            ui.out("Flags differ")
        return 0
    with api_errors(ui, "Error querying Consul agent"):
        versions, _ = client.kv_history(key, recurse=p["recurse"])
    if not versions:
        ui.err(f"Error! No history exists for: {key}")
        return 1
    header = ["Index", "Time", "Operation", "Flags", "Accessor", "Client", "Value"]
    if p["recurse"]:
        header.insert(0, "Key")
    lines = ["\x1f".join(header)]
    for v in versions:
        row = [
            f"{v['ModifyIndex']}{'*' if v.get('Current') else ''}",
            v.get("Time") or "-",
            v["Operation"] + (f" of {v['RollbackOf']}" if v.get("RollbackOf") else ""),
            str(v.get("Flags", 0)),
            v.get("AccessorID") or "-",
            v.get("ClientAddr") or "-",
            show_value(v),
        ]
        if p["recurse"]:
            row.insert(0, v["Key"])
        lines.append("\x1f".join(row))
    ui.out(columnize(lines))
    return 0


def kv_rollback(ui: UI, args: list[str]) -> int:
    """``kv rollback -index N [-modify-index M] KEY``."""
    fs = FlagSet(
        "Usage: muster kv rollback [options] KEY\n\n"
        "  Writes an earlier version of a key back, as a check-and-set write: it fails\n"
        "  if the key changed in between. -index names the version (its ModifyIndex,\n"
        "  as listed by 'muster kv history'); -modify-index the ModifyIndex the key\n"
        "  must still have (by default, its index when the server receives the request)."
    )
    fs.add("index", "uint", 0, "The ModifyIndex of the version to restore (required).")
    fs.add("modify-index", "uint", 0, "Only roll back if the key's current ModifyIndex is this.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if len(p.args) != 1:
        ui.err("Error! Missing KEY argument" if not p.args else f"Too many arguments (expected 1, got {len(p.args)})")
        return 1
    key = strip_slash(p.args[0])
    if not p["index"]:
        ui.err("Error! Missing -index (the ModifyIndex of the version to restore)")
        return 1
    client = make_client(ui, p)
    with api_errors(ui, f"Error! Did not roll back {key}"):
        ok = client.kv_rollback(key, p["index"], cas=p["modify-index"] or None)
    if not ok:
        ui.err(f"Error! Did not roll back {key}: the key changed since the version was chosen (CAS failed)")
        return 1
    ui.out(f"Success! Rolled back {key} to version {p['index']}")
    return 0
