"""``muster acl ...``: bootstrap, tokens, policies, roles and agent tokens (Consul's ``consul acl``).

Output follows Consul's pretty formatter (``command/acl/*/formatter.go``): aligned ``Key:``
columns, ``Policies:`` lists as ``   <id> - <name>``, times as Go prints a ``time.Time``; and
``-format=json`` prints the API object indented.  Errors are one line on stderr, exit 1.
The token comes from ``-token``/``CONSUL_HTTP_TOKEN`` (or the token file), as for every command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from muster.api import Client, ConsulError
from muster.cli.flags import FlagSet, Parsed, add_http_flags
from muster.cli.ui import UI, api_errors, make_client, parse_or_usage

__all__ = ["ACL_COMMANDS", "ACL_GROUPS"]


# ---------------------------------------------------------------------- HTTP helpers


def _call(client: Client, method: str, path: str, body: Any = None, params: list[tuple[str, str]] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    resp = client.request(method, path, params or [], data)
    if not 200 <= resp.status < 300:
        raise ConsulError(f"Unexpected response code: {resp.status} ({resp.text().rstrip()})")
    return resp.json() if resp.body.strip() else None


def go_time(rfc: str) -> str:
    """An RFC 3339 timestamp as Go's ``time.Time`` ``%v`` (``2006-01-02 15:04:05.999 +0000 UTC``)."""
    if not rfc:
        return "0001-01-01 00:00:00 +0000 UTC"
    t = rfc.strip()
    frac = ""
    if "." in t:
        head, rest = t.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits):]
        frac = "." + digits.rstrip("0") if digits.rstrip("0") else ""
        t = head + tail
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return rfc
    return dt.strftime("%Y-%m-%d %H:%M:%S") + frac + " +0000 UTC"


# ---------------------------------------------------------------------- formatters


def format_token(t: dict[str, Any], meta: bool = False, list_entry: bool = False) -> str:
    lines = [
        f"AccessorID:       {t.get('AccessorID', '')}",
        f"SecretID:         {t.get('SecretID', '')}",
        f"Description:      {t.get('Description', '')}",
        f"Local:            {str(bool(t.get('Local'))).lower()}",
    ]
    if t.get("AuthMethod"):
        lines.append(f"Auth Method:      {t['AuthMethod']} (Namespace: )")
    lines.append(f"Create Time:      {go_time(t.get('CreateTime', ''))}")
    if t.get("ExpirationTime"):
        lines.append(f"Expiration Time:  {go_time(t['ExpirationTime'])}")
    if list_entry:
        lines.append(f"Legacy:           {str(bool(t.get('Legacy'))).lower()}")
    if meta:
        lines.append(f"Hash:             {_hex_hash(t.get('Hash', ''))}")
        lines.append(f"Create Index:     {t.get('CreateIndex', 0)}")
        lines.append(f"Modify Index:     {t.get('ModifyIndex', 0)}")
    lines += _links("Policies", t.get("Policies"))
    lines += _links("Roles", t.get("Roles"))
    lines += _identities(t)
    return "\n".join(lines) + "\n"


def _hex_hash(b64: str) -> str:
    import base64
    import binascii

    try:
        return base64.b64decode(b64).hex()
    except (binascii.Error, ValueError):
        return b64


def _links(title: str, links: Any) -> list[str]:
    if not links:
        return []
    return [f"{title}:"] + [f"   {x.get('ID', '')} - {x.get('Name', '')}" for x in links]


def _identities(obj: dict[str, Any]) -> list[str]:
    out: list[str] = []
    sids = obj.get("ServiceIdentities") or []
    if sids:
        out.append("Service Identities:")
        for s in sids:
            dcs = s.get("Datacenters") or []
            out.append(f"   {s.get('ServiceName', '')} (Datacenters: {', '.join(dcs) if dcs else 'all'})")
    nids = obj.get("NodeIdentities") or []
    if nids:
        out.append("Node Identities:")
        for n in nids:
            out.append(f"   {n.get('NodeName', '')} (Datacenter: {n.get('Datacenter', '')})")
    tps = obj.get("TemplatedPolicies") or []
    if tps:
        out.append("Templated Policies:")
        for tp in tps:
            out.append(f"   {tp.get('TemplateName', '')}")
            name = (tp.get("TemplateVariables") or {}).get("name")
            if name:
                out.append(f"      Name: {name}")
            dcs = tp.get("Datacenters") or []
            out.append(f"      Datacenters: {', '.join(dcs) if dcs else 'all'}")
    return out


def format_policy(p: dict[str, Any], meta: bool = False) -> str:
    lines = [
        f"ID:           {p.get('ID', '')}",
        f"Name:         {p.get('Name', '')}",
        f"Description:  {p.get('Description', '')}",
        f"Datacenters:  {', '.join(p.get('Datacenters') or [])}",
    ]
    if meta:
        lines += [f"Hash:         {_hex_hash(p.get('Hash', ''))}", f"Create Index: {p.get('CreateIndex', 0)}",
                  f"Modify Index: {p.get('ModifyIndex', 0)}"]
    lines.append("Rules:")
    lines.append(p.get("Rules", ""))
    return "\n".join(lines) + "\n"


def format_policy_list_entry(p: dict[str, Any], meta: bool = False) -> str:
    lines = [
        f"{p.get('Name', '')}:",
        f"   ID:           {p.get('ID', '')}",
        f"   Description:  {p.get('Description', '')}",
        f"   Datacenters:  {', '.join(p.get('Datacenters') or [])}",
    ]
    if meta:
        lines += [f"   Hash:         {_hex_hash(p.get('Hash', ''))}", f"   Create Index: {p.get('CreateIndex', 0)}",
                  f"   Modify Index: {p.get('ModifyIndex', 0)}"]
    return "\n".join(lines) + "\n"


def format_role(r: dict[str, Any], meta: bool = False, indent: str = "") -> str:
    lines = [
        f"ID:           {r.get('ID', '')}",
        f"Name:         {r.get('Name', '')}",
        f"Description:  {r.get('Description', '')}",
    ]
    if meta:
        lines += [f"Hash:         {_hex_hash(r.get('Hash', ''))}", f"Create Index: {r.get('CreateIndex', 0)}",
                  f"Modify Index: {r.get('ModifyIndex', 0)}"]
    lines += _links("Policies", r.get("Policies"))
    lines += _identities(r)
    return "\n".join(indent + line for line in lines) + "\n"


# ---------------------------------------------------------------------- shared flag handling


def _fs(usage: str, fmt: bool = True) -> FlagSet:
    fs = FlagSet(usage)
    add_http_flags(fs)
    if fmt:
        fs.add("format", "str", "pretty", "Output format {pretty|json}")
        fs.add("meta", "bool", False, "Indicates that token metadata such as the content hash and raft indices should be shown for each entry.")
    return fs


def _print(ui: UI, p: Parsed, obj: Any, pretty: str) -> int:
    fmt = p["format"]
    if fmt == "json":
        ui.out(json.dumps(obj, indent=4))
        return 0
    if fmt != "pretty":
        ui.err(f"Invalid format: {fmt}")
        return 1
    ui.out(pretty.rstrip("\n"))
    return 0


def _service_identities(values: list[str]) -> list[dict[str, Any]]:
    out = []
    for v in values:
        name, _, dcs = v.partition(":")
        d: dict[str, Any] = {"ServiceName": name}
        if dcs:
            d["Datacenters"] = [x.strip() for x in dcs.split(",") if x.strip()]
        out.append(d)
    return out


def _node_identities(values: list[str]) -> list[dict[str, str]]:
    out = []
    for v in values:
        name, sep, dc = v.partition(":")
        if not sep or not name or not dc:
            raise ValueError(f"Malformed -node-identity argument: {v!r}")
        out.append({"NodeName": name, "Datacenter": dc})
    return out


def _links_from(p: Parsed, id_flag: str, name_flag: str) -> list[dict[str, str]]:
    return [{"ID": x} for x in p[id_flag]] + [{"Name": x} for x in p[name_flag]]


def _rules_arg(value: str) -> str:
    """``-rules``: literal text, ``@file``, or ``-`` for stdin (Consul's helpers.LoadDataSource)."""
    if value.startswith("@"):
        with open(value[1:], encoding="utf-8") as f:
            return f.read()
    if value == "-":
        import sys

        return sys.stdin.read()
    return value


# ---------------------------------------------------------------------- bootstrap / agent tokens


def acl_bootstrap(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl bootstrap [options]\n\n  The bootstrap command will request Consul to generate a new token with unlimited privileges.")
    p = parse_or_usage(ui, fs, args)
    client = make_client(ui, p)
    with api_errors(ui, "Failed ACL bootstrapping"):
        tok = _call(client, "PUT", "/v1/acl/bootstrap")
    return _print(ui, p, tok, format_token(tok, p["meta"]))


def acl_set_agent_token(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl set-agent-token [options] TYPE TOKEN", fmt=False)
    p = parse_or_usage(ui, fs, args)
    if len(p.args) != 2:
        ui.err("Missing TYPE and TOKEN arguments" if len(p.args) < 2 else "Too many arguments (expected 2)")
        return 1
    kind, token = p.args
    client = make_client(ui, p)
    with api_errors(ui, "Failed setting token"):
        _call(client, "PUT", f"/v1/agent/token/{kind}", {"Token": token})
    ui.out(f'ACL token "{kind}" set successfully')
    return 0


# ---------------------------------------------------------------------- tokens


def _token_flags(fs: FlagSet) -> None:
    fs.add("description", "str", "", "A description of the token")
    fs.add("policy-id", "list", None, "ID of a policy to use for this token. May be specified multiple times")
    fs.add("policy-name", "list", None, "Name of a policy to use for this token. May be specified multiple times")
    fs.add("role-id", "list", None, "ID of a role to use for this token. May be specified multiple times")
    fs.add("role-name", "list", None, "Name of a role to use for this token. May be specified multiple times")
    fs.add("service-identity", "list", None, "Name of a service identity to use for this token, optionally with datacenters: 'web:dc1,dc2'")
    fs.add("node-identity", "list", None, "Name of a node identity to use for this token: 'node:datacenter'")


def acl_token_create(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl token create [options]\n\n  Create a new token.")
    _token_flags(fs)
    fs.add("local", "bool", False, "Create this as a datacenter local token")
    fs.add("expires-ttl", "str", "", "Duration until the token expires")
    fs.add("accessor", "str", "", "Create the token with this Accessor ID")
    fs.add("secret", "str", "", "Create the token with this Secret ID")
    p = parse_or_usage(ui, fs, args)
    try:
        body: dict[str, Any] = {
            "Description": p["description"],
            "Policies": _links_from(p, "policy-id", "policy-name"),
            "Roles": _links_from(p, "role-id", "role-name"),
            "ServiceIdentities": _service_identities(p["service-identity"]),
            "NodeIdentities": _node_identities(p["node-identity"]),
            "Local": p["local"],
        }
    except ValueError as err:
        ui.err(str(err))
        return 1
    if p["expires-ttl"]:
        body["ExpirationTTL"] = p["expires-ttl"]
    if p["accessor"]:
        body["AccessorID"] = p["accessor"]
    if p["secret"]:
        body["SecretID"] = p["secret"]
    client = make_client(ui, p)
    with api_errors(ui, "Failed to create new token"):
        tok = _call(client, "PUT", "/v1/acl/token", body)
    return _print(ui, p, tok, format_token(tok, p["meta"]))


def acl_token_read(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl token read [options] -accessor-id TOKENID\n\n  Read a token.")
    fs.add("accessor-id", "str", "", "The Accessor ID of the token to read.")
    fs.add("id", "str", "", "Deprecated: the Accessor ID of the token to read.")
    fs.add("self", "bool", False, "Indicates that the current HTTP token should be read by secret ID instead of expecting a -accessor-id option")
    fs.add("expanded", "bool", False, "Indicates that the contents of the policies and roles affecting the token should also be shown.")
    p = parse_or_usage(ui, fs, args)
    acc = p["accessor-id"] or p["id"]
    if not acc and not p["self"]:
        ui.err("Must specify the -accessor-id parameter")
        return 1
    client = make_client(ui, p)
    path = "/v1/acl/token/self" if p["self"] else f"/v1/acl/token/{acc}"
    try:
        tok = _call(client, "GET", path, params=[("expanded", "")] if p["expanded"] else [])
    except ConsulError as err:
        ui.err(f"Error reading token {acc or 'self'!r}: {err}".replace("'", '"'))
        return 1
    return _print(ui, p, tok, format_token(tok, p["meta"]))


def acl_token_update(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl token update [options]\n\n  Update a token (lists given replace the token's).")
    _token_flags(fs)
    fs.add("accessor-id", "str", "", "The Accessor ID of the token to update.")
    fs.add("id", "str", "", "Deprecated: the Accessor ID of the token to update.")
    p = parse_or_usage(ui, fs, args)
    acc = p["accessor-id"] or p["id"]
    if not acc:
        ui.err("Cannot update a token without specifying the -accessor-id parameter")
        return 1
    client = make_client(ui, p)
    try:
        cur = _call(client, "GET", f"/v1/acl/token/{acc}")
        body = dict(cur)
        if p.is_set("description"):
            body["Description"] = p["description"]
        if p.is_set("policy-id") or p.is_set("policy-name"):
            body["Policies"] = _links_from(p, "policy-id", "policy-name")
        if p.is_set("role-id") or p.is_set("role-name"):
            body["Roles"] = _links_from(p, "role-id", "role-name")
        if p.is_set("service-identity"):
            body["ServiceIdentities"] = _service_identities(p["service-identity"])
        if p.is_set("node-identity"):
            body["NodeIdentities"] = _node_identities(p["node-identity"])
        body.pop("SecretID", None)
        tok = _call(client, "PUT", f"/v1/acl/token/{acc}", body)
    except (ConsulError, ValueError) as err:
        ui.err(f"Failed to update token {acc}: {err}")
        return 1
    ui.out("Token updated successfully.")
    return _print(ui, p, tok, format_token(tok, p["meta"]))


def acl_token_clone(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl token clone [options]\n\n  Clone a token.")
    fs.add("accessor-id", "str", "", "The Accessor ID of the token to clone.")
    fs.add("id", "str", "", "Deprecated: the Accessor ID of the token to clone.")
    fs.add("description", "str", "", "A description of the new cloned token")
    p = parse_or_usage(ui, fs, args)
    acc = p["accessor-id"] or p["id"]
    if not acc:
        ui.err("Cannot clone a token without specifying the -accessor-id parameter")
        return 1
    client = make_client(ui, p)
    with api_errors(ui, "Failed to clone token"):
        tok = _call(client, "PUT", f"/v1/acl/token/{acc}/clone", {"Description": p["description"]})
    ui.out("Token cloned successfully.")
    return _print(ui, p, tok, format_token(tok, p["meta"]))


def acl_token_delete(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl token delete [options] -accessor-id TOKEN\n\n  Deletes an ACL token.", fmt=False)
    fs.add("accessor-id", "str", "", "The Accessor ID of the token to delete.")
    fs.add("id", "str", "", "Deprecated: the Accessor ID of the token to delete.")
    p = parse_or_usage(ui, fs, args)
    acc = p["accessor-id"] or p["id"]
    if not acc:
        ui.err("Must specify the -accessor-id parameter")
        return 1
    client = make_client(ui, p)
    with api_errors(ui, f'Error deleting token "{acc}"'):
        _call(client, "DELETE", f"/v1/acl/token/{acc}")
    ui.out(f'Token "{acc}" deleted successfully')
    return 0


def acl_token_list(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl token list [options]\n\n  List all the ACL tokens.")
    p = parse_or_usage(ui, fs, args)
    client = make_client(ui, p)
    with api_errors(ui, "Failed to retrieve the token list"):
        toks = _call(client, "GET", "/v1/acl/tokens") or []
    pretty = "\n".join(format_token(t, p["meta"], list_entry=True) for t in toks)
    return _print(ui, p, toks, pretty)


# ---------------------------------------------------------------------- policies


def _find(client: Client, kind: str, oid: str, name: str) -> dict[str, Any]:
    """A policy or role (``kind``) by ID, or else by name."""
    if oid:
        return dict(_call(client, "GET", f"/v1/acl/{kind}/{oid}"))
    return dict(_call(client, "GET", f"/v1/acl/{kind}/name/{name}"))


def _read(ui: UI, args: list[str], kind: str, fmt: Callable[[dict[str, Any], bool], str]) -> int:
    """``acl policy read`` / ``acl role read``: the same flags, checks and texts for both kinds."""
    fs = _fs(f"Usage: muster acl {kind} read [options] {kind.upper()}\n\n  Read a {kind} by ID or name.")
    fs.add("id", "str", "", f"The ID of the {kind} to read.")
    fs.add("name", "str", "", f"The name of the {kind} to read.")
    p = parse_or_usage(ui, fs, args)
    if not p["id"] and not p["name"]:
        ui.err("Must specify either the -id or -name parameters")
        return 1
    client = make_client(ui, p)
    with api_errors(ui, f'Error reading {kind} "{p["id"] or p["name"]}"'):
        obj = _find(client, kind, p["id"], p["name"])
    return _print(ui, p, obj, fmt(obj, p["meta"]))


def _delete(ui: UI, args: list[str], kind: str) -> int:
    """``acl policy delete`` / ``acl role delete``: by ID, or by name looked up first."""
    fs = _fs(f"Usage: muster acl {kind} delete [options] -id {kind.upper()}\n\n  Deletes an ACL {kind} by ID or name.",
             fmt=False)
    fs.add("id", "str", "", f"The ID of the {kind} to delete.")
    fs.add("name", "str", "", f"The name of the {kind} to delete.")
    p = parse_or_usage(ui, fs, args)
    if not p["id"] and not p["name"]:
        ui.err("Must specify either the -id or -name parameters")
        return 1
    client = make_client(ui, p)
    with api_errors(ui, f'Error deleting {kind} "{p["id"] or p["name"]}"'):
        oid = p["id"] or _find(client, kind, "", p["name"])["ID"]
        _call(client, "DELETE", f"/v1/acl/{kind}/{oid}")
    ui.out(f'{kind.capitalize()} "{oid}" deleted successfully')
    return 0


def acl_policy_create(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl policy create -name NAME [options]\n\n  Create a new policy.")
    fs.add("name", "str", "", "The new policy's name. This flag is required.")
    fs.add("description", "str", "", "A description of the policy")
    fs.add("valid-datacenter", "list", None, "Datacenter to which the policy should be valid. May be specified multiple times")
    fs.add("rules", "str", "", "The policy rules. May be prefixed with '@' to indicate that the value is a file path to load the rules from. '-' may also be given to indicate that the rules are available on stdin")
    p = parse_or_usage(ui, fs, args)
    if not p["name"]:
        ui.err("Missing require '-name' flag")
        return 1
    try:
        rules = _rules_arg(p["rules"])
    except OSError as err:
        ui.err(f"Error loading rules: {err}")
        return 1
    client = make_client(ui, p)
    body = {"Name": p["name"], "Description": p["description"], "Rules": rules, "Datacenters": p["valid-datacenter"]}
    with api_errors(ui, "Failed to create new policy"):
        pol = _call(client, "PUT", "/v1/acl/policy", body)
    return _print(ui, p, pol, format_policy(pol, p["meta"]))


def acl_policy_read(ui: UI, args: list[str]) -> int:
    return _read(ui, args, "policy", format_policy)


def acl_policy_update(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl policy update [options]\n\n  Update a policy.")
    fs.add("id", "str", "", "The ID of the policy to update.")
    fs.add("name", "str", "", "The name of the policy to update.")
    fs.add("new-name", "str", "", "The new name for the policy")
    fs.add("description", "str", "", "A description of the policy")
    fs.add("valid-datacenter", "list", None, "Datacenter to which the policy should be valid")
    fs.add("rules", "str", "", "The policy rules (text, @file or - for stdin)")
    p = parse_or_usage(ui, fs, args)
    if not p["id"] and not p["name"]:
        ui.err("Cannot update a policy without specifying the -id or -name parameter")
        return 1
    client = make_client(ui, p)
    try:
        cur = _find(client, "policy", p["id"], p["name"])
        body = {"ID": cur["ID"], "Name": p["new-name"] or cur["Name"], "Description": cur.get("Description", ""),
                "Rules": cur.get("Rules", ""), "Datacenters": cur.get("Datacenters") or []}
        if p.is_set("description"):
            body["Description"] = p["description"]
        if p.is_set("rules"):
            body["Rules"] = _rules_arg(p["rules"])
        if p.is_set("valid-datacenter"):
            body["Datacenters"] = p["valid-datacenter"]
        pol = _call(client, "PUT", f"/v1/acl/policy/{cur['ID']}", body)
    except (ConsulError, OSError) as err:
        ui.err(f"Failed to update policy {p['id'] or p['name']}: {err}")
        return 1
    return _print(ui, p, pol, format_policy(pol, p["meta"]))


def acl_policy_delete(ui: UI, args: list[str]) -> int:
    return _delete(ui, args, "policy")


def acl_policy_list(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl policy list [options]\n\n  Lists all the ACL policies.")
    p = parse_or_usage(ui, fs, args)
    client = make_client(ui, p)
    with api_errors(ui, "Failed to retrieve the policy list"):
        pols = _call(client, "GET", "/v1/acl/policies") or []
    return _print(ui, p, pols, "".join(format_policy_list_entry(x, p["meta"]) for x in pols))


# ---------------------------------------------------------------------- roles


def _role_flags(fs: FlagSet) -> None:
    fs.add("description", "str", "", "A description of the role")
    fs.add("policy-id", "list", None, "ID of a policy to use for this role. May be specified multiple times")
    fs.add("policy-name", "list", None, "Name of a policy to use for this role. May be specified multiple times")
    fs.add("service-identity", "list", None, "Name of a service identity to use for this role: 'web:dc1,dc2'")
    fs.add("node-identity", "list", None, "Name of a node identity to use for this role: 'node:datacenter'")


def acl_role_create(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl role create -name NAME [options]\n\n  Create a new role.")
    fs.add("name", "str", "", "The new role's name. This flag is required.")
    _role_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if not p["name"]:
        ui.err("Missing require '-name' flag")
        return 1
    try:
        body = {"Name": p["name"], "Description": p["description"], "Policies": _links_from(p, "policy-id", "policy-name"),
                "ServiceIdentities": _service_identities(p["service-identity"]),
                "NodeIdentities": _node_identities(p["node-identity"])}
    except ValueError as err:
        ui.err(str(err))
        return 1
    client = make_client(ui, p)
    with api_errors(ui, "Failed to create new role"):
        role = _call(client, "PUT", "/v1/acl/role", body)
    return _print(ui, p, role, format_role(role, p["meta"]))


def acl_role_read(ui: UI, args: list[str]) -> int:
    return _read(ui, args, "role", format_role)


def acl_role_update(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl role update [options]\n\n  Update a role (lists given replace the role's).")
    fs.add("id", "str", "", "The ID of the role to update.")
    fs.add("name", "str", "", "The new name of the role.")
    _role_flags(fs)
    p = parse_or_usage(ui, fs, args)
    if not p["id"]:
        ui.err("Cannot update a role without specifying the -id parameter")
        return 1
    client = make_client(ui, p)
    try:
        cur = _find(client, "role", p["id"], "")
        body = dict(cur)
        if p["name"]:
            body["Name"] = p["name"]
        if p.is_set("description"):
            body["Description"] = p["description"]
        if p.is_set("policy-id") or p.is_set("policy-name"):
            body["Policies"] = _links_from(p, "policy-id", "policy-name")
        if p.is_set("service-identity"):
            body["ServiceIdentities"] = _service_identities(p["service-identity"])
        if p.is_set("node-identity"):
            body["NodeIdentities"] = _node_identities(p["node-identity"])
        role = _call(client, "PUT", f"/v1/acl/role/{cur['ID']}", body)
    except (ConsulError, ValueError) as err:
        ui.err(f"Failed to update role {p['id']}: {err}")
        return 1
    return _print(ui, p, role, format_role(role, p["meta"]))


def acl_role_delete(ui: UI, args: list[str]) -> int:
    return _delete(ui, args, "role")


def acl_role_list(ui: UI, args: list[str]) -> int:
    fs = _fs("Usage: muster acl role list [options]\n\n  Lists all the ACL roles.")
    p = parse_or_usage(ui, fs, args)
    client = make_client(ui, p)
    with api_errors(ui, "Failed to retrieve the role list"):
        roles = _call(client, "GET", "/v1/acl/roles") or []
    pretty = "".join(f"{r.get('Name', '')}:\n" + format_role(r, p["meta"], indent="   ") for r in roles)
    return _print(ui, p, roles, pretty)


def login(ui: UI, args: list[str]) -> int:
    """``muster login``: exchange a bearer token for an ACL token through an auth method
    (Consul's ``command/login``); the new SecretID goes to ``-token-sink-file`` (mode 0600)."""
    fs = FlagSet(
        "Usage: muster login [options]\n\n"
        "  The login command will exchange the provided third party credentials with the\n"
        "  requested auth method for a newly minted Consul ACL token."
    )
    add_http_flags(fs)
    fs.add("method", "str", "", "Name of the auth method to login to.")
    fs.add("bearer-token-file", "str", "", "Path to a file containing a secret bearer token to use with this auth method.")
    fs.add("token-sink-file", "str", "", "The most recent token's SecretID is kept up to date in this file.")
    fs.add("meta", "map", None, "Metadata to set on the token, formatted as key=value. This flag may be specified multiple times to set multiple meta fields.")
    p = parse_or_usage(ui, fs, args)
    if not p["method"]:
        ui.err("Missing required '-method' flag")
        return 1
    if not p["token-sink-file"]:
        ui.err("Missing required '-token-sink-file' flag")
        return 1
    if not p["bearer-token-file"]:
        ui.err("Missing required '-bearer-token-file' flag")
        return 1
    try:
        with open(p["bearer-token-file"], encoding="utf-8") as f:
            bearer = f.read().strip()
    except OSError as err:
        ui.err(f"Error reading bearer token file: {err}")
        return 1
    if not bearer:
        ui.err(f"No bearer token found in {p['bearer-token-file']}")
        return 1
    client = make_client(ui, p)
    body: dict[str, Any] = {"AuthMethod": p["method"], "BearerToken": bearer}
    if p["meta"]:
        body["Meta"] = dict(p["meta"])
    try:
        tok = _call(client, "POST", "/v1/acl/login", body)
    except ConsulError as err:
        ui.err(f"Error logging in: {err}")
        return 1
    sink = p["token-sink-file"]
    try:
        tmp = f"{sink}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(str(tok.get("SecretID", "")))
        os.replace(tmp, sink)
    except OSError as err:
        ui.err(f"Error writing token to file sink: {err}")
        return 1
    return 0


def logout(ui: UI, args: list[str]) -> int:
    """``muster logout``: destroy the token given by ``-token``/``CONSUL_HTTP_TOKEN``, which must
    have been created by ``muster login`` (Consul's ``command/logout``)."""
    fs = FlagSet(
        "Usage: muster logout [options]\n\n"
        "  The logout command will destroy the provided token if it was created from\n"
        "  'consul login'."
    )
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)
    client = make_client(ui, p)
    try:
        _call(client, "POST", "/v1/acl/logout")
    except ConsulError as err:
        ui.err(f"Error destroying token: {err}")
        return 1
    return 0


ACL_COMMANDS = {
    "login": ("Login to Consul using an auth method", login),
    "logout": ("Destroy a Consul token created with login", logout),
    "acl bootstrap": ("Bootstrap Consul's ACL system", acl_bootstrap),
    "acl set-agent-token": ("Assign tokens for the Consul Agent's usage", acl_set_agent_token),
    "acl token create": ("Create an ACL token", acl_token_create),
    "acl token read": ("Read an ACL token", acl_token_read),
    "acl token update": ("Update an ACL token", acl_token_update),
    "acl token clone": ("Clone an ACL token", acl_token_clone),
    "acl token delete": ("Delete an ACL token", acl_token_delete),
    "acl token list": ("List ACL tokens", acl_token_list),
    "acl policy create": ("Create an ACL policy", acl_policy_create),
    "acl policy read": ("Read an ACL policy", acl_policy_read),
    "acl policy update": ("Update an ACL policy", acl_policy_update),
    "acl policy delete": ("Delete an ACL policy", acl_policy_delete),
    "acl policy list": ("Lists ACL policies", acl_policy_list),
    "acl role create": ("Create an ACL role", acl_role_create),
    "acl role read": ("Read an ACL role", acl_role_read),
    "acl role update": ("Update an ACL role", acl_role_update),
    "acl role delete": ("Delete an ACL role", acl_role_delete),
    "acl role list": ("Lists ACL roles", acl_role_list),
}

ACL_GROUPS = {
    "acl": (
        "Interact with Consul's ACLs",
        "Usage: muster acl <subcommand> [options] [args]\n\n"
        "  This command has subcommands for interacting with Consul's ACLs.\n\n"
        "Subcommands:\n"
        "    bootstrap          Bootstrap Consul's ACL system\n"
        "    policy             Manage Consul's ACL policies\n"
        "    role               Manage Consul's ACL roles\n"
        "    set-agent-token    Assign tokens for the Consul Agent's usage\n"
        "    token              Manage Consul's ACL tokens",
    ),
    "acl token": (
        "Manage Consul's ACL tokens",
        "Usage: muster acl token <subcommand> [options] [args]\n\n"
        "Subcommands:\n"
        "    clone     Clone an ACL token\n"
        "    create    Create an ACL token\n"
        "    delete    Delete an ACL token\n"
        "    list      List ACL tokens\n"
        "    read      Read an ACL token\n"
        "    update    Update an ACL token",
    ),
    "acl policy": (
        "Manage Consul's ACL policies",
        "Usage: muster acl policy <subcommand> [options] [args]\n\n"
        "Subcommands:\n"
        "    create    Create an ACL policy\n"
        "    delete    Delete an ACL policy\n"
        "    list      Lists ACL policies\n"
        "    read      Read an ACL policy\n"
        "    update    Update an ACL policy",
    ),
    "acl role": (
        "Manage Consul's ACL roles",
        "Usage: muster acl role <subcommand> [options] [args]\n\n"
        "Subcommands:\n"
        "    create    Create an ACL role\n"
        "    delete    Delete an ACL role\n"
        "    list      Lists ACL roles\n"
        "    read      Read an ACL role\n"
        "    update    Update an ACL role",
    ),
}
