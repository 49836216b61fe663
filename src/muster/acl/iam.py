"""The ``aws-iam`` auth method's pure parts: its Config, the bearer token, AWS's XML answers.

Behaviour follows Consul's ``internal/iamauth`` (``config.go``, ``token.go``, ``auth.go``,
``responses/``) and ``agent/consul/authmethod/awsauth``:

* the bearer token is a JSON object holding a *signed* ``sts:GetCallerIdentity`` request
  (``iam_http_request_method`` -- must be POST --, and base64 ``iam_request_url``,
  ``iam_request_headers`` -- a JSON header map -- and ``iam_request_body``).  The server never
  signs anything: it replays the request to STS, and STS's answer names the caller.  The body
  may only be ``Action=GetCallerIdentity`` (plus ``Version``); ``X-Amz-*`` headers outside a
  fixed list and ``AllowedSTSHeaderValues`` are refused; without ``STSEndpoint`` the URL's host
  must be an AWS STS host (so the server cannot be used as a proxy);
* with ``EnableIAMEntityDetails`` the STS request's headers also carry a signed
  ``iam:GetRole`` / ``iam:GetUser`` request (``X-Consul-IAM-GetEntity-*``), replayed to IAM the
  same way; its unique id must equal the caller's;
* with ``ServerIDHeaderValue`` each replayed request must carry, and have signed,
  ``X-Consul-IAM-ServerID`` with that value (against replay to another cluster);
* the caller's ARN (an assumed role canonicalised to its role) must be one of
  ``BoundIAMPrincipalARNs``, or match one ending in ``*`` when entity details are on.

Every refusal is an ``IAMError`` whose text is Consul's.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "ENTITY_BODY_HEADER",
    "ENTITY_HEADERS_HEADER",
    "ENTITY_METHOD_HEADER",
    "ENTITY_URL_HEADER",
    "SERVER_ID_HEADER",
    "IAMConfig",
    "IAMDetails",
    "IAMError",
    "IAMRequest",
    "IAMToken",
    "canonical_header",
    "check_server_id",
    "client_arn",
    "parse_caller_identity",
    "parse_entity",
    "parse_token",
]

SERVER_ID_HEADER = "X-Consul-IAM-ServerID"
ENTITY_METHOD_HEADER = "X-Consul-IAM-GetEntity-Method"
ENTITY_URL_HEADER = "X-Consul-IAM-GetEntity-URL"
ENTITY_HEADERS_HEADER = "X-Consul-IAM-GetEntity-Headers"
ENTITY_BODY_HEADER = "X-Consul-IAM-GetEntity-Body"
_DEFAULT_STS_HEADERS = (
    "X-Amz-Algorithm",
    "X-Amz-Content-Sha256",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
    "X-Amz-Signedheaders",
)
_TOKEN_CHAR = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class IAMError(ValueError):
    """A Config, bearer token or AWS answer the method refuses; ``str()`` is Consul's text."""


def canonical_header(key: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-amz-date`` -> ``X-Amz-Date`` (a key with
    characters a header name may not have is left as it is)."""
    if not _TOKEN_CHAR.match(key):
        return key
    return "-".join(p[:1].upper() + p[1:].lower() for p in key.split("-"))


def _parse_arn_sections(arn: str) -> list[str] | None:
    """aws-sdk's ``arn.Parse``: ``arn:partition:service:region:account:resource``."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    return parts


@dataclass
class IAMConfig:
    bound_arns: list[str]
    entity_details: bool = False
    entity_tags: list[str] = field(default_factory=list)
    server_id: str = ""
    max_retries: int = 0
    iam_endpoint: str = ""
    sts_endpoint: str = ""
    sts_region: str = ""
    allowed_sts_headers: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """``iamauth.Config.Validate`` (the header names are awsauth's constants, always set)."""
        if not self.bound_arns:
            raise IAMError("BoundIAMPrincipalARNs is required and must have at least 1 entry")
        for arn in self.bound_arns:
            n = arn.count("*")
            if n > 0:
                if not self.entity_details:
                    raise IAMError("Must set EnableIAMEntityDetails=true to use wildcards in BoundIAMPrincipalARNs")
                if n != 1 or not arn.endswith("*"):
                    raise IAMError("Only one wildcard is allowed at the end of the bound IAM principal ARN")
            parts = _parse_arn_sections(arn)
            if parts is None or parts[2] not in ("iam", "sts"):
                raise IAMError(f"Invalid principal ARN: {json.dumps(arn)}")
        if self.entity_tags and not self.entity_details:
            raise IAMError("Must set EnableIAMEntityDetails=true to use IAMUserTags")

    def trusts(self, arn: str) -> None:
        """``validateIdentity``: IAMError unless ``arn`` is bound (exactly, or by a trailing
        ``*`` when entity details are on)."""
        if arn in self.bound_arns:
            return
        if self.entity_details:
            for bound in self.bound_arns:
                if bound.endswith("*") and (len(bound) < 2 and arn == bound or arn.startswith(bound[:-1])):
                    return
        raise IAMError(f"IAM principal {arn} is not trusted")


@dataclass
class IAMDetails:
    """What a login verified: ``entity_name``/``entity_id``/``account_id`` always; the path and
    tags only with entity details."""

    entity_name: str
    entity_id: str
    account_id: str
    entity_path: str = ""
    entity_tags: dict[str, str] = field(default_factory=dict)


@dataclass
class IAMRequest:
    """A signed request to replay: sent to ``url`` with ``Host: host`` (the signed host)."""

    method: str
    url: str
    host: str
    headers: dict[str, list[str]]
    body: str


@dataclass
class IAMToken:
    caller: IAMRequest
    entity: IAMRequest | None = None
    #: ``GetRole`` or ``GetUser`` when ``entity`` is set.
    entity_type: str = ""


def _b64(s: Any, what: str) -> str:
    if not isinstance(s, str):
        raise IAMError(f"invalid token: json: cannot unmarshal into field {what} of type string")
    try:
        return base64.b64decode(s, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        bad = next((i for i, c in enumerate(s) if not (c.isalnum() or c in "+/=")), len(s))
        raise IAMError(f"invalid token: illegal base64 data at input byte {bad}") from None


def _header_map(text: str, what: str) -> dict[str, list[str]]:
    """A JSON ``http.Header`` (``{"Name": ["v", ...]}``)."""
    try:
        raw = json.loads(text)
    except ValueError as err:
        raise IAMError(f"{what}{err}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in raw.values()):
        raise IAMError(f"{what}json: cannot unmarshal into Go value of type http.Header")
    return {str(k): list(v) for k, v in raw.items()}


def _url(s: str) -> tuple[str, str, str]:
    """(scheme, host, request URI) of an absolute URL; IAMError as Consul's ``parseUrl``."""
    try:
        u = urlsplit(s)
    except ValueError as err:
        raise IAMError(str(err)) from None
    if not u.scheme or not u.netloc:
        raise IAMError(f"url is invalid: {json.dumps(s)}")
    uri = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return u.scheme, u.netloc, uri


def _values(headers: dict[str, list[str]], name: str) -> list[str]:
    return headers.get(canonical_header(name), [])


def _one_header(headers: dict[str, list[str]], name: str) -> str:
    values = _values(headers, name)
    if not values:
        raise IAMError(f"missing header {json.dumps(name)}")
    if len(values) != 1:
        raise IAMError(f"invalid value for header {json.dumps(name)} (expected 1 item)")
    return values[0]


def _body(body: str, allowed: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """``parseRequestBody``: a form body with a non-empty ``Action`` and only ``allowed`` keys,
    each with one of its allowed values (an empty tuple allows any)."""
    qs: dict[str, list[str]] = {}
    for k, v in parse_qsl(body, keep_blank_values=True):
        qs.setdefault(k, []).append(v)
    if not qs.get("Action") or qs["Action"][0] == "":
        raise ValueError('missing field "Action"')
    for k, vs in qs.items():
        if k != "Action" and k not in allowed:
            raise ValueError(f'unexpected field "{k}"')
        exp = allowed.get(k, ())
        if exp and (len(vs) != 1 or vs[0] not in exp):
            raise ValueError(f"unexpected value {k}=[{' '.join(vs)}]")
    return qs


def _host_ok(host: str, service: str) -> bool:
    return host.endswith(".amazonaws.com") and (host.startswith(f"{service}.") or host.startswith(f"{service}-fips."))


def _request(method: str, endpoint: str, raw_url: str, body: str, headers: dict[str, list[str]]) -> IAMRequest:
    """``buildHttpRequest``: the signed URI and Host kept, sent to ``endpoint`` (the configured
    endpoint, else the signed URL itself, to which Consul appends the URI again)."""
    _, host, uri = _url(raw_url)
    return IAMRequest(method, f"{endpoint}{uri}", host, headers, body)


def parse_token(login_token: str, c: IAMConfig) -> IAMToken:
    """``NewBearerToken`` and ``validate``: the requests to replay, or IAMError."""
    try:
        raw = json.loads(login_token)
    except ValueError as err:
        raise IAMError(f"invalid token: {err}") from None
    if not isinstance(raw, dict):
        raise IAMError("invalid token: json: cannot unmarshal into Go value of type iamauth.BearerToken")
    method = raw.get("iam_http_request_method", "")
    url = _b64(raw.get("iam_request_url", ""), "iam_request_url")
    headers = _header_map(_b64(raw.get("iam_request_headers", ""), "iam_request_headers"), "invalid token: ")
    body = _b64(raw.get("iam_request_body", ""), "iam_request_body")
    try:
        _url(url)
    except IAMError as err:
        raise IAMError(f"invalid token: {err}") from None
    if method != "POST":
        raise IAMError("iam_http_request_method must be POST")
    if not c.sts_endpoint and not _host_ok(urlsplit(url).hostname or "", "sts"):
        raise IAMError(f"invalid STS hostname: {json.dumps(urlsplit(url).hostname or '')}")
    try:
        _body(body, {"Action": ("GetCallerIdentity",), "Version": ()})
    except ValueError as err:
        raise IAMError(f"iam_request_body error: {err}") from None
    for k in headers:
        h = canonical_header(k)
        if h.startswith("X-Amz-") and h not in _DEFAULT_STS_HEADERS and h not in c.allowed_sts_headers:
            raise IAMError(f"invalid request header: {h}")
    token = IAMToken(_request("POST", c.sts_endpoint or url, url, body, headers))
    if c.entity_details:
        e_method = _one_header(headers, ENTITY_METHOD_HEADER)
        e_url = _one_header(headers, ENTITY_URL_HEADER)
        e_headers = _header_map(_one_header(headers, ENTITY_HEADERS_HEADER), "")
        e_body = _one_header(headers, ENTITY_BODY_HEADER)
        _url(e_url)
        if not c.iam_endpoint and not _host_ok(urlsplit(e_url).hostname or "", "iam"):
            raise IAMError(f"invalid IAM hostname: {json.dumps(urlsplit(e_url).hostname or '')}")
        allowed = {"Action": ("GetRole", "GetUser"), "RoleName": (), "UserName": (), "Version": ()}
        try:
            qs = _body(e_body, allowed)
        except ValueError as err:
            raise IAMError(f"iam_request_headers[{ENTITY_BODY_HEADER}] error: {err}") from None
        action = qs["Action"][0]
        if not ((action == "GetUser" and "UserName" in qs and "RoleName" not in qs) or (action == "GetRole" and "RoleName" in qs and "UserName" not in qs)):
            raise IAMError(f"iam_request_headers[{json.dumps(ENTITY_BODY_HEADER)}] error: invalid request body {json.dumps(e_body)}")
        token.entity = _request(e_method, c.iam_endpoint or e_url, e_url, e_body, e_headers)
        token.entity_type = action
    return token


def check_server_id(headers: dict[str, list[str]], value: str) -> None:
    """``validateHeaderValue``: the server ID header is present, equal to ``value`` and signed."""
    provided = next((",".join(v) for k, v in headers.items() if k.lower() == SERVER_ID_HEADER.lower()), "")
    if not provided:
        raise IAMError(f"missing header {json.dumps(SERVER_ID_HEADER)}")
    if provided != value:
        raise IAMError(f"expected {json.dumps(value)} but got {json.dumps(provided)}")
    authz = headers.get("Authorization")
    if authz is None:
        raise IAMError("missing Authorization header")
    m = re.match(r".*SignedHeaders=([^,]+)", ",".join(authz))
    if m is None:
        raise IAMError("server id header wasn't signed")
    if SERVER_ID_HEADER.lower() not in m.group(1).split(";"):
        raise IAMError("header wasn't signed")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _text(el: ET.Element | None, name: str) -> str:
    c = _child(el, name) if el is not None else None
    return (c.text or "") if c is not None else ""


def parse_caller_identity(text: str) -> tuple[str, str, str]:
    """(Arn, UserId, Account) of a ``GetCallerIdentityResponse``, or IAMError."""
    text = text.strip()
    if not text.startswith(("<GetCallerIdentityResponse", "<?xml")):
        raise IAMError("error parsing STS response")
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        raise IAMError("error parsing STS response") from None
    if _local(root.tag) != "GetCallerIdentityResponse":
        raise IAMError("error parsing STS response")
    results = [c for c in root if _local(c.tag) == "GetCallerIdentityResult"]
    if len(results) != 1:
        raise IAMError(f"received {len(results)} identities in STS response but expected 1")
    r = results[0]
    return _text(r, "Arn"), _text(r, "UserId"), _text(r, "Account")


def parse_entity(text: str, kind: str) -> tuple[str, str, str, dict[str, str]]:
    """(Arn, Path, unique id, tags) of a ``GetRoleResponse`` / ``GetUserResponse``, or IAMError."""
    if not text.startswith(("<GetRoleResponse", "<GetUserResponse", "<?xml")):
        raise IAMError("error parsing IAM response: body of iam:GetRole or iam:GetUser is invalid")
    entity = "Role" if kind == "GetRole" else "User"
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise IAMError(f"error parsing IAM response: {err}") from None
    if _local(root.tag) != f"{kind}Response":
        raise IAMError(f"error parsing IAM response: expected element type <{kind}Response> but have <{_local(root.tag)}>")
    results = [c for c in root if _local(c.tag) == f"{kind}Result"]
    if len(results) != 1:
        raise IAMError(f"error parsing IAM response: received {len(results)} identities in iam:{kind} response but expected 1")
    e = _child(results[0], entity)
    tags: dict[str, str] = {}
    t = _child(e, "Tags") if e is not None else None
    for member in t if t is not None else []:
        if _local(member.tag) == "member":
            tags[_text(member, "Key")] = _text(member, "Value")
    return _text(e, "Arn"), _text(e, "Path"), _text(e, f"{entity}Id"), tags


def client_arn(arn: str) -> tuple[str, str]:
    """``responses.ParseArn`` + ``CanonicalArn``: (canonical ARN, friendly name); IAMError for
    an ARN that is not an IAM user, role or assumed role."""
    full = arn.split(":")
    if len(full) != 6:
        raise IAMError(f"unrecognized arn: contains {len(full)} colon-separated parts, expected 6")
    if full[0] != "arn":
        raise IAMError('unrecognized arn: does not begin with "arn:"')
    partition, service, account = full[1], full[2], full[4]
    if not partition:
        raise IAMError(f"unrecognized arn: {json.dumps(arn)} is missing the partition")
    if service not in ("iam", "sts"):
        raise IAMError(f"unrecognized service: {service}, not one of iam or sts")
    if not account:
        raise IAMError(f"unrecognized arn: {json.dumps(arn)} is missing the account number")
    parts = full[5].split("/")
    if len(parts) < 2:
        raise IAMError(f"unrecognized arn: {json.dumps(full[5])} contains fewer than 2 slash-separated parts")
    kind, name = parts[0], parts[-1]
    if kind == "assumed-role":
        if len(parts) < 3:
            raise IAMError(f"unrecognized arn: {json.dumps(full[5])} contains fewer than 3 slash-separated parts")
        kind, name = "role", parts[1]
    elif kind not in ("user", "role"):
        raise IAMError(f"unrecognized principal type: {json.dumps(kind)}")
    if not name:
        raise IAMError(f"unrecognized arn: {json.dumps(arn)} is missing the resource name")
    return f"arn:{partition}:iam::{account}:{kind}/{name}", name
