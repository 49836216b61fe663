"""``/v1/acl/*``: tokens, policies, roles, auth methods, binding rules, bootstrap, the legacy API.

Thin HTTP layer over ``server.acl.ACLService``: decode the body (keys case-insensitively, as Go
does), check the caller's permission (``acl:read`` / ``acl:write``; bootstrap, replication,
``token/self``, legacy ``info`` need none), call the service, render Consul's JSON.  With ACLs
disabled every route answers 401 ``ACL support disabled``.  Texts and statuses: docs/compat/acl.md#status-codes-and-texts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..acl.authorizer import Authorizer
from ..acl.model import ACLToken
from ..acl.resolver import ACLNotFound
from ..errors import ACLDisabled, BadRequest, MethodNotAllowed, NotFound
from ..server.acl import ACLService
from ..server.blocking import blocking_query
from ..state.watch import WatchSet
from .app import Route
from .body import canon
from .common import Ctx
from .forward import forward_to
from .request import Request, Response, json_response, parse_query_options

_TOKEN_FIELDS = (
    "AccessorID",
    "SecretID",
    "Description",
    "Policies",
    "Roles",
    "ServiceIdentities",
    "NodeIdentities",
    "TemplatedPolicies",
    "Local",
    "AuthMethod",
    "ExpirationTime",
    "ExpirationTTL",
)
_POLICY_FIELDS = ("ID", "Name", "Description", "Rules", "Datacenters")
_ROLE_FIELDS = ("ID", "Name", "Description", "Policies", "ServiceIdentities", "NodeIdentities", "TemplatedPolicies")
_METHOD_FIELDS = ("Name", "Type", "DisplayName", "Description", "MaxTokenTTL", "TokenLocality", "Config")
_RULE_FIELDS = ("ID", "Description", "AuthMethod", "Selector", "BindType", "BindName", "BindVars")
_LEGACY_FIELDS = ("ID", "Name", "Type", "Rules")

REPLICATION_OFF = {
    "Enabled": False,
    "Running": False,
    "SourceDatacenter": "",
    "ReplicationType": "",
    "ReplicatedIndex": 0,
    "ReplicatedRoleIndex": 0,
    "ReplicatedTokenIndex": 0,
    "LastSuccess": "0001-01-01T00:00:00Z",
    "LastError": "0001-01-01T00:00:00Z",
    "LastErrorMessage": "",
}


def routes(ctx: Ctx) -> list[Route]:
    svc: ACLService | None = ctx.acl

    def service() -> ACLService:
        if svc is None or not svc.enabled:
            raise ACLDisabled()
        return svc

    def authz(req: Request) -> Authorizer:
        return service().authorize(req.token())

    def need(req: Request, level: str) -> Authorizer:
        a = authz(req)
        a.require("acl", level)
        return a

    async def body(req: Request, fields: tuple[str, ...], what: str) -> dict[str, Any]:
        raw = await req.body()
        if not raw.strip():
            return {}
        try:
            obj = await req.json()
        except BadRequest as err:
            raise BadRequest(f"{what} decoding failed: {err.message.removeprefix('Request decode failed: ')}") from None
        return canon(obj, fields, what)

    async def to_primary(req: Request) -> Response | None:
        """In a secondary datacenter, a global ACL write is the primary's (Consul forwards it
        there); None: serve it here.  It comes back through replication."""
        s = service()
        fed = ctx.services.federation
        if not s.secondary or fed is None:
            return None
        return await forward_to(fed, req, s.primary_datacenter)

    def index_headers(req: Request) -> list[tuple[str, str]]:
        return ctx.meta_headers(service().tables.index, parse_query_options(req))

    async def read(req: Request, produce: Callable[[], Any]) -> Response:
        """A blocking read of the ACL tables (re-runs ``produce``, with its checks, on every wake)."""
        s = service()
        ctx.check_dc(req)
        opts = parse_query_options(req)
        await ctx.server.check_read(opts.consistency)

        def run(ws: WatchSet | None) -> tuple[int, Any]:
            s.tables.watch(ws)
            return s.tables.index, produce()

        idx, obj = await blocking_query(ctx.server.store, opts, run, ctx.rng, ctx.default_query_time, ctx.max_query_time)
        return json_response(req, obj, 200, ctx.meta_headers(idx, opts))

    # ------------------------------------------------------------------ bootstrap / replication

    async def bootstrap(req: Request) -> Response:
        s = service()
        b = await body(req, ("BootstrapSecret",), "Bootstrap")
        tok = await s.bootstrap(b)
        out = s.render_token(tok, None)
        out = {"ID": tok.SecretID, **out}
        return json_response(req, out)

    async def replication(req: Request) -> Response:
        out = service().replication_status() or dict(REPLICATION_OFF)
        return json_response(req, out)

    # ------------------------------------------------------------------ tokens

    async def token_create(req: Request) -> Response:
        s = service()
        b = await body(req, _TOKEN_FIELDS, "Token")
        if not b.get("Local") and (fwd := await to_primary(req)) is not None:
            return fwd
        a = need(req, "write")
        tok = await s.token_create(b)
        return json_response(req, s.render_token(tok, a))

    async def token_item(req: Request) -> Response:
        s = service()
        param = req.route_param
        if param == "self":
            if req.method != "GET":
                raise MethodNotAllowed(f"method {req.method} not allowed")
            secret = s.resolver.effective_secret(req.token())
            tok = s.resolver.token(secret)
            if tok is None:
                raise ACLNotFound()
            return json_response(req, s.render_token(tok, None), 200, index_headers(req))
        if param.endswith("/clone"):
            if req.method != "PUT":
                raise MethodNotAllowed(f"method {req.method} not allowed")
            if not s.token_is_local(param[: -len("/clone")]) and (fwd := await to_primary(req)) is not None:
                return fwd
            a = need(req, "write")
            b = await body(req, ("Description",), "Token")
            tok = await s.token_clone(param[: -len("/clone")], b)
            return json_response(req, s.render_token(tok, a))
        if "/" in param or not param:
            raise BadRequest("Missing token ID")
        if req.method == "GET":
            a = need(req, "read")
            tok = s.token_get(param)
            out = s.render_token(tok, a)
            if "expanded" in req.query:
                out.update(expanded(s, tok))
            return json_response(req, out, 200, index_headers(req))
        if not s.token_is_local(param) and (fwd := await to_primary(req)) is not None:
            return fwd
        if req.method == "PUT":
            a = need(req, "write")
            tok = await s.token_update(param, await body(req, _TOKEN_FIELDS, "Token"))
            return json_response(req, s.render_token(tok, a))
        need(req, "write")
        await s.token_delete(param, s.resolver.effective_secret(req.token()))
        return json_response(req, True)

    def expanded(s: ACLService, tok: ACLToken) -> dict[str, Any]:
        pols = [s.render_policy(p) for link in tok.Policies if (p := s.tables.policies.get(link.ID)) is not None]
        roles = [s.render_role(r) for link in tok.Roles if (r := s.tables.roles.get(link.ID)) is not None]
        return {
            "ExpandedPolicies": pols or None,
            "ExpandedRoles": roles or None,
            "NamespaceDefaultPolicyIDs": None,
            "NamespaceDefaultRoleIDs": None,
            "AgentACLDefaultPolicy": s.resolver.default_policy,
            "AgentACLDownPolicy": s.config.down_policy,
            "ResolvedByAgent": ctx.server.ident.node_name,
        }

    async def token_list(req: Request) -> Response:
        s = service()

        def produce() -> list[dict[str, Any]]:
            a = need(req, "read")
            toks = s.token_list(req.get("policy"), req.get("role"), req.get("authmethod"), req.get("servicename"))
            return [s.render_token(t, a, stub=True) for t in toks]

        return await read(req, produce)

    def object_handlers(
        kind: str, fields: tuple[str, ...], what: str
    ) -> tuple[Callable[[Request], Awaitable[Response]], Callable[[Request], Awaitable[Response]]]:
        """The create and by-ID/by-name handlers of policies and roles (``kind``), which share
        their routes, permission checks, forwarding to the primary and texts, on
        ``ACLService.<kind>_create|_get|_get_by_name|_update|_delete`` and ``render_<kind>``."""

        async def create(req: Request) -> Response:
            s = service()
            if (fwd := await to_primary(req)) is not None:
                return fwd
            need(req, "write")
            obj = await getattr(s, f"{kind}_create")(await body(req, fields, what))
            return json_response(req, getattr(s, f"render_{kind}")(obj))

        async def item(req: Request) -> Response:
            s = service()
            render = getattr(s, f"render_{kind}")
            param = req.route_param
            if param.startswith("name/"):
                if req.method != "GET":
                    raise MethodNotAllowed(f"method {req.method} not allowed")
                need(req, "read")
                return json_response(req, render(getattr(s, f"{kind}_get_by_name")(param[5:])), 200, index_headers(req))
            if not param:
                raise BadRequest(f"Missing {kind} ID")
            if req.method == "GET":
                need(req, "read")
                return json_response(req, render(getattr(s, f"{kind}_get")(param)), 200, index_headers(req))
            if (fwd := await to_primary(req)) is not None:
                return fwd
            need(req, "write")
            if req.method == "PUT":
                obj = await getattr(s, f"{kind}_update")(param, await body(req, fields, what))
                return json_response(req, render(obj))
            await getattr(s, f"{kind}_delete")(param)
            return json_response(req, True)

        return create, item

    # ------------------------------------------------------------------ policies

    policy_create, policy_item = object_handlers("policy", _POLICY_FIELDS, "Policy")

    async def policy_list(req: Request) -> Response:
        s = service()

        def produce() -> list[dict[str, Any]]:
            need(req, "read")
            return [s.render_policy(p, stub=True) for p in s.policy_list()]

        return await read(req, produce)

    # ------------------------------------------------------------------ roles

    role_create, role_item = object_handlers("role", _ROLE_FIELDS, "Role")

    async def role_list(req: Request) -> Response:
        s = service()

        def produce() -> list[dict[str, Any]]:
            need(req, "read")
            return [s.render_role(r) for r in s.role_list(req.get("policy"))]

        return await read(req, produce)

    # ------------------------------------------------------------------ auth methods / binding rules

    async def auth_method_create(req: Request) -> Response:
        s = service()
        need(req, "write")
        return json_response(req, await s.auth_method_set("", await body(req, _METHOD_FIELDS, "AuthMethod"), True))

    async def auth_method_item(req: Request) -> Response:
        s = service()
        name = req.route_param
        if not name:
            raise BadRequest("Missing auth method name")
        if req.method == "GET":
            need(req, "read")
            return json_response(req, s.auth_method_get(name), 200, index_headers(req))
        need(req, "write")
        if req.method == "PUT":
            return json_response(req, await s.auth_method_set(name, await body(req, _METHOD_FIELDS, "AuthMethod"), False))
        await s.auth_method_delete(name)
        return json_response(req, True)

    async def auth_method_list(req: Request) -> Response:
        s = service()

        def produce() -> list[dict[str, Any]]:
            need(req, "read")
            keep = ("Name", "Type", "DisplayName", "Description", "MaxTokenTTL", "TokenLocality", "CreateIndex", "ModifyIndex")
            return [{k: m[k] for k in keep if k in m} for _, m in sorted(s.tables.auth_methods.items())]

        return await read(req, produce)

    async def binding_rule_create(req: Request) -> Response:
        s = service()
        need(req, "write")
        return json_response(req, await s.binding_rule_set("", await body(req, _RULE_FIELDS, "BindingRule")))

    async def binding_rule_item(req: Request) -> Response:
        s = service()
        rid = req.route_param
        if not rid:
            raise BadRequest("Missing binding rule ID")
        if req.method == "GET":
            need(req, "read")
            return json_response(req, s.binding_rule_get(rid), 200, index_headers(req))
        need(req, "write")
        if req.method == "PUT":
            return json_response(req, await s.binding_rule_set(rid, await body(req, _RULE_FIELDS, "BindingRule")))
        await s.binding_rule_delete(rid)
        return json_response(req, True)

    async def binding_rule_list(req: Request) -> Response:
        s = service()

        def produce() -> list[dict[str, Any]]:
            need(req, "read")
            method = req.get("authmethod")
            rules = [r for r in s.tables.binding_rules.values() if not method or r.get("AuthMethod") == method]
            return sorted(rules, key=lambda r: r["ID"])

        return await read(req, produce)

    # ------------------------------------------------------------------ login / logout / authorize

    async def login(req: Request) -> Response:
        s = service()
        b = await body(req, ("AuthMethod", "BearerToken", "Meta"), "Login")
        tok = await s.login(b)
        return json_response(req, s.render_token(tok, None))

    async def logout(req: Request) -> Response:
        s = service()
        await s.logout(req.token() or s.agent_tokens["default"])
        return json_response(req, True)

    async def authorize(req: Request) -> Response:
        a = authz(req)
        raw = await req.json()
        if not isinstance(raw, list):
            raise BadRequest("Failed to decode request body: expected a list of authorization requests")
        if len(raw) > 64:
            raise BadRequest("Refusing to authorize more than 64 requests at once")
        out = []
        for item in raw:
            c = canon(item, ("Resource", "Segment", "Access"), "AuthorizationRequest")
            res, seg, acc = str(c.get("Resource", "")), str(c.get("Segment", "")), str(c.get("Access", ""))
            if acc not in ("read", "write", "list"):
                raise BadRequest(f"Invalid access level {acc!r}")
            out.append({**c, "Allow": a.allowed(res, seg, acc)})
        return json_response(req, out)

    # ------------------------------------------------------------------ templated policies

    async def templated_list(req: Request) -> Response:
        s = service()
        need(req, "read")
        return json_response(req, s.templated_list())

    async def templated_item(req: Request) -> Response:
        s = service()
        need(req, "read")
        param = req.route_param
        if param.startswith("name/") and req.method == "GET":
            return json_response(req, s.templated_get(param[5:]))
        if param.startswith("preview/") and req.method in ("POST", "PUT"):
            b = await req.json()
            return json_response(req, s.templated_preview(param[len("preview/") :], b))
        raise NotFound("Requested templated policy does not exist: ACL not found")

    # ------------------------------------------------------------------ legacy API

    async def legacy_create(req: Request) -> Response:
        s = service()
        need(req, "write")
        sec = await s.legacy_set(await body(req, _LEGACY_FIELDS, "ACL"), update=False)
        return json_response(req, {"ID": sec})

    async def legacy_update(req: Request) -> Response:
        s = service()
        need(req, "write")
        sec = await s.legacy_set(await body(req, _LEGACY_FIELDS, "ACL"), update=True)
        return json_response(req, {"ID": sec})

    async def legacy_destroy(req: Request) -> Response:
        s = service()
        need(req, "write")
        if not req.route_param:
            raise BadRequest("Missing ACL")
        await s.legacy_destroy(req.route_param)
        return json_response(req, True)

    async def legacy_info(req: Request) -> Response:
        s = service()
        if not req.route_param:
            raise BadRequest("Missing ACL")
        return json_response(req, s.legacy_info(req.route_param), 200, index_headers(req))

    async def legacy_clone(req: Request) -> Response:
        s = service()
        need(req, "write")
        if not req.route_param:
            raise BadRequest("Missing ACL")
        return json_response(req, {"ID": await s.legacy_clone(req.route_param)})

    async def legacy_list(req: Request) -> Response:
        s = service()

        def produce() -> list[dict[str, Any]]:
            need(req, "write")
            return s.legacy_list()

        return await read(req, produce)

    async def translate(req: Request) -> Response:
        s = service()
        need(req, "read")
        if req.route_param:
            if req.method != "GET":
                raise MethodNotAllowed(f"method {req.method} not allowed")
            text = s.translate_token_rules(req.route_param)
        else:
            if req.method != "POST":
                raise MethodNotAllowed(f"method {req.method} not allowed")
            text = s.translate((await req.body()).decode("utf-8", "replace"))
        return Response(200, text.encode(), "text/plain; charset=utf-8")

    return [
        Route("/v1/acl/bootstrap", ("PUT",), bootstrap),
        Route("/v1/acl/replication", ("GET",), replication),
        Route("/v1/acl/token", ("PUT",), token_create),
        Route("/v1/acl/token/", ("GET", "PUT", "DELETE"), token_item, prefix=True),
        Route("/v1/acl/tokens", ("GET",), token_list),
        Route("/v1/acl/policy", ("PUT",), policy_create),
        Route("/v1/acl/policy/", ("GET", "PUT", "DELETE"), policy_item, prefix=True),
        Route("/v1/acl/policies", ("GET",), policy_list),
        Route("/v1/acl/role", ("PUT",), role_create),
        Route("/v1/acl/role/", ("GET", "PUT", "DELETE"), role_item, prefix=True),
        Route("/v1/acl/roles", ("GET",), role_list),
        Route("/v1/acl/auth-method", ("PUT",), auth_method_create),
        Route("/v1/acl/auth-method/", ("GET", "PUT", "DELETE"), auth_method_item, prefix=True),
        Route("/v1/acl/auth-methods", ("GET",), auth_method_list),
        Route("/v1/acl/binding-rule", ("PUT",), binding_rule_create),
        Route("/v1/acl/binding-rule/", ("GET", "PUT", "DELETE"), binding_rule_item, prefix=True),
        Route("/v1/acl/binding-rules", ("GET",), binding_rule_list),
        Route("/v1/acl/login", ("POST",), login),
        Route("/v1/acl/logout", ("POST",), logout),
        Route("/v1/acl/authorize", ("POST",), authorize),
        Route("/v1/acl/templated-policies", ("GET",), templated_list),
        Route("/v1/acl/templated-policy/", ("GET", "POST", "PUT"), templated_item, prefix=True),
        Route("/v1/acl/create", ("PUT",), legacy_create),
        Route("/v1/acl/update", ("PUT",), legacy_update),
        Route("/v1/acl/destroy/", ("PUT",), legacy_destroy, prefix=True),
        Route("/v1/acl/info/", ("GET",), legacy_info, prefix=True),
        Route("/v1/acl/clone/", ("PUT",), legacy_clone, prefix=True),
        Route("/v1/acl/list", ("GET",), legacy_list),
        Route("/v1/acl/rules/translate", ("POST",), translate),
        Route("/v1/acl/rules/translate/", ("GET",), translate, prefix=True),
    ]
