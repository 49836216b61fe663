"""Output formatting for the ``muster`` CLI, byte-compatible with Consul's Go CLI.

Consul formats tables with ``github.com/ryanuber/columnize`` (``members``, ``catalog
nodes``) and ``text/tabwriter`` (``kv get -detailed``, ``catalog services -tags``), and
JSON with ``encoding/json`` (``kv export``, ``watch``).  The functions here reproduce
those libraries' exact output so scripts written against ``consul`` keep working.

Values from the KV store are arbitrary bytes; functions that embed them work on
``str`` decoded with ``surrogateescape`` so the bytes round-trip unchanged
(:func:`to_text` / :func:`to_bytes`).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "LOCK_FLAG_VALUE",
    "SEMAPHORE_FLAG_VALUE",
    "columnize",
    "export_entries",
    "format_catalog_nodes",
    "format_catalog_services",
    "format_info",
    "format_kv_detailed",
    "format_members",
    "go_json",
    "go_json_indent",
    "kvpair_go",
    "member_status",
    "tabwrite",
    "tcp_addr",
    "to_bytes",
    "to_text",
]

#: ``api.LockFlagValue``: the flags of a ``consul lock`` key.
LOCK_FLAG_VALUE = 0x2DDCCBC058A50C18
#: ``api.SemaphoreFlagValue``: the flags of ``consul lock -n N`` keys.
SEMAPHORE_FLAG_VALUE = 0xE0F69A2BAA414DE0

_MEMBER_STATUS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}


def to_text(data: bytes) -> str:
    """Bytes -> str that round-trips through :func:`to_bytes` (invalid UTF-8 kept)."""
    return data.decode("utf-8", errors="surrogateescape")


def to_bytes(text: str) -> bytes:
    """Inverse of :func:`to_text`."""
    return text.encode("utf-8", errors="surrogateescape")


def columnize(
    lines: Sequence[str], delim: str = "\x1f", glue: str = "  ", prefix: str = "", empty: str = ""
) -> str:
    """``columnize.Format``: split each line on ``delim``, pad every column but the last.

    Fields are whitespace-trimmed; a line with fewer fields uses only its own columns.  The
    final newline is removed.
    """
    rows = []
    for line in lines:
        fields = []
        for f in line.split(delim):
            v = f.strip()
            if v == "" and empty:
                v = empty
            fields.append(v)
        rows.append(fields)
    widths: list[int] = []
    for row in rows:
        for i, v in enumerate(row):
            if len(widths) <= i:
                widths.append(len(v))
            elif widths[i] < len(v):
                widths[i] = len(v)
    out = []
    for row in rows:
        parts = [prefix]
        n = len(row)
        for i in range(min(n, len(widths))):
            if i == n - 1:
                parts.append(row[i] + "\n")
            else:
                parts.append(row[i].ljust(widths[i]) + glue)
        out.append("".join(parts))
    result = "".join(out)
    if result.endswith("\n"):
        result = result[:-1]
    return result


def tabwrite(text: str, minwidth: int = 0, tabwidth: int = 2, padding: int = 6, padchar: str = " ") -> str:
    """Go's ``text/tabwriter`` (flags 0, left-aligned) applied to ``text`` then flushed.

    Cells are tab-terminated; a column's width is computed per *block* of consecutive lines
    that have that column, exactly as ``tabwriter.Writer.format`` does.  The last cell of a
    line is not part of any column.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            buf = []
            for j, cell in enumerate(cells):
                buf.append(cell)
                if j < len(widths):
                    buf.append(padchar * max(0, widths[j] - len(cell)))
            out.append("".join(buf))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1:
                cells = lines[this]
                if column >= len(cells) - 1:
                    break
                w = len(cells[column]) + padding
                if w > width:
                    width = w
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "\n".join(out)


def _go_escape(s: str) -> str:
    # encoding/json escapes <, >, & and U+2028/U+2029 (HTML-safe) but not other non-ASCII.
    return (
        s.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def go_json(obj: Any) -> str:
    """``json.Marshal``: compact, HTML-escaped, UTF-8 (no ``\\uXXXX`` for other non-ASCII)."""
    return _go_escape(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))


def go_json_indent(obj: Any, indent: str) -> str:
    """``json.MarshalIndent(obj, "", indent)``."""
    return _go_escape(json.dumps(obj, indent=indent, ensure_ascii=False))


def kvpair_go(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A KV entry in the field order of Go's ``api.KVPair`` (what ``consul watch`` prints)."""
    out: dict[str, Any] = {
        "Key": entry.get("Key", ""),
        "CreateIndex": entry.get("CreateIndex", 0),
        "ModifyIndex": entry.get("ModifyIndex", 0),
        "LockIndex": entry.get("LockIndex", 0),
        "Flags": entry.get("Flags", 0),
        "Value": entry.get("Value"),
        "Session": entry.get("Session", "") or "",
    }
    for extra in ("Namespace", "Partition"):
        if entry.get(extra):
            out[extra] = entry[extra]
    return out


def export_entries(entries: Sequence[Mapping[str, Any]]) -> str:
    """``consul kv export`` JSON: tab-indented ``[{"key","flags","value"}]``."""
    exported = []
    for e in entries:
        item: dict[str, Any] = {
            "key": e.get("Key", ""),
            "flags": e.get("Flags", 0),
            "value": e.get("Value") or "",
        }
        exported.append(item)
    return go_json_indent(exported, "\t")


def format_kv_detailed(
    entry: Mapping[str, Any], value: bytes, base64_value: bool, keys_only: bool = False
) -> str:
    """``consul kv get -detailed``: tab-aligned metadata then the value (none with ``keys_only``)."""
    session = entry.get("Session") or "-"
    text = (
        f"CreateIndex\t{entry.get('CreateIndex', 0)}\n"
        f"Flags\t{entry.get('Flags', 0)}\n"
        f"Key\t{entry.get('Key', '')}\n"
        f"LockIndex\t{entry.get('LockIndex', 0)}\n"
        f"ModifyIndex\t{entry.get('ModifyIndex', 0)}\n"
        f"Session\t{session}\n"
    )
    for extra in ("Partition", "Namespace"):
        if entry.get(extra):
            text += f"{extra}\t{entry[extra]}\n"
    if not keys_only:
        shown = base64.b64encode(value).decode("ascii") if base64_value else to_text(value)
        text += f"Value\t{shown}"
    return tabwrite(text)


def member_status(status: Any) -> str:
    """``serf.MemberStatus.String()``."""
    if isinstance(status, int) and status in _MEMBER_STATUS:
        return _MEMBER_STATUS[status]
    return f"unknown({status})"


def tcp_addr(addr: str, port: int) -> str:
    """``net.TCPAddr{IP: net.ParseIP(addr), Port: port}.String()``."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return f":{port}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"{ip.ipv4_mapped}:{port}"
        return f"[{ip.compressed}]:{port}"
    return f"{ip}:{port}"


def format_members(
    members: Sequence[Mapping[str, Any]], *, detailed: bool, status_re: str = ".*", segment: str = "_all"
) -> str | None:
    """``consul members`` output, or None when no member matches (exit code 2).

    Raises ``re.error`` for a bad ``status_re``.
    """
    pattern = re.compile(status_re)
    rows: list[dict[str, Any]] = []
    for m in members:
        tags = dict(m.get("Tags") or {})
        if not tags.get("ap"):
            tags["ap"] = "default"
        if tags["ap"] in ("", "default"):
            if segment == "_all" and tags.get("role") == "consul":
                tags["segment"] = "<all>"
            elif not tags.get("segment"):
                tags["segment"] = "<default>"
        else:
            tags["segment"] = ""
        status = member_status(m.get("Status"))
        if not pattern.search(status):
            continue
        rows.append({"m": m, "tags": tags, "status": status})
    if not rows:
        return None

    def sort_key(r: dict[str, Any]) -> tuple[Any, ...]:
        t = r["tags"]
        part = t.get("ap", "")
        return (
            t.get("role") != "consul",
            part not in ("", "default"),
            t.get("segment", ""),
            part,
            str(r["m"].get("Name", "")),
        )

    rows.sort(key=sort_key)
    lines: list[str] = []
    if detailed:
        lines.append("Node\x1fAddress\x1fStatus\x1fTags")
        for r in rows:
            m, tags = r["m"], r["tags"]
            pairs = ",".join(f"{k}={tags[k]}" for k in sorted(tags))
            addr = tcp_addr(str(m.get("Addr", "")), int(m.get("Port", 0) or 0))
            lines.append(f"{m.get('Name', '')}\x1f{addr}\x1f{r['status']}\x1f{pairs}")
    else:
        lines.append("Node\x1fAddress\x1fStatus\x1fType\x1fBuild\x1fProtocol\x1fDC\x1fPartition\x1fSegment")
        for r in rows:
            m, tags = r["m"], r["tags"]
            addr = tcp_addr(str(m.get("Addr", "")), int(m.get("Port", 0) or 0))
            build = tags.get("build", "")
            if build == "":
                build = "< 0.3"
            elif ":" in build:
                build = build[: build.index(":")]
            role = tags.get("role")
            kind = {"node": "client", "consul": "server"}.get(str(role))
            name = m.get("Name", "")
            if kind is None:
                lines.append(f"{name}\x1f{addr}\x1f{r['status']}\x1funknown\x1f\x1f\x1f\x1f\x1f")
            else:
                lines.append(
                    f"{name}\x1f{addr}\x1f{r['status']}\x1f{kind}\x1f{build}\x1f{tags.get('vsn', '')}"
                    f"\x1f{tags.get('dc', '')}\x1f{tags.get('ap', '')}\x1f{tags.get('segment', '')}"
                )
    return columnize(lines)


def _stat_value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def format_info(stats: Mapping[str, Any]) -> str:
    """``consul info``: sections sorted, each line ``\\tkey = value`` sorted by key.

    Raises ``ValueError`` when a section is not an object (Consul: ``Got invalid subkey``).
    """
    lines: list[str] = []
    for section in sorted(stats):
        sub = stats[section]
        lines.append(f"{section}:")
        if not isinstance(sub, Mapping):
            raise ValueError(f"Got invalid subkey in stats: {sub!r}")
        for key in sorted(sub):
            lines.append(f"\t{key} = {_stat_value(sub[key])}")
    return "\n".join(lines)


def _map_to_kv(m: Mapping[str, Any] | None, joiner: str) -> str:
    m = m or {}
    return joiner.join(f"{k}={m[k]}" for k in sorted(m))


def format_catalog_nodes(nodes: Sequence[Mapping[str, Any]], *, detailed: bool) -> str:
    """``consul catalog nodes``: ``Node ID Address DC`` (+ ``TaggedAddresses Meta``)."""
    lines: list[str] = []
    if detailed:
        lines.append("Node\x1fID\x1fAddress\x1fDC\x1fTaggedAddresses\x1fMeta")
    else:
        lines.append("Node\x1fID\x1fAddress\x1fDC")
    for n in nodes:
        node_id = str(n.get("ID", "") or "")
        if detailed:
            lines.append(
                f"{n.get('Node', '')}\x1f{node_id}\x1f{n.get('Address', '')}\x1f{n.get('Datacenter', '')}"
                f"\x1f{_map_to_kv(n.get('TaggedAddresses'), ', ')}\x1f{_map_to_kv(n.get('Meta'), ', ')}"
            )
        else:
            idx = node_id.find("-")
            if idx > 0:
                node_id = node_id[:idx]
            lines.append(
                f"{n.get('Node', '')}\x1f{node_id}\x1f{n.get('Address', '')}\x1f{n.get('Datacenter', '')}"
            )
    return columnize(lines)


def format_catalog_services(services: Mapping[str, Sequence[str]], *, tags: bool) -> str:
    """``consul catalog services``: names sorted; ``-tags`` adds a comma-joined tag column."""
    order = sorted(services)
    if not tags:
        return "\n".join(order)
    text = "".join(f"{name}\t{','.join(sorted(services[name] or []))}\n" for name in order)
    return tabwrite(text).strip()
