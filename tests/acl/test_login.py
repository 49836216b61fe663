"""Auth methods and ``/v1/acl/login`` / ``logout`` at the HTTP level, with real signed JWTs.

The ``jwt`` method is exercised with static PEM keys and with a JWK set served over HTTPS by a
tiny local server (trusted through ``JWKSCACert``); the ``kubernetes`` method with a fake
TokenReview API on 127.0.0.1 behind TLS (trusted through ``CACert``).  docs/compat/acl.md#login.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from muster.tls import CertRequest, create_ca, create_cert
from muster_testkit.webfake import serve

from .conftest import ROOT

M = {"X-Consul-Token": ROOT}
Routes = dict[tuple[str, str], Callable[[web.Request], Awaitable[web.StreamResponse]]]
ISSUER = "https://issuer.test"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key: Any, claims: dict[str, Any], alg: str = "RS256", kid: str = "") -> str:
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
    if alg == "RS256":
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode()}.{_b64(sig)}"


def pem(key: Any) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {"iss": ISSUER, "aud": ["muster"], "iat": now, "exp": now + 600, "sub": "alice"}
    out.update(extra)
    return out


async def put(c: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await c.put(path, json=body, headers=M)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def jwt_method(c: httpx.AsyncClient, **config: Any) -> None:
    cfg: dict[str, Any] = {
        "JWTValidationPubKeys": [pem(RSA_KEY), pem(EC_KEY)],
        "BoundIssuer": ISSUER,
        "BoundAudiences": ["muster"],
        "ClaimMappings": {"service": "service", "/org/team": "team"},
        "ListClaimMappings": {"groups": "groups"},
    }
    cfg.update(config)
    await put(c, "/v1/acl/auth-method", {"Name": "jwt", "Type": "jwt", "MaxTokenTTL": "1h", "Config": cfg})


async def test_jwt_login_binds_and_logout(deny: httpx.AsyncClient) -> None:
    await jwt_method(deny)
    await put(deny, "/v1/acl/policy", {"Name": "kv-app", "Rules": 'key_prefix "app/" { policy = "write" }'})
    await put(deny, "/v1/acl/role", {"Name": "ops", "ServiceIdentities": [{"ServiceName": "ops-tool"}]})
    for rule in (
        {"BindType": "service", "BindName": "${value.service}", "Selector": 'value.team == "payments"'},
        {"BindType": "role", "BindName": "ops", "Selector": '"ops" in list.groups'},
        {"BindType": "policy", "BindName": "kv-app"},
        {"BindType": "policy", "BindName": "no-such-policy"},
        {"BindType": "node", "BindName": "node-${value.service}"},
        {"BindType": "templated-policy", "BindName": "builtin/service", "BindVars": {"Name": "tpl-${value.service}"}},
        {"BindType": "service", "BindName": "never", "Selector": 'value.team == "other"'},
    ):
        await put(deny, "/v1/acl/binding-rule", {"AuthMethod": "jwt", **rule})

    bearer = sign(RSA_KEY, claims(service="Billing", org={"team": "payments"}, groups=["dev", "ops"]))
    r = await deny.post("/v1/acl/login", json={"AuthMethod": "jwt", "BearerToken": bearer, "Meta": {"pod": "p1"}})
    # "Billing" lower-cased differs from what was signed: Consul refuses the bind name.
    assert r.status_code == 500 and "uppercase characters" in r.text

    bearer = sign(RSA_KEY, claims(service="billing", org={"team": "payments"}, groups=["dev", "ops"]))
    r = await deny.post("/v1/acl/login", json={"AuthMethod": "jwt", "BearerToken": bearer, "Meta": {"pod": "p1"}})
    assert r.status_code == 200, r.text
    tok = r.json()
    assert tok["AuthMethod"] == "jwt" and tok["Local"] is True
    assert tok["Description"] == 'token created via login: {"pod":"p1"}'
    assert tok["ServiceIdentities"] == [{"ServiceName": "billing"}]
    assert tok["NodeIdentities"] == [{"NodeName": "node-billing", "Datacenter": "dc1"}]
    assert [p["Name"] for p in tok["Policies"]] == ["kv-app"]
    assert [x["Name"] for x in tok["Roles"]] == ["ops"]
    assert tok["TemplatedPolicies"] == [{"TemplateName": "builtin/service", "TemplateVariables": {"name": "tpl-billing"}}]
    created = time.time()
    from muster.acl.model import parse_rfc3339

    assert 3500 < parse_rfc3339(tok["ExpirationTime"]) - created <= 3600
    secret = tok["SecretID"]
    # The token works: the policy grants app/, the service identity its service.
    assert (await deny.put("/v1/kv/app/x", content=b"1", headers={"X-Consul-Token": secret})).status_code == 200
    assert (await deny.put("/v1/kv/other", content=b"1", headers={"X-Consul-Token": secret})).status_code == 403
    r = await deny.put("/v1/agent/service/register", json={"Name": "billing"}, headers={"X-Consul-Token": secret})
    assert r.status_code == 200, r.text
    r = await deny.get("/v1/acl/tokens", params={"authmethod": "jwt"}, headers=M)
    assert [t["AccessorID"] for t in r.json()] == [tok["AccessorID"]]

    # Logout: 401 without a token, 403 for unknown and non-login tokens, then true.
    r = await deny.post("/v1/acl/logout")
    assert (r.status_code, r.text) == (401, "Supplied token does not exist")
    r = await deny.post("/v1/acl/logout", headers={"X-Consul-Token": "nope"})
    assert (r.status_code, r.text) == (403, "ACL not found")
    r = await deny.post("/v1/acl/logout", headers=M)
    assert (r.status_code, r.text) == (403, "Permission denied: token wasn't created via login")
    r = await deny.post("/v1/acl/logout", headers={"X-Consul-Token": secret})
    assert (r.status_code, r.json()) == (200, True)
    r = await deny.get("/v1/kv/app/x", headers={"X-Consul-Token": secret})
    assert (r.status_code, r.text) == (403, "ACL not found")


async def test_jwt_login_refusals(deny: httpx.AsyncClient) -> None:
    await jwt_method(deny)
    await put(deny, "/v1/acl/binding-rule", {"AuthMethod": "jwt", "BindType": "service", "BindName": "web", "Selector": '"dev" in list.groups'})

    async def login(bearer: str, method: str = "jwt") -> httpx.Response:
        return await deny.post("/v1/acl/login", json={"AuthMethod": method, "BearerToken": bearer})

    r = await login(sign(RSA_KEY, claims(groups=["dev"])), method="nope")
    assert (r.status_code, r.text) == (403, 'ACL not found: auth method "nope" not found')
    ok = await login(sign(EC_KEY, claims(groups=["dev"]), alg="ES256"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["ServiceIdentities"] == [{"ServiceName": "web"}]
    cases = [
        (sign(OTHER_KEY, claims(groups=["dev"])), 500, "no known key successfully validated the token signature"),
        (sign(RSA_KEY, claims(groups=["dev"], exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)), 500, "token is expired (exp)"),
        (sign(RSA_KEY, claims(groups=["dev"], iss="https://evil.test")), 500, "invalid issuer claim (iss)"),
        (sign(RSA_KEY, claims(groups=["dev"], aud=["someone-else"])), 500, "aud claim does not match any bound audience"),
        (sign(RSA_KEY, {"iss": ISSUER, "aud": "muster", "groups": ["dev"]}), 500, "no issue time, notbefore, or expiration time encoded in token"),
        (sign(RSA_KEY, claims(groups=["qa"])), 403, "Permission denied"),
        ("not-a-jwt", 500, "compact JWS format must have three parts"),
    ]
    for bearer, status, text in cases:
        r = await login(bearer)
        assert r.status_code == status and text in r.text, (text, r.status_code, r.text)
    # A token signed with alg "none" never passes, whatever its claims.
    none_header = _b64(json.dumps({"alg": "none"}).encode())
    unsigned = f"{none_header}.{_b64(json.dumps(claims(groups=['dev'])).encode())}."
    assert (await login(unsigned)).status_code == 500


async def test_auth_method_and_binding_rule_validation(deny: httpx.AsyncClient) -> None:
    async def bad(path: str, body: dict[str, Any]) -> str:
        r = await deny.put(path, json=body, headers=M)
        assert r.status_code == 500, r.text
        return r.text

    assert "exactly one of 'JWTValidationPubKeys', 'JWKSURL', or 'OIDCDiscoveryURL'" in await bad(
        "/v1/acl/auth-method", {"Name": "j", "Type": "jwt", "Config": {}}
    )
    assert "error parsing public key JWTValidationPubKeys[0]" in await bad(
        "/v1/acl/auth-method", {"Name": "j", "Type": "jwt", "Config": {"JWTValidationPubKeys": ["junk"]}}
    )
    assert "ClaimMappings contains multiple mappings" in await bad(
        "/v1/acl/auth-method",
        {"Name": "j", "Type": "jwt", "Config": {"JWTValidationPubKeys": [pem(RSA_KEY)], "ClaimMappings": {"a": "x", "b": "x"}}},
    )
    assert await bad("/v1/acl/auth-method", {"Name": "k", "Type": "kubernetes", "Config": {}}) == "Invalid Auth Method: Config.Host is required"
    assert "MaxTokenTTL 48h0m0s cannot be more than 24h0m0s" in await bad(
        "/v1/acl/auth-method", {"Name": "j", "Type": "jwt", "MaxTokenTTL": "48h", "Config": {"JWTValidationPubKeys": [pem(RSA_KEY)]}}
    )
    await jwt_method(deny)
    assert "Selector is invalid" in await bad(
        "/v1/acl/binding-rule", {"AuthMethod": "jwt", "BindType": "service", "BindName": "x", "Selector": "value.a =="}
    )
    assert "unknown variable accessed: value.nope" in await bad(
        "/v1/acl/binding-rule", {"AuthMethod": "jwt", "BindType": "service", "BindName": "${value.nope}"}
    )
    assert 'invalid bind name: "Upper"' in await bad(
        "/v1/acl/binding-rule", {"AuthMethod": "jwt", "BindType": "service", "BindName": "Upper"}
    )
    r = await deny.get("/v1/acl/auth-method/jwt", headers=M)
    assert r.json()["MaxTokenTTL"] == "1h0m0s"


# ---------------------------------------------------------------------- HTTPS fakes


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[Routes, str, str]]:
    """An HTTPS server on 127.0.0.1 answering from ``routes[(method, path)]`` (404 otherwise)."""
    ca_cert, ca_key = create_ca(str(tmp_path))
    cert, key = create_cert(str(tmp_path), ca_cert, ca_key, CertRequest("server"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    routes: Routes = {}

    async def dispatch(request: web.Request) -> web.StreamResponse:
        for (method, path), handler in routes.items():
            if method == request.method and re.fullmatch(path, request.path):
                return await handler(request)
        return web.json_response({"message": "not found"}, status=404)

    async with serve(dispatch, ctx) as port:
        yield routes, f"https://127.0.0.1:{port}", Path(ca_cert).read_text()


def _jwk(key: Any, kid: str) -> dict[str, Any]:
    n = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "n": _b64(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
        "e": _b64(n.e.to_bytes(3, "big")),
    }


async def test_jwt_login_with_jwks_url(deny: httpx.AsyncClient, tls_server: tuple[Routes, str, str]) -> None:
    app, url, ca = tls_server
    fetched: list[int] = []

    async def jwks(request: web.Request) -> web.Response:
        fetched.append(1)
        return web.json_response({"keys": [_jwk(OTHER_KEY, "k0"), _jwk(RSA_KEY, "k1")]})

    app[("GET", "/jwks.json")] = jwks
    cfg = {"JWKSURL": f"{url}/jwks.json", "JWKSCACert": ca, "BoundAudiences": ["muster"], "ClaimMappings": {"sub": "user"}}
    await put(deny, "/v1/acl/auth-method", {"Name": "jwks", "Type": "jwt", "Config": cfg})
    await put(deny, "/v1/acl/binding-rule", {"AuthMethod": "jwks", "BindType": "service", "BindName": "svc-${value.user}"})
    r = await deny.post("/v1/acl/login", json={"AuthMethod": "jwks", "BearerToken": sign(RSA_KEY, claims(), kid="k1")})
    assert r.status_code == 200, r.text
    assert r.json()["ServiceIdentities"] == [{"ServiceName": "svc-alice"}]
    assert "ExpirationTime" not in r.json()
    # The kid names the other key: refused.
    r = await deny.post("/v1/acl/login", json={"AuthMethod": "jwks", "BearerToken": sign(RSA_KEY, claims(), kid="k0")})
    assert r.status_code == 500 and "no known key" in r.text
    assert fetched == [1]  # the key set is cached for the method's row
    # OIDC discovery: keys from the document's jwks_uri, iss must be the provider's issuer, and
    # an aud claim without bound audiences is accepted (go-oidc's non-strict check).
    async def discovery(request: web.Request) -> web.Response:
        return web.json_response({"issuer": url, "jwks_uri": f"{url}/jwks.json"})

    app[("GET", "/.well-known/openid-configuration")] = discovery
    dcfg = {"OIDCDiscoveryURL": url, "OIDCDiscoveryCACert": ca, "ClaimMappings": {"sub": "user"}}
    await put(deny, "/v1/acl/auth-method", {"Name": "oidc-disc", "Type": "jwt", "Config": dcfg})
    await put(deny, "/v1/acl/binding-rule", {"AuthMethod": "oidc-disc", "BindType": "service", "BindName": "d-${value.user}"})
    r = await deny.post("/v1/acl/login", json={"AuthMethod": "oidc-disc", "BearerToken": sign(RSA_KEY, claims(iss=url), kid="k1")})
    assert r.status_code == 200, r.text
    assert r.json()["ServiceIdentities"] == [{"ServiceName": "d-alice"}]
    r = await deny.post("/v1/acl/login", json={"AuthMethod": "oidc-disc", "BearerToken": sign(RSA_KEY, claims(), kid="k1")})
    assert r.status_code == 500 and "invalid issuer claim" in r.text
    # Without the CA the server's certificate is not trusted.
    cfg2 = dict(cfg, JWKSCACert=None)
    await put(deny, "/v1/acl/auth-method/jwks", {"Name": "jwks", "Type": "jwt", "Config": {k: v for k, v in cfg2.items() if v}})
    r = await deny.post("/v1/acl/login", json={"AuthMethod": "jwks", "BearerToken": sign(RSA_KEY, claims(), kid="k1")})
    assert r.status_code == 500 and "certificate" in r.text.lower()


async def test_kubernetes_login_through_token_review(deny: httpx.AsyncClient, tls_server: tuple[Routes, str, str]) -> None:
    app, url, ca = tls_server
    reviewer = sign(RSA_KEY, {"sub": "system:serviceaccount:kube-system:consul", "iat": int(time.time())})
    pod_jwt = sign(OTHER_KEY, {"sub": "system:serviceaccount:shop:api", "iat": int(time.time())})
    seen: list[tuple[str, str]] = []

    async def review(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.headers.get("Authorization", ""), body["spec"]["token"]))
        if request.headers.get("Authorization") != f"Bearer {reviewer}":
            return web.json_response({"kind": "Status", "message": "Unauthorized"}, status=401)
        ok = body["spec"]["token"] == pod_jwt
        status: dict[str, Any] = {"authenticated": ok}
        if ok:
            status["user"] = {"username": "system:serviceaccount:shop:api", "uid": "uid-123"}
        return web.json_response({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "status": status}, status=201)

    async def service_account(request: web.Request) -> web.Response:
        return web.json_response({"metadata": {"name": "api", "annotations": {"consul.hashicorp.com/service-name": "api-svc"}}})

    app[("POST", "/apis/authentication.k8s.io/v1/tokenreviews")] = review
    app[("GET", "/api/v1/namespaces/shop/serviceaccounts/api")] = service_account
    cfg = {"Host": url, "CACert": ca, "ServiceAccountJWT": reviewer}
    await put(deny, "/v1/acl/auth-method", {"Name": "k8s", "Type": "kubernetes", "TokenLocality": "global", "Config": cfg})
    await put(
        deny,
        "/v1/acl/binding-rule",
        {"AuthMethod": "k8s", "BindType": "service", "BindName": "${serviceaccount.name}", "Selector": 'serviceaccount.namespace == "shop"'},
    )
    r = await deny.post("/v1/acl/login", json={"AuthMethod": "k8s", "BearerToken": pod_jwt})
    assert r.status_code == 200, r.text
    assert r.json()["ServiceIdentities"] == [{"ServiceName": "api-svc"}] and r.json()["Local"] is False
    assert seen[-1] == (f"Bearer {reviewer}", pod_jwt)
    r = await deny.post("/v1/acl/login", json={"AuthMethod": "k8s", "BearerToken": sign(RSA_KEY, {"sub": "x"})})
    assert (r.status_code, r.text) == (500, "lookup failed: service account jwt not valid")
    # A reviewer token the API server refuses: its message is the answer.
    bad_reviewer = sign(OTHER_KEY, {"sub": "nobody", "iat": 1})
    await put(deny, "/v1/acl/auth-method/k8s", {"Name": "k8s", "Type": "kubernetes", "Config": dict(cfg, ServiceAccountJWT=bad_reviewer)})
    r = await deny.post("/v1/acl/login", json={"AuthMethod": "k8s", "BearerToken": pod_jwt})
    assert (r.status_code, r.text) == (500, "Unauthorized")
