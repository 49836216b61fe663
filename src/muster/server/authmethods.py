"""Auth methods: turn a bearer token into a verified identity, and binding rules into a token's
links and identities (Consul's ``agent/consul/authmethod`` validators and ``auth/binder.go``).

Two method types validate logins:

* ``jwt``: the token's signature is checked against ``JWTValidationPubKeys`` (PEM), the JWK
  set served at ``JWKSURL`` (fetched with ``JWKSCACert`` as the trust root), or the one an OIDC
  provider's discovery document (``OIDCDiscoveryURL``) names, whose ``issuer`` the token's ``iss``
  must then be; key sets are cached per method row.  Then its claims (``muster.acl.jwt``).  Identity: ``value.<name>`` for every
  ``ClaimMappings`` target and ``list.<name>`` for every ``ListClaimMappings`` target
  (selectable); ``value.<name>`` are also the bind-name variables.
* ``kubernetes``: the token is sent to the cluster's TokenReview API (``POST
  <Host>/apis/authentication.k8s.io/v1/tokenreviews``, authenticated with
  ``ServiceAccountJWT``, trusting ``CACert``); an authenticated ``system:serviceaccount:<ns>:<name>``
  user is the identity, its name overridden by the ServiceAccount's
  ``consul.hashicorp.com/service-name`` annotation.  Fields and variables:
  ``serviceaccount.namespace``, ``serviceaccount.name``, ``serviceaccount.uid``.

The types are Consul CE's registered ones (``TYPES``); ``oidc`` is Enterprise-only, so it is
refused on write, and a stored ``oidc`` row (from another server's snapshot) refuses logins with
the text Consul's ``loadAuthMethodValidator`` gives for an unregistered type.  Each type's
``Config`` is decoded as ``authmethod.ParseConfig`` decodes it (mapstructure with
``ErrorUnused``): keys match a field exactly or case-insensitively, any other key is refused.

Binding rules: a rule applies when its ``Selector`` (go-bexpr, ``muster.filter``) matches the
identity's fields (an empty selector always matches; an invalid one never does); its
``BindName`` is interpolated (``${var}``, values lower-cased) and becomes a service identity,
a node identity in this datacenter, a role or policy link (skipped when no row has that name),
or a templated policy.  Every network call is bounded by ``HTTP_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..acl.iam import (
    IAMConfig,
    IAMDetails,
    IAMError,
    IAMRequest,
    check_server_id,
    client_arn,
    parse_caller_identity,
    parse_entity,
    parse_token,
)
from ..acl.jwt import (
    JWTError,
    PublicKey,
    extract_claims,
    jwk_keys,
    parse_jwt,
    parse_public_key_pem,
    validate_claims,
    verify_signature,
)
from ..acl.model import (
    TEMPLATES,
    Link,
    NodeIdentity,
    ServiceIdentity,
    TemplatedPolicy,
    TemplateError,
    render_template,
)
from ..durations import parse_body_duration
from ..errors import MusterError
from ..filter import FilterError, FilterEvalError, compile_filter
from ..goparse import invalid_keys, match_fields

log = logging.getLogger("muster.acl")

HTTP_TIMEOUT = 10.0
#: go-retryablehttp's bounds, as ``iamauth`` configures them (``MaxRetries`` is the method's).
RETRY_WAIT_MIN = 0.5
RETRY_WAIT_MAX = 30.0
MAX_RESPONSE = 1 << 20
SERVICE_NAME_ANNOTATION = "consul.hashicorp.com/service-name"
SUPPORTED_ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512")
_IDENTITY_NAME = re.compile(r"^[a-z0-9]([a-z0-9\-_]*[a-z0-9])?$")
_ROLE_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,256}$")
_POLICY_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,128}$")
_HIL = re.compile(r"\$\{\s*([^}]*?)\s*\}")


#: Consul CE's registered auth method types, sorted as ``authmethod.Types()`` lists them.
TYPES = ("aws-iam", "jwt", "kubernetes")

#: Each type's ``Config`` fields: ``ssoauth.Config`` (CE), ``kubeauth.Config``, ``awsauth.Config``.
CONFIG_FIELDS: dict[str, tuple[str, ...]] = {
    "jwt": (
        "JWTSupportedAlgs",
        "BoundAudiences",
        "ClaimMappings",
        "ListClaimMappings",
        "OIDCDiscoveryURL",
        "OIDCDiscoveryCACert",
        "JWKSURL",
        "JWKSCACert",
        "JWTValidationPubKeys",
        "BoundIssuer",
        "ExpirationLeeway",
        "NotBeforeLeeway",
        "ClockSkewLeeway",
    ),
    "kubernetes": ("Host", "CACert", "ServiceAccountJWT"),
    "aws-iam": (
        "BoundIAMPrincipalARNs",
        "EnableIAMEntityDetails",
        "IAMEntityTags",
        "ServerIDHeaderValue",
        "MaxRetries",
        "IAMEndpoint",
        "STSEndpoint",
        "STSRegion",
        "AllowedSTSHeaderValues",
    ),
}


class AuthMethodError(MusterError):
    """A login the method refuses (bad signature, expired token, failed review...): 500 with
    the validator's text, as Consul's login answers a validator's error."""


@dataclass
class Identity:
    """What a validator verified: bexpr fields for selectors, variables for bind names."""

    fields: dict[str, Any]
    variables: dict[str, str]


@dataclass
class Bindings:
    service_identities: list[ServiceIdentity] = field(default_factory=list)
    node_identities: list[NodeIdentity] = field(default_factory=list)
    roles: list[Link] = field(default_factory=list)
    policies: list[Link] = field(default_factory=list)
    templated: list[TemplatedPolicy] = field(default_factory=list)

    def none(self) -> bool:
        return not (self.service_identities or self.node_identities or self.roles or self.policies or self.templated)


# ---------------------------------------------------------------------- config


class ConfigError(MusterError):
    """A method's Config that cannot work, in the validator's words (no prefix): a write
    answers ``Invalid Auth Method: <text>``, a login with a stored row ``auth method validator
    for "<name>" could not be initialized: <text>``, as Consul's two callers of ``NewValidator``."""


def _unusable(method: Mapping[str, Any], err: ConfigError) -> MusterError:
    """Consul's ``loadAuthMethodValidator`` error for a stored row that makes no validator."""
    return MusterError(f'auth method validator for "{method.get("Name")}" could not be initialized: {err.message}')


def _unregistered(typ: str) -> ConfigError:
    return ConfigError(f"no auth method registered with type: {typ}")


def decode_config(typ: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with canonical field names (``authmethod.ParseConfig``); ConfigError for an
    unregistered type or a key no field of the type takes."""
    fields = CONFIG_FIELDS.get(typ)
    if fields is None:
        raise _unregistered(typ)
    out, unused = match_fields(cfg, fields)
    if unused:
        raise ConfigError(f"error decoding config: {invalid_keys(unused)}")
    return out


def _strings(cfg: Mapping[str, Any], name: str) -> list[str]:
    v = cfg.get(name)
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"error decoding config: '{name}' must be a list of strings")
    return list(v)


def _scalar(cfg: Mapping[str, Any], name: str, go_type: str, ok: Callable[[Any], bool]) -> Any:
    """``cfg[name]`` (None when absent); ConfigError naming the Go type when ``ok`` refuses it."""
    v = cfg.get(name)
    if v is not None and not ok(v):
        raise ConfigError(f"error decoding config: '{name}' expected type '{go_type}'")
    return v


def _string(cfg: Mapping[str, Any], name: str) -> str:
    return str(_scalar(cfg, name, "string", lambda v: isinstance(v, str)) or "")


def _bool(cfg: Mapping[str, Any], name: str) -> bool:
    return bool(_scalar(cfg, name, "bool", lambda v: isinstance(v, bool)))


def _int(cfg: Mapping[str, Any], name: str) -> int:
    whole = lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())  # noqa: E731
    return int(_scalar(cfg, name, "int", whole) or 0)


def _mapping(cfg: Mapping[str, Any], name: str) -> dict[str, str]:
    v = cfg.get(name)
    if v is None:
        return {}
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise ConfigError(f"error decoding config: '{name}' must be a map of strings")
    return {str(k): x for k, x in v.items()}


def _duration(cfg: Mapping[str, Any], name: str) -> float:
    v = cfg.get(name)
    if v is None:
        return 0.0
    try:
        return parse_body_duration(v)
    except ValueError as err:
        raise ConfigError(f"error decoding config: '{name}': {err}") from None


def _ca_context(pem: str, what: str) -> ssl.SSLContext | None:
    """An SSL context trusting only ``pem`` (None: the system roots); ConfigError if unparsable."""
    if not pem:
        return None
    ctx = ssl.create_default_context()
    try:
        ctx.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError) as err:
        raise ConfigError(f"error parsing {what}: {err}") from None
    return ctx


@dataclass
class JWTConfig:
    pub_keys: list[PublicKey]
    jwks_url: str
    #: ``OIDCDiscoveryURL``: keys from the provider's ``jwks_uri``; ``iss`` must be its issuer.
    discovery_url: str
    jwks_ca: str
    bound_issuer: str
    bound_audiences: list[str]
    claim_mappings: dict[str, str]
    list_claim_mappings: dict[str, str]
    supported_algs: list[str]
    expiration_leeway: float
    not_before_leeway: float
    clock_skew_leeway: float


def jwt_config(cfg: Mapping[str, Any]) -> JWTConfig:
    """Validate a ``jwt`` method's Config as go-sso's ``Config.Validate`` (texts included)."""
    cfg = decode_config("jwt", cfg)
    keys = _strings(cfg, "JWTValidationPubKeys")
    jwks_url = _string(cfg, "JWKSURL")
    discovery = _string(cfg, "OIDCDiscoveryURL")
    if sum(1 for x in (keys, jwks_url, discovery) if x) != 1:
        raise ConfigError("exactly one of 'JWTValidationPubKeys', 'JWKSURL', or 'OIDCDiscoveryURL' must be set for type \"jwt\"")
    jwks_ca = _string(cfg, "JWKSCACert")
    if jwks_ca and not jwks_url:
        raise ConfigError("'JWKSCACert' should not be set unless 'JWKSURL' is set")
    _ca_context(jwks_ca, "JWKSCACert")
    parsed: list[PublicKey] = []
    for i, pem in enumerate(keys):
        try:
            parsed.append(parse_public_key_pem(pem))
        except JWTError as err:
            raise ConfigError(f"error parsing public key JWTValidationPubKeys[{i}]: {err}") from None
    algs = _strings(cfg, "JWTSupportedAlgs")
    for a in algs:
        if a not in SUPPORTED_ALGS:
            raise ConfigError(f"Invalid supported algorithm: {a}")
    mappings = _mapping(cfg, "ClaimMappings")
    list_mappings = _mapping(cfg, "ListClaimMappings")
    for what, m in (("ClaimMappings", mappings), ("ListClaimMappings", list_mappings)):
        seen: set[str] = set()
        for target in m.values():
            if target in seen:
                raise ConfigError(f'{what} contains multiple mappings for key "{target}"')
            seen.add(target)
    return JWTConfig(
        pub_keys=parsed,
        jwks_url=jwks_url,
        discovery_url=discovery,
        jwks_ca=jwks_ca or _string(cfg, "OIDCDiscoveryCACert"),
        bound_issuer=_string(cfg, "BoundIssuer"),
        bound_audiences=_strings(cfg, "BoundAudiences"),
        claim_mappings=mappings,
        list_claim_mappings=list_mappings,
        supported_algs=algs,
        expiration_leeway=_duration(cfg, "ExpirationLeeway"),
        not_before_leeway=_duration(cfg, "NotBeforeLeeway"),
        clock_skew_leeway=_duration(cfg, "ClockSkewLeeway"),
    )


@dataclass
class KubernetesConfig:
    host: str
    ca_cert: str
    service_account_jwt: str


def kubernetes_config(cfg: Mapping[str, Any]) -> KubernetesConfig:
    """Validate a ``kubernetes`` method's Config as Consul's ``kubeauth.NewValidator``."""
    cfg = decode_config("kubernetes", cfg)
    host = _string(cfg, "Host")
    if not host:
        raise ConfigError("Config.Host is required")
    ca = _string(cfg, "CACert")
    if not ca:
        raise ConfigError("Config.CACert is required")
    _ca_context(ca, "kubernetes ca cert")
    jwt = _string(cfg, "ServiceAccountJWT")
    if not jwt:
        raise ConfigError("Config.ServiceAccountJWT is required")
    try:
        parse_jwt(jwt)
    except JWTError as err:
        raise ConfigError(f"Config.ServiceAccountJWT is not a valid JWT: {err}") from None
    if not host.startswith(("https://", "http://")):
        host = "https://" + host
    return KubernetesConfig(host.rstrip("/"), ca, jwt)


def aws_iam_config(cfg: Mapping[str, Any]) -> IAMConfig:
    """Validate an ``aws-iam`` method's Config as Consul's ``iamauth.Config.Validate``."""
    cfg = decode_config("aws-iam", cfg)
    c = IAMConfig(
        bound_arns=_strings(cfg, "BoundIAMPrincipalARNs"),
        entity_details=_bool(cfg, "EnableIAMEntityDetails"),
        entity_tags=_strings(cfg, "IAMEntityTags"),
        server_id=_string(cfg, "ServerIDHeaderValue"),
        max_retries=_int(cfg, "MaxRetries"),
        iam_endpoint=_string(cfg, "IAMEndpoint"),
        sts_endpoint=_string(cfg, "STSEndpoint"),
        sts_region=_string(cfg, "STSRegion"),
        allowed_sts_headers=_strings(cfg, "AllowedSTSHeaderValues"),
    )
    try:
        c.validate()
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return c


def validate_config(typ: str, cfg: Mapping[str, Any]) -> None:
    """ConfigError when ``cfg`` cannot work for a method of type ``typ``."""
    if typ == "jwt":
        jwt_config(cfg)
    elif typ == "kubernetes":
        kubernetes_config(cfg)
    elif typ == "aws-iam":
        aws_iam_config(cfg)
    else:
        raise _unregistered(typ)


def variable_names(typ: str, cfg: Mapping[str, Any]) -> list[str]:
    """The bind-name variables a method's identities carry (for validating binding rules)."""
    return list(blank_identity(typ, cfg).variables)


def blank_identity(typ: str, cfg: Mapping[str, Any]) -> Identity:
    """An identity with every field and variable empty (each validator's ``NewIdentity``), so
    selectors that test for empty values work and bind names can be checked."""
    if typ == "jwt":
        c = jwt_config(cfg)
        return Identity(
            {"value": {t: "" for t in c.claim_mappings.values()}, "list": {t: [] for t in c.list_claim_mappings.values()}},
            {f"value.{t}": "" for t in c.claim_mappings.values()},
        )
    if typ == "kubernetes":
        names = ("namespace", "name", "uid")
        return Identity({"serviceaccount": dict.fromkeys(names, "")}, {f"serviceaccount.{n}": "" for n in names})
    if typ == "aws-iam":
        return iam_identity(aws_iam_config(cfg), IAMDetails("", "", ""))
    raise _unregistered(typ)


def iam_identity(c: IAMConfig, d: IAMDetails) -> Identity:
    """awsauth's identity: fields ``entity_name``, ``entity_id``, ``account_id``,
    ``entity_path``, ``entity_tags``; variables the first three, plus ``entity_path`` and
    ``entity_tags.<tag>`` for each of ``IAMEntityTags`` when entity details are on."""
    tags = {t: d.entity_tags.get(t, "") for t in c.entity_tags} if c.entity_details else {}
    fields: dict[str, Any] = {
        "entity_name": d.entity_name,
        "entity_id": d.entity_id,
        "account_id": d.account_id,
        "entity_path": d.entity_path,
        "entity_tags": tags,
    }
    variables = {"entity_name": d.entity_name, "entity_id": d.entity_id, "account_id": d.account_id}
    if c.entity_details:
        variables["entity_path"] = d.entity_path
        variables.update({f"entity_tags.{t}": v for t, v in tags.items()})
    return Identity(fields, variables)


# ---------------------------------------------------------------------- HTTP


async def _fetch_json(method: str, url: str, ca_pem: str, token: str = "", body: Any = None) -> tuple[int, Any]:
    """One bounded HTTPS exchange; (status, decoded JSON or None).  MusterError on transport errors."""
    ctx = _ca_context(ca_pem, "CA certificate")
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.request(method, url, json=body, headers=headers, ssl=ctx if ctx is not None else True) as resp:
                raw = await resp.content.read(MAX_RESPONSE + 1)
                if len(raw) > MAX_RESPONSE:
                    raise MusterError(f"{method} {url}: response larger than {MAX_RESPONSE} bytes")
                try:
                    return resp.status, json.loads(raw) if raw else None
                except ValueError:
                    return resp.status, None
    except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as err:
        raise MusterError(f"{method} {url}: {err or type(err).__name__}") from None


# ---------------------------------------------------------------------- validators


class Validators:
    """Validates logins for every method; JWK sets are cached per (method, ModifyIndex)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self._jwks: dict[tuple[str, int], list[tuple[str, PublicKey]]] = {}
        #: The issuer an OIDC discovery document named, per method.
        self._issuers: dict[str, str] = {}

    async def validate(self, method: Mapping[str, Any], bearer: str) -> Identity:
        """The verified identity of ``bearer``; AuthMethodError (the validator's refusal), or
        MusterError ``auth method validator for "<name>" could not be initialized: ...`` when
        the stored row cannot make a validator (an Enterprise type, a Config this version
        refuses), as Consul's ``loadAuthMethodValidator``."""
        try:
            return await self._validate(method, bearer)
        except ConfigError as err:
            raise _unusable(method, err) from None

    async def _validate(self, method: Mapping[str, Any], bearer: str) -> Identity:
        typ = str(method.get("Type"))
        cfg = method.get("Config") or {}
        if typ == "jwt":
            return await self._jwt(method, jwt_config(cfg), bearer)
        if typ == "kubernetes":
            return await self._kubernetes(kubernetes_config(cfg), bearer)
        if typ == "aws-iam":
            return await self._aws_iam(aws_iam_config(cfg), bearer)
        raise _unregistered(typ)

    async def _jwt_keys(self, method: Mapping[str, Any], c: JWTConfig) -> list[tuple[str, PublicKey]]:
        if c.pub_keys:
            return [("", k) for k in c.pub_keys]
        key = (str(method.get("Name")), int(method.get("ModifyIndex") or 0))
        hit = self._jwks.get(key)
        if hit is not None:
            return hit
        url = c.jwks_url
        if c.discovery_url:
            status, doc = await _fetch_json("GET", c.discovery_url.rstrip("/") + "/.well-known/openid-configuration", c.jwks_ca)
            if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("jwks_uri"), str):
                raise AuthMethodError(f"error checking OIDCDiscoveryURL: unexpected answer ({status})")
            url = doc["jwks_uri"]
            self._issuers[key[0]] = str(doc.get("issuer") or c.discovery_url)
        status, doc = await _fetch_json("GET", url, c.jwks_ca)
        if status != 200:
            raise AuthMethodError(f"error verifying token: fetching keys: {status}")
        try:
            keys = jwk_keys(doc)
        except JWTError as err:
            raise AuthMethodError(f"error verifying token: {err}") from None
        self._jwks = {k: v for k, v in self._jwks.items() if k[0] != key[0]}
        self._jwks[key] = keys
        return keys

    async def _jwt(self, method: Mapping[str, Any], c: JWTConfig, bearer: str) -> Identity:
        try:
            tok = parse_jwt(bearer)
        except JWTError as err:
            raise AuthMethodError(str(err)) from None
        keys = await self._jwt_keys(method, c)
        try:
            verify_signature(tok, keys, c.supported_algs if not c.pub_keys else ())
            issuer = c.bound_issuer
            if c.discovery_url:
                # go-oidc's verifier: the provider's issuer, and audiences checked non-strictly.
                issuer = self._issuers.get(str(method.get("Name")), c.discovery_url)
            validate_claims(
                tok.claims,
                self.now(),
                bound_issuer=issuer,
                bound_audiences=c.bound_audiences,
                strict_audience=not c.discovery_url,
                expiration_leeway=c.expiration_leeway,
                not_before_leeway=c.not_before_leeway,
                clock_skew_leeway=c.clock_skew_leeway,
            )
            values, lists = extract_claims(tok.claims, c.claim_mappings, c.list_claim_mappings)
        except JWTError as err:
            raise AuthMethodError(str(err)) from None
        fields = {
            "value": {t: values.get(t, "") for t in c.claim_mappings.values()},
            "list": {t: lists.get(t, []) for t in c.list_claim_mappings.values()},
        }
        variables = {f"value.{t}": values.get(t, "") for t in c.claim_mappings.values()}
        return Identity(fields, variables)

    async def _aws_iam(self, c: IAMConfig, bearer: str) -> Identity:
        """``iamauth.Authenticator.ValidateLogin``: replay the token's signed STS request (and
        IAM request, with entity details), then check the caller is bound."""
        try:
            token = parse_token(bearer, c)
            if c.server_id:
                check_server_id(token.caller.headers, c.server_id)
            arn, user_id, account = parse_caller_identity(await _replay(token.caller, c.max_retries, "GetCallerIdentity"))
            canonical, name = client_arn(arn)
            details = IAMDetails(name, user_id, account)
            if token.entity is not None:
                if c.server_id:
                    check_server_id(token.entity.headers, c.server_id)
                xml = await _replay(token.entity, c.max_retries, "iam:GetUser or iam:GetRole")
                canonical, details.entity_path, entity_id, details.entity_tags = parse_entity(xml, token.entity_type)
                if entity_id != user_id:
                    raise IAMError("unique id mismatch in login token")
            log.info("iamauth login attempt: arn=%s", canonical)
            c.trusts(canonical)
        except IAMError as err:
            raise AuthMethodError(str(err)) from None
        return iam_identity(c, details)

    async def _kubernetes(self, c: KubernetesConfig, bearer: str) -> Identity:
        try:
            parse_jwt(bearer)
        except JWTError as err:
            raise AuthMethodError(f"failed to parse and validate JWT: {err}") from None
        review = {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "spec": {"token": bearer},
        }
        status, doc = await _fetch_json(
            "POST", f"{c.host}/apis/authentication.k8s.io/v1/tokenreviews", c.ca_cert, c.service_account_jwt, review
        )
        if status not in (200, 201) or not isinstance(doc, dict):
            reason = doc.get("message") if isinstance(doc, dict) else None
            raise AuthMethodError(str(reason or f"the server could not review the token (status {status})"))
        st = doc.get("status") or {}
        if not isinstance(st, dict):
            st = {}
        if st.get("error"):
            raise AuthMethodError(f"lookup failed: {st['error']}")
        if not st.get("authenticated"):
            raise AuthMethodError("lookup failed: service account jwt not valid")
        user = st.get("user") or {}
        parts = str(user.get("username", "") if isinstance(user, dict) else "").split(":")
        if len(parts) != 4:
            raise AuthMethodError("lookup failed: unexpected username format")
        if parts[0] != "system" or parts[1] != "serviceaccount":
            raise AuthMethodError("lookup failed: username returned is not a service account")
        namespace, name, uid = parts[2], parts[3], str(user.get("uid", "")) if isinstance(user, dict) else ""
        status, sa = await _fetch_json(
            "GET", f"{c.host}/api/v1/namespaces/{namespace}/serviceaccounts/{name}", c.ca_cert, c.service_account_jwt
        )
        if status != 200 or not isinstance(sa, dict):
            raise AuthMethodError(f"annotation lookup failed: serviceaccounts \"{name}\" could not be read (status {status})")
        annotations = (sa.get("metadata") or {}).get("annotations") or {}
        if isinstance(annotations, dict) and isinstance(annotations.get(SERVICE_NAME_ANNOTATION), str):
            name = annotations[SERVICE_NAME_ANNOTATION]
        fields = {"serviceaccount": {"namespace": namespace, "name": name, "uid": uid}}
        variables = {"serviceaccount.namespace": namespace, "serviceaccount.name": name, "serviceaccount.uid": uid}
        return Identity(fields, variables)


async def _replay(req: IAMRequest, retries: int, what: str) -> str:
    """Send a signed AWS request as given (no redirects followed), retrying transport errors,
    429 and 5xx but 501 up to ``retries`` times with go-retryablehttp's backoff; the XML body of
    a 200 ``text/xml`` answer, else AuthMethodError with ``iamauth``'s texts."""
    headers = [(k, v) for k, vs in req.headers.items() if k.lower() != "host" for v in vs]
    headers.append(("Host", req.host))
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    failure = ""
    for attempt in range(retries + 1):
        if attempt:
            await asyncio.sleep(min(RETRY_WAIT_MIN * 2 ** (attempt - 1), RETRY_WAIT_MAX))
        try:
            async with aiohttp.ClientSession(timeout=timeout, skip_auto_headers=("Content-Type",)) as session:
                async with session.request(
                    req.method, req.url, data=req.body.encode(), headers=headers, allow_redirects=False
                ) as resp:
                    raw = await resp.content.read(MAX_RESPONSE + 1)
                    status, ctype = resp.status, resp.headers.get("Content-Type", "")
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError, ValueError) as err:
            failure = f": {req.method} \"{req.url}\": {err or type(err).__name__}"
            continue
        if status == 429 or (status >= 500 and status != 501):
            failure = ""
            continue
        if ctype != "text/xml":
            raise AuthMethodError(f"body of {what} is invalid")
        body = raw[:MAX_RESPONSE].decode("utf-8", "replace")
        if status != 200:
            source = "STS" if what == "GetCallerIdentity" else "IAM"
            raise AuthMethodError(f"received error code {status} from {source}: {body}")
        return body
    raise AuthMethodError(f"error making request: {req.method} {req.url} giving up after {retries + 1} attempt(s){failure}")


# ---------------------------------------------------------------------- binding


def interpolate(template: str, variables: Mapping[str, str], lowercase: bool = True) -> str:
    """HIL's ``${var}`` substitution as Consul's ``template.InterpolateHIL``; ValueError for an
    unknown variable."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in variables:
            raise ValueError(f"unknown variable accessed: {name}")
        v = variables[name]
        return v.lower() if lowercase else v

    if "${" not in template:
        return template
    return _HIL.sub(sub, template)


def _bind_name(template: str, variables: Mapping[str, str], valid: Callable[[str], bool]) -> str:
    try:
        out = interpolate(template, variables)
    except ValueError as err:
        raise MusterError(f"error interpreting template: {err}") from None
    if not valid(out):
        raise MusterError(f'invalid bind name: "{out}"')
    if "${" in template:
        original = interpolate(template, variables, lowercase=False)
        if original != out:
            raise MusterError(
                "invalid bind name: the projected variables contain uppercase characters "
                f'(interpolated as "{original}" before lowercasing), but bind names for this type '
                "must be lowercase; ensure the bound service or node name is lowercase"
            )
    return out


def _identity_name(s: str) -> bool:
    return bool(_IDENTITY_NAME.match(s)) and len(s) <= 256


_VALIDATORS: dict[str, Callable[[str], bool]] = {
    "service": _identity_name,
    "node": _identity_name,
    "role": lambda s: bool(_ROLE_NAME.match(s)),
    "policy": lambda s: bool(_POLICY_NAME.match(s)),
}


def _templated(name: str, bind_vars: Any, variables: Mapping[str, str]) -> TemplatedPolicy:
    if name not in TEMPLATES:
        raise MusterError(f"Bind name for templated-policy bind type does not match existing template name: {name}")
    out: dict[str, str] = {}
    if isinstance(bind_vars, dict):
        raw = next((v for k, v in bind_vars.items() if str(k).lower() == "name"), "")
        if raw:
            try:
                out["name"] = interpolate(str(raw), variables)
            except ValueError as err:
                raise MusterError(f"failed to interpret templated policy variables: {err}") from None
    try:
        render_template(name, out)
    except TemplateError as err:
        raise MusterError(f"templated policy failed validation: {err}") from None
    return TemplatedPolicy(name, out or None)


def check_binding_rule(rule: Mapping[str, Any], method: Mapping[str, Any]) -> None:
    """Consul's checks on a binding rule write: a selector that parses, and a bind name (or
    templated policy) that is valid for every value of the method's variables."""
    try:
        names = variable_names(str(method.get("Type", "")), method.get("Config") or {})
    except ConfigError as err:
        raise _unusable(method, err) from None
    sel = str(rule.get("Selector") or "")
    if sel:
        try:
            compile_filter(sel)
        except FilterError as err:
            raise MusterError(f"invalid Binding Rule: Selector is invalid: {err}") from None
    fake = dict.fromkeys(names, "fake")
    bind_type = str(rule.get("BindType") or "")
    bind_name = str(rule.get("BindName") or "")
    prefix = "Invalid Binding Rule: invalid BindName or BindVars"
    try:
        if bind_type == "templated-policy":
            _templated(bind_name, rule.get("BindVars"), fake)
        else:
            _bind_name(bind_name, fake, _VALIDATORS[bind_type])
    except MusterError as err:
        raise MusterError(f'{prefix}: failed to validate bindType "{bind_type}": {err.message}') from None


def selector_matches(selector: str, fields: Mapping[str, Any]) -> bool:
    """An empty selector matches; an invalid one, or one that fails to evaluate, does not."""
    if not selector:
        return True
    try:
        return compile_filter(selector).matches(dict(fields))
    except (FilterError, FilterEvalError):
        return False


def bind(
    rules: Sequence[Mapping[str, Any]],
    identity: Identity,
    datacenter: str,
    role_by_name: Callable[[str], str | None],
    policy_by_name: Callable[[str], str | None],
) -> Bindings:
    """Apply the matching ``rules`` to ``identity`` (Consul's ``Binder.Bind``)."""
    out = Bindings()
    for rule in rules:
        if not selector_matches(str(rule.get("Selector") or ""), identity.fields):
            continue
        bind_type = str(rule.get("BindType") or "")
        bind_name = str(rule.get("BindName") or "")
        if bind_type == "templated-policy":
            out.templated.append(_templated(bind_name, rule.get("BindVars"), identity.variables))
            continue
        name = _bind_name(bind_name, identity.variables, _VALIDATORS.get(bind_type, lambda s: False))
        if bind_type == "service":
            out.service_identities.append(ServiceIdentity(name))
        elif bind_type == "node":
            out.node_identities.append(NodeIdentity(name, datacenter))
        elif bind_type == "role":
            rid = role_by_name(name)
            if rid is not None:
                out.roles.append(Link(rid))
        elif bind_type == "policy":
            pid = policy_by_name(name)
            if pid is not None:
                out.policies.append(Link(pid))
    return out
