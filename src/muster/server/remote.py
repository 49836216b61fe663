"""A stateless client agent's link to the servers, and the servers' side of it.

A client agent (an agent without ``-server``) holds no replica of the Raft log, as Consul's
clients hold none: the leader's cost per write does not depend on how many clients there are.

Client side:

* ``ServerSet`` is the list of servers to talk to: the alive servers of our datacenter as
  gossip knows them (member tags ``role=consul``, ``id``, ``port``), one of them preferred
  (picked at random, kept while it answers, replaced after a failure), the others as fallbacks
  in random order.
* ``RemoteServers.call`` sends one request to the preferred server and tries the next one on a
  failure, under the retry rule of every forward (``server/federation.py``): a request that
  provably never left (no connection) may go to another server; one that may have arrived is
  retried elsewhere only when ``idempotent`` (reads), never a write (it could apply twice).
* ``RemoteLog`` is the ``Log`` of a client's ``Server``: ``propose`` sends the command to a
  server (RPC ``client_apply``; that server applies it through its own log, forwarding to its
  leader), so anti-entropy, coordinates and every other ``server.apply`` on a client work
  unchanged.  It is never the leader, and ``read_barrier`` refuses: a client's reads are
  answered by servers (the HTTP API forwards them, ``http/forward.py``).
* ``CatalogMirror`` is the client's bounded local cache (Consul's agent cache is the model):
  the part of the catalog the client uses - its own node with its services and checks, the
  servers (``consul`` service), the services (with the Connect proxies that front them),
  nodes and reverse-lookup addresses its DNS was asked about, and the nodes its alias checks
  watch - in the client's local store (never KV, sessions or ACLs), kept fresh by one blocking query on a
  server (RPC ``catalog_mirror``, served from the server's local state like a ``?stale`` read,
  so any server answers, also during a leader election).  The client's DNS interface and its
  anti-entropy read that store.  ``staleness()`` is how old the cache may be: the time since a
  server last confirmed it plus that server's own last contact with its leader; DNS answers
  from it while ``staleness() <= dns_config.max_stale`` (``dns/server.py``).

* ACLs: the client holds no ACL tables either.  What it forwards is authorized by the server
  that serves it; for what it answers itself (``/v1/agent/*``, ``/v1/event/*``, DNS) its
  ``ClientACLCache`` (``acl/clientcache.py``) reads the request's token, with the roles and
  policies it links, from a server (RPC ``acl_resolve``, ``server/aclclient.py``, answered from
  the server's local state like ``catalog_mirror``) and keeps them for ``acl.token_ttl``,
  ``role_ttl`` and ``policy_ttl``, as Consul's clients cache what ``ACL.TokenRead``,
  ``ACL.RoleResolve`` and ``ACL.PolicyResolve`` return; when no server answers,
  ``acl.down_policy`` decides (Consul's ``extend-cache``, ``async-cache``, ``allow``, ``deny``).

Server side: ``ClientEndpoints`` serves ``client_apply`` and ``catalog_mirror`` (and
``ACLResolveEndpoint``, ``acl_resolve``); the HTTP requests a client forwards arrive on the RPC
``http`` method like any forwarded request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ..errors import MusterError, NoLeader
from ..runtime import Clock
from ..state.catalog import NODE_WATCH, SERVICE_WATCH
from ..state.store import SNAPSHOT_VERSION, StateStore
from ..state.watch import Watch, WatchSet
from ..structs import decode_command, encode_command
from .log import PENDING
from .rpc import ConnectionLost, RPCNode

log = logging.getLogger("muster.remote")

__all__ = ["CatalogMirror", "ClientEndpoints", "RemoteLog", "RemoteServers", "ServerSet", "NO_SERVERS"]

#: Consul's text when a client knows no server to send an RPC to.
NO_SERVERS = "No known Consul servers"
#: Longest wait of one mirror query (Consul's maximum blocking wait is 10 minutes).
MIRROR_MAX_WAIT = 300.0
#: Pause after a failed mirror query before the next server is tried.
MIRROR_RETRY = 0.5
#: Tables a mirror holds.
MIRROR_TABLES = ("nodes", "services", "checks")
#: Services, nodes and addresses a client's cache follows at most, each (least recently asked
#: dropped first); also the most nodes its alias checks hold at once (``CatalogMirror.pin``).
MAX_NAMES = 512


class ServerSet:
    """The servers a client talks to (module doc): ``servers()`` returns (node id, RPC
    address) of every alive server of our datacenter, read again on every call."""

    def __init__(self, servers: Callable[[], list[tuple[str, str]]], rng: random.Random) -> None:
        self._servers = servers
        self._rng = rng
        self.preferred: str | None = None

    def order(self) -> list[tuple[str, str]]:
        """Every known server, the preferred one first (a random pick when there is none)."""
        known = list(self._servers())
        self._rng.shuffle(known)
        ids = [nid for nid, _ in known]
        if self.preferred not in ids:
            self.preferred = ids[0] if ids else None
        known.sort(key=lambda s: s[0] != self.preferred)
        return known

    def address(self, node_id: str) -> list[str]:
        return [addr for nid, addr in self._servers() if nid == node_id]

    def avoid(self, node_id: str) -> None:
        """Prefer another server than ``node_id`` when there is one (the mirror keeps its
        blocking query off the leader, whose CPU goes to writes)."""
        if self.preferred == node_id:
            others = [nid for nid, _ in self._servers() if nid != node_id]
            if others:
                self.preferred = self._rng.choice(others)

    def copy(self) -> ServerSet:
        """The same servers with a preference of their own."""
        return ServerSet(self._servers, random.Random(self._rng.random()))

    def failed(self, node_id: str) -> None:
        """``node_id`` failed a call: the next call prefers another server."""
        if self.preferred == node_id:
            self.preferred = None
            others = [nid for nid, _ in self._servers() if nid != node_id]
            if others:
                self.preferred = self._rng.choice(others)


class RemoteServers:
    """Calls from a client agent to the servers of its datacenter (module doc)."""

    def __init__(self, node_id: str, servers: ServerSet, info: Callable[[], dict[str, Any]] | None = None) -> None:
        self.node_id = node_id
        self.servers = servers
        base = info or (lambda: {})
        # No cluster id (a client is in no Raft cluster) and the ``client`` flag: servers answer
        # it and keep it out of their Raft address book.
        self.rpc = RPCNode(node_id, lambda: "", servers.address, info=lambda: {**base(), "client": "1"})
        self.counters = {"calls": 0, "retried": 0, "failed": 0}

    async def call(self, method: str, payload: Any, timeout: float, idempotent: bool = False,
                   servers: ServerSet | None = None) -> Any:
        """The answer of the first server that answers ``method`` (retry rule: module doc),
        in the order of ``servers`` (default: the shared set)."""
        sset = servers or self.servers
        order = sset.order()
        if not order:
            raise MusterError(NO_SERVERS)
        self.counters["calls"] += 1
        last: ConnectionLost | None = None
        for i, (nid, _addr) in enumerate(order):
            try:
                return await self.rpc.call(nid, method, payload, timeout=timeout)
            except ConnectionLost as err:
                sset.failed(nid)
                self.rpc.drop(nid)
                if err.sent and not idempotent:
                    self.counters["failed"] += 1
                    raise MusterError(err.message) from None
                last = err
                if i + 1 < len(order):
                    self.counters["retried"] += 1
        self.counters["failed"] += 1
        raise MusterError(last.message if last is not None else NO_SERVERS)

    async def close(self) -> None:
        await self.rpc.close()


class CatalogMirror:
    """The client's catalog cache (module doc).  ``store`` is the client's local store: only
    this mirror writes it, by swapping in each view a server sends.

    Interest: the view holds the client's own node (with its services and checks: what
    anti-entropy compares with), the ``consul`` service (the servers: DNS names them in every
    SOA/NS record) and what its DNS was asked about - services, nodes and the addresses of
    reverse (PTR) lookups - each kept until ``MAX_NAMES`` more recently asked ones of its kind
    push it out.  ``want`` says whether names are covered and, if not, adds them and restarts
    the blocking query with the new interest; ``wait_covered`` waits (bounded) for the view
    that includes them.  Nodes watched by alias checks are held by ``pin`` instead, outside
    the least-recently-asked order (a DNS burst must not drop them), until released.

    Why the view answers what a server would (``ClientEndpoints.view``):

    * ``<service>.connect`` lookups read the Connect proxies whose destination is the service
      (``dns/answers.py`` ``healthy(connect=True)``): following a service also follows those.
    * PTR lookups read every node with the address (address or tagged address) and, when none
      has it, every service instance whose own address it is.  Consul's client asks a server
      for each such question (an RPC listing the nodes, then one for services by address);
      here the address is followed like a name instead, so the answer comes from the same
      cache, under the same ``max_stale`` rule and invalidation as every other name, and a
      repeated question costs no round trip.
    * An alias check of another node reads that node's checks and services: Consul's alias
      check runs a blocking query on a server for the node's checks (``agent/checks/alias.go``
      ``runQuery``, a stale read); here the node is pinned into the same view, so one
      blocking query per client serves its DNS and all its alias checks.
    """

    def __init__(self, store: StateStore, remote: RemoteServers, clock: Clock, wait: float = MIRROR_MAX_WAIT,
                 node: str = "") -> None:
        self.store = store
        #: Longest wait of one query: an answer, even "nothing changed", confirms the cache, so
        #: a healthy mirror is never older than about ``wait`` (the caller picks a fraction of
        #: ``dns_config.max_stale``).
        self.wait = min(max(wait, 1.0), MIRROR_MAX_WAIT)
        self.remote = remote
        self.clock = clock
        self.node = node
        self.index = 0
        self.digest = ""
        #: monotonic time a server last confirmed the mirror, and that server's last contact
        #: with its leader then (seconds); None until the first answer.
        self.confirmed_at: float | None = None
        self.server_contact = 0.0
        self.leader = ""
        self.updates = 0
        self.ready = asyncio.Event()
        self.servers = remote.servers.copy()
        #: Names of interest (lowercase) -> the interest generation that added them, least
        #: recently asked first.
        self.services: OrderedDict[str, int] = OrderedDict()
        self.nodes: OrderedDict[str, int] = OrderedDict()
        #: Canonical IP text of reverse lookups (same LRU rule as the names).
        self.addresses: OrderedDict[str, int] = OrderedDict()
        #: Nodes (lowercase) alias checks hold -> (holders, generation that added them).
        self.pins: dict[str, tuple[int, int]] = {}
        #: Interest generation: bumped by every new name; ``filled`` is the generation of the
        #: interest the store's current view was built for.
        self.generation = 0
        self.filled = -1
        self._changed = asyncio.Event()
        self._restart = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def want(self, services: Sequence[str], nodes: Sequence[str], addresses: Sequence[str] = ()) -> bool:
        """True when the view covers ``services``, ``nodes`` (lowercase) and ``addresses``
        (canonical IP text); else they are added to the interest (the query restarts) and
        False is returned."""
        need = 0
        new = False
        for table, names in ((self.services, services), (self.nodes, nodes), (self.addresses, addresses)):
            for name in names:
                g = table.get(name)
                if g is None:
                    if not new:
                        self.generation += 1
                        new = True
                    g = table[name] = self.generation
                    while len(table) > MAX_NAMES:
                        table.popitem(last=False)
                else:
                    table.move_to_end(name)
                need = max(need, g)
        if new:
            self._restart.set()
        return self.filled >= need

    def pin(self, node: str) -> Callable[[], None]:
        """Follow ``node`` (any case) until the returned release is called (alias checks).
        At most ``MAX_NAMES`` nodes are pinned; a pin beyond that is an ordinary asked name."""
        key = node.lower()
        held = self.pins.get(key)
        if held is None and len(self.pins) >= MAX_NAMES:
            self.want([], [key])
            return lambda: None
        if held is None:
            self.generation += 1
            self.pins[key] = (1, self.generation)
            self._restart.set()
        else:
            self.pins[key] = (held[0] + 1, held[1])
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            count, gen = self.pins[key]
            if count > 1:
                self.pins[key] = (count - 1, gen)
            else:
                del self.pins[key]  # followed until the next query: dropping it needs no restart

        return release

    def covers_pin(self, node: str) -> bool:
        """Whether the view holds the pinned ``node``'s state (False before its first fill).
        A node ``pin`` could not hold (beyond ``MAX_NAMES``) is asked for as a name instead."""
        held = self.pins.get(node.lower())
        if held is None:
            return self.want([], [node.lower()])
        return self.filled >= held[1]

    async def wait_covered(self, timeout: float) -> None:
        """Return once the view holds the interest as it is now (or after ``timeout``)."""
        want = self.generation
        deadline = self.clock.monotonic() + timeout
        while self.filled < want:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def staleness(self) -> float:
        """Upper bound on the age of the cached catalog, in seconds (inf before the first fill)."""
        if self.confirmed_at is None:
            return float("inf")
        return self.clock.monotonic() - self.confirmed_at + self.server_contact

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="catalog-mirror")

    async def stop(self) -> None:
        t, self._task = self._task, None
        if t is not None:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _run(self) -> None:
        while True:
            self._restart.clear()
            query = asyncio.ensure_future(self.refresh(self.wait))
            restart = asyncio.ensure_future(self._restart.wait())
            try:
                await asyncio.wait({query, restart}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                restart.cancel()
                if not query.done():
                    query.cancel()  # new interest: ask again (the server drops the old query)
                    with contextlib.suppress(asyncio.CancelledError, MusterError):
                        await query
            if query.cancelled():
                continue
            err = query.exception()
            if isinstance(err, MusterError):
                log.debug("catalog mirror: %s", err)
                await asyncio.sleep(MIRROR_RETRY)
            elif err is not None:
                raise err

    async def refresh(self, wait: float) -> None:
        """One blocking query: returns when the view differs from ``digest`` or ``wait`` ran out."""
        gen = self.generation
        # A new interest is answered at once (an empty digest never matches), also when the
        # names it added are not in the catalog: "not there" is an answer too.
        payload = {"digest": self.digest if self.filled >= gen else "", "wait": wait, "client": self.remote.node_id,
                   "services": sorted({*self.services, "consul"}),
                   "nodes": sorted({*self.nodes, *self.pins, self.node} - {""}),
                   "addresses": sorted(self.addresses)}
        res = await self.remote.call("catalog_mirror", payload, timeout=wait * 1.1 + 10, idempotent=True,
                                     servers=self.servers)
        if not isinstance(res, dict):
            raise MusterError("catalog mirror: malformed answer")
        blob = res.get("blob")
        if isinstance(blob, (bytes, bytearray)):
            self.store.restore(bytes(blob))
            self.updates += 1
        self.digest = str(res.get("digest", ""))
        self.index = int(res.get("index", 0))
        self.filled = max(self.filled, gen)
        self.confirmed_at = self.clock.monotonic()
        self.server_contact = float(res.get("contact", 0.0))
        self.leader = str(res.get("leader", ""))
        if self.leader and res.get("self") == self.leader:
            self.servers.avoid(self.leader)
        self.ready.set()
        self._changed.set()


class RemoteLog:
    """The ``Log`` of a stateless client's ``Server`` (module doc)."""

    def __init__(self, remote: RemoteServers, hold: float) -> None:
        self.remote = remote
        self.hold = hold
        #: The client's catalog cache (set once by the process root, after the ``Server``
        #: that owns the store exists): the source of the leader and index views.
        self.mirror: CatalogMirror | None = None

    def is_leader(self) -> bool:
        return False

    def leader_id(self) -> str | None:
        return (self.mirror.leader if self.mirror is not None else "") or None

    def last_contact(self) -> float:
        s = self.mirror.staleness() if self.mirror is not None else float("inf")
        return s if s != float("inf") else 0.0

    def last_index(self) -> int:
        return self.mirror.index if self.mirror is not None else 0

    def commit_index(self) -> int:
        return self.last_index()

    def term(self) -> int:
        return 0

    def last_snapshot(self) -> tuple[int, int]:
        return (0, 0)

    def configuration_index(self) -> int:
        return 0

    def propose_now(self, cmd: Any) -> Any:
        return PENDING

    async def propose(self, cmd: Any) -> Any:
        res = await self.remote.call("client_apply", encode_command(cmd), timeout=self.hold + 10)
        if isinstance(res, dict) and "err" in res:
            return MusterError(str(res["err"]), int(res.get("status", 500)))
        return res

    async def read_barrier(self, consistent: bool = True) -> None:
        raise NoLeader()


class ClientEndpoints:
    """The server RPC methods client agents call (module doc)."""

    def __init__(self, node_id: str, store: Callable[[], StateStore], apply: Callable[[Any], Any],
                 leader: Callable[[], str], contact: Callable[[], float], rng: random.Random) -> None:
        self.node_id = node_id
        self._store = store
        self._apply = apply
        self._leader = leader
        self._contact = contact
        self._rng = rng
        #: Lowercase -> exact service and node names, and destination -> Connect proxy
        #: instances, rebuilt once per change of the nodes or services table (``shape_key``), shared by
        #: every client's query.
        self._names: tuple[tuple[int, int, int], dict[str, list[str]], dict[str, str],
                           dict[str, list[tuple[str, str]]]] | None = None
        #: ``_address_index``'s tables and the catalog index they were built at.
        self._addrs: tuple[tuple[int, int, int], dict[str, list[str]], dict[str, list[tuple[str, str]]]] | None = None
        #: The latest mirror query of each client: a newer one ends the older at once.
        self._waiting: dict[str, Watch] = {}
        #: Times a waiting query was woken by a watch (and then rebuilt its view): what a
        #: catalog write costs this server in clients' queries (tests, benchmarks).
        self.wakes = 0

    def watch(self, ws: WatchSet, store: StateStore, services: Sequence[str], nodes: Sequence[str],
              addresses: Sequence[str]) -> None:
        """Add to ``ws`` the watches of what ``view`` reads for this interest: per followed node
        and service name (``catalog.py`` ``NODE_WATCH``/``SERVICE_WATCH``, lowercase, so a name
        that appears later wakes it too), and the Connect proxies that front a followed service
        (their own service names; a new proxy fires its destination's watch).  An address
        interest (PTR lookups, rare) matches any node or service row, so it keeps the coarse
        watches of the catalog tables."""
        for name in services:
            store.watch_table(ws, SERVICE_WATCH + name.lower())
        for name in nodes:
            store.watch_table(ws, NODE_WATCH + name.lower())
        if self._names is not None:
            cat = store.tables.catalog
            proxies = self._names[3]
            for name in services:
                for node, sid in proxies.get(name.lower(), ()):
                    svc = cat.services.get(node, {}).get(sid)
                    if svc is not None:
                        store.watch_table(ws, SERVICE_WATCH + svc.service.lower())
        if addresses:
            for name in MIRROR_TABLES:
                store.watch_table(ws, name)

    def handlers(self) -> dict[str, Callable[[Any], Any]]:
        return {"client_apply": self.rpc_client_apply, "catalog_mirror": self.rpc_catalog_mirror}

    async def rpc_client_apply(self, payload: Any) -> Any:
        cmd = decode_command(bytes(payload))
        try:
            return await self._apply(cmd)
        except MusterError as err:
            return {"err": err.message, "status": err.status}

    async def rpc_catalog_mirror(self, payload: Any) -> dict[str, Any]:
        """Block until the client's view (``view``) differs from its ``digest`` (or ``wait``
        runs out; at most ``MIRROR_MAX_WAIT``), then answer the digest, and the view when it
        changed.  Woken only by the watches of what the view follows (``watch``): a catalog
        write about other nodes and services wakes no client's query, so the view is rebuilt
        and hashed only when something in it may have changed."""
        if not isinstance(payload, dict):
            raise MusterError("catalog_mirror: malformed request")
        have = str(payload.get("digest", ""))
        wait = min(max(float(payload.get("wait", 0.0)), 0.0), MIRROR_MAX_WAIT)
        services = [str(x) for x in payload.get("services") or ()][:MAX_NAMES + 1]
        # asked names, pinned names and the client's own node
        nodes = [str(x) for x in payload.get("nodes") or ()][:2 * MAX_NAMES + 1]
        addresses = [str(x) for x in payload.get("addresses") or ()][:MAX_NAMES]
        client = str(payload.get("client", ""))
        mine = Watch()
        older = self._waiting.get(client)
        if older is not None:
            older.fire()
        self._waiting[client] = mine
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait + self._rng.random() * wait / 16
        try:
            while True:
                store = self._store()
                rows = self.view(store, services, nodes, addresses)
                digest = hashlib.blake2b(msgspec.msgpack.encode(rows, order="sorted"), digest_size=12).hexdigest()
                changed = digest != have
                blob = view_snapshot(store, rows) if changed else None
                remaining = deadline - loop.time()
                if changed or remaining <= 0 or mine.fired:
                    return {"digest": digest, "blob": blob, "index": store.catalog_index(),
                            "leader": self._leader(), "contact": self._contact(), "self": self.node_id}
                ws = WatchSet()
                ws.add(store.abandon_watch)
                ws.add(mine)
                self.watch(ws, store, services, nodes, addresses)
                if await ws.wait(remaining):
                    self.wakes += 1
        finally:
            if self._waiting.get(client) is mine:
                del self._waiting[client]

    def view(self, store: StateStore, services: list[str], nodes: list[str],
             addresses: Sequence[str] = ()) -> dict[str, Any]:
        """The part of the catalog a client follows (nodes, services, checks rows): every
        instance of ``services`` (case-insensitive) and every Connect proxy whose destination
        is one of them, each with its node and the checks of the instance and of its node;
        every one of ``nodes`` with all its services and checks; for each of ``addresses``
        what a PTR answer reads (``dns/answers.py`` ``_ptr``): the nodes with that address or
        tagged address, and the service instances whose own address it is."""
        cat = store.tables.catalog
        key = shape_key(store)
        if self._names is None or self._names[0] != key:
            by_service: dict[str, list[str]] = {}
            for name in cat.service_instances:
                by_service.setdefault(name.lower(), []).append(name)
            proxies: dict[str, list[tuple[str, str]]] = {}
            for node, svcs in cat.services.items():
                for sid, svc in svcs.items():
                    if svc.kind == "connect-proxy":
                        dest = str(svc.proxy.get("DestinationServiceName") or "").lower()
                        proxies.setdefault(dest, []).append((node, sid))
            self._names = (key, by_service, {n.lower(): n for n in cat.nodes}, proxies)
            self._addrs = None
        _, by_service, by_node, proxies = self._names
        out_nodes: dict[str, Any] = {}
        out_svcs: dict[str, dict[str, Any]] = {}
        out_checks: dict[str, dict[str, Any]] = {}

        def instance(node: str, sid: str) -> None:
            row = cat.nodes.get(node)
            svc = cat.services.get(node, {}).get(sid)
            if row is None or svc is None:
                return
            out_nodes[node] = row
            out_svcs.setdefault(node, {})[sid] = svc
            for cid, chk in cat.checks.get(node, {}).items():
                if chk.service_id in ("", sid):
                    out_checks.setdefault(node, {})[cid] = chk

        for ls in services:
            for exact in by_service.get(ls.lower(), ()):
                for node, sid in cat.service_instances.get(exact, ()):
                    instance(node, sid)
            for node, sid in proxies.get(ls.lower(), ()):
                instance(node, sid)
        for ln in nodes:
            found = by_node.get(ln.lower())
            if found is None:
                continue
            out_nodes[found] = cat.nodes[found]
            if cat.services.get(found):
                out_svcs.setdefault(found, {}).update(cat.services[found])
            if cat.checks.get(found):
                out_checks.setdefault(found, {}).update(cat.checks[found])
        if addresses:
            node_addrs, svc_addrs = self._address_index(store)
            for text in addresses:
                matched = node_addrs.get(text, ())
                for node in matched:
                    out_nodes[node] = cat.nodes[node]
                if not matched:
                    for node, sid in svc_addrs.get(text, ()):
                        instance(node, sid)
        return {"nodes": out_nodes, "services": out_svcs, "checks": out_checks}

    def _address_index(self, store: StateStore) -> tuple[dict[str, list[str]], dict[str, list[tuple[str, str]]]]:
        """Canonical IP text -> nodes with it (address or tagged address), and -> service
        instances with it as their own address; built once per ``shape_key``, and only when
        some client follows an address (most never do)."""
        key = shape_key(store)
        if self._addrs is not None and self._addrs[0] == key:
            return self._addrs[1], self._addrs[2]
        cat = store.tables.catalog
        node_addrs: dict[str, list[str]] = {}
        svc_addrs: dict[str, list[tuple[str, str]]] = {}
        for name, node in cat.nodes.items():
            seen: set[str] = set()
            for a in [node.address, *node.tagged_addresses.values()]:
                ip = canonical_ip(a) if isinstance(a, str) else None
                if ip is not None and ip not in seen:
                    seen.add(ip)
                    node_addrs.setdefault(ip, []).append(name)
        for name, svcs in cat.services.items():
            for sid, svc in svcs.items():
                ip = canonical_ip(svc.address) if svc.address else None
                if ip is not None:
                    svc_addrs.setdefault(ip, []).append((name, sid))
        self._addrs = (key, node_addrs, svc_addrs)
        return node_addrs, svc_addrs


def shape_key(store: StateStore) -> tuple[int, int, int]:
    """What the name and address indexes of ``ClientEndpoints`` depend on: the tables and the
    last changes of the nodes and services tables (a check update, the most frequent catalog
    write, leaves them valid)."""
    idx = store.tables.indexes
    return (id(store.tables), idx.get("nodes", 0), idx.get("services", 0))


def canonical_ip(text: str) -> str | None:
    """One spelling per IP address (what a mirror's address interest is keyed by), or None."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def view_snapshot(store: StateStore, rows: dict[str, Any]) -> bytes:
    """``rows`` (``ClientEndpoints.view``) as a snapshot in ``StateStore.snapshot``'s format."""
    idx = store.catalog_index()
    data = {
        "version": SNAPSHOT_VERSION,
        "kvs": [],
        "tombstones": {},
        "lock_delays": {},
        **rows,
        "sessions": {},
        "indexes": {k: v for k, v in store.tables.indexes.items() if k in MIRROR_TABLES} or {"nodes": idx},
    }
    return msgspec.msgpack.encode(data)
