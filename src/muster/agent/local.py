"""The agent's local state and anti-entropy (Consul's ``agent/local`` and ``agent/ae``).

``LocalState`` is the authority for what *this agent* runs: its services and checks, each
with an ``in_sync`` flag saying whether the catalog is known to hold exactly this record.
Changes (API, config, check results) only touch local state and flip ``in_sync``; the
``AntiEntropy`` syncer then makes the catalog match:

* partial sync, right after any change: push every entry that is not in sync, deregister
  every entry marked ``deleted``;
* full sync, every ``interval`` (+ random stagger): first compare local state with the catalog
  (``update_sync_state``) so that entries deleted or altered behind the agent's back, or
  foreign entries on our node, are repaired or removed, then push.

Invariants:

* Records are replaced, never mutated in place; a sync compares the object it sent with the
  current one (identity) before marking ``in_sync``, so a change racing with a sync is never
  lost: it stays out of sync and is pushed next time.
* ``deleted`` entries stay as tombstones until the catalog confirms the removal.
* The server's own entries on our node (service ``consul``, check ``serfHealth``) are never
  touched: the leader maintains them.
* Output-only check updates (same status) are not pushed at once: they are written back at
  most every ``check_update_interval`` (a timer in ``[interval/2, 3*interval/2)``), unless a
  status change pushes them earlier.  Status changes are pushed immediately.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import MusterError
from ..runtime import Clock, Rng
from ..state.rows import Check, Node, Service
from ..state.watch import Watch, WatchSet
from ..structs import DeregisterCommand, RegisterCommand
from .definitions import CheckDefinition

log = logging.getLogger("muster.agent.ae")

CONSUL_SERVICE_ID = "consul"
SERF_CHECK_ID = "serfHealth"
_INDEX_KEYS = ("CreateIndex", "ModifyIndex")


def same_record(a: dict[str, Any], b: dict[str, Any], ignore: tuple[str, ...] = ()) -> bool:
    """Equal ignoring Create/ModifyIndex (and ``ignore``): the catalog's notion of "unchanged"."""
    skip = _INDEX_KEYS + ignore
    ka = {k for k in a if k not in skip}
    kb = {k for k in b if k not in skip}
    return ka == kb and all(a[k] == b[k] for k in ka)


def same_as_row(want: dict[str, Any], row: msgspec.Struct, ignore: tuple[str, ...] = ()) -> bool:
    """``want`` (a record we would register) equals the catalog's typed ``row``, ignoring
    Create/ModifyIndex and ``ignore``; a key ``want`` lacks, or holds as ``None``, means the row
    type's default, as the store would read it."""
    if None in want.values():
        want = {k: v for k, v in want.items() if v is not None}
    try:
        norm = msgspec.to_builtins(msgspec.convert(want, type(row)))
    except msgspec.ValidationError:
        return False
    return same_record(norm, msgspec.to_builtins(row), ignore)


@dataclass
class ServiceState:
    service: dict[str, Any]
    source: str = "remote"  # "local" (config files) or "remote" (HTTP API)
    token: str = ""
    in_sync: bool = False
    deleted: bool = False
    #: The parent service's ID when this was registered from its ``Connect.SidecarService``
    #: (Consul's ``LocallyRegisteredAsSidecar``): it is deregistered with the parent.
    sidecar_of: str = ""


@dataclass
class CheckState:
    check: dict[str, Any]
    definition: CheckDefinition | None = None
    source: str = "remote"
    token: str = ""
    in_sync: bool = False
    deleted: bool = False
    critical_since: float | None = None  # monotonic time it went critical, None when not critical
    deferred: asyncio.TimerHandle | None = field(default=None, repr=False)


class LocalState:
    """Services and checks of this agent (see module doc).  Single-threaded: no locks."""

    def __init__(self, node: str, clock: Clock, rng: Rng, check_update_interval: float = 300.0) -> None:
        self.node = node
        self.clock = clock
        self.rng = rng
        self.check_update_interval = check_update_interval
        self.services_: dict[str, ServiceState] = {}
        self.checks_: dict[str, CheckState] = {}
        self.node_in_sync = False
        self._watch = Watch()
        self.on_change: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ notification

    def watch(self, ws: WatchSet) -> None:
        """Register in ``ws`` the watch fired by the next change of anything local."""
        ws.add(self._watch)

    def _changed(self, sync: bool = True) -> None:
        old, self._watch = self._watch, Watch()
        old.fire()
        if sync:
            self.on_change()

    # ------------------------------------------------------------------ services

    def add_service(self, svc: dict[str, Any], source: str = "remote", token: str = "", sidecar_of: str = "") -> None:
        """Add or replace a service.  Its checks keep ``ServiceName``/``ServiceTags`` in step."""
        sid = svc["ID"]
        self.services_[sid] = ServiceState(dict(svc), source, token, sidecar_of=sidecar_of)
        for cs in self.checks_.values():
            c = cs.check
            if not cs.deleted and c.get("ServiceID") == sid and (
                c["ServiceName"] != svc["Service"] or c["ServiceTags"] != svc["Tags"]
            ):
                cs.check = dict(c, ServiceName=svc["Service"], ServiceTags=list(svc["Tags"]))
                cs.in_sync = False
        self._changed()

    def remove_service(self, sid: str) -> bool:
        """Mark the service and its checks deleted; False if there was no such service."""
        st = self.services_.get(sid)
        if st is None or st.deleted:
            return False
        st.deleted = True
        st.in_sync = False
        for cid, cs in self.checks_.items():
            if cs.check.get("ServiceID") == sid and not cs.deleted:
                self._delete_check(cid, cs)
        self._changed()
        return True

    def service(self, sid: str) -> dict[str, Any] | None:
        st = self.services_.get(sid)
        return None if st is None or st.deleted else st.service

    def service_state(self, sid: str) -> ServiceState | None:
        st = self.services_.get(sid)
        return None if st is None or st.deleted else st

    def services(self) -> dict[str, dict[str, Any]]:
        return {sid: st.service for sid, st in sorted(self.services_.items()) if not st.deleted}

    # ------------------------------------------------------------------ checks

    def add_check(self, chk: dict[str, Any], definition: CheckDefinition | None = None,
                  source: str = "remote", token: str = "") -> None:
        """Add or replace a check.  A service check takes its service's name and tags."""
        rec = dict(chk)
        sid = rec.get("ServiceID") or ""
        if sid:
            svc = self.service(sid)
            if svc is None:
                raise MusterError(f'ServiceID "{sid}" does not exist', 404)
            rec["ServiceName"] = svc["Service"]
            rec["ServiceTags"] = list(svc["Tags"])
        old = self.checks_.get(rec["CheckID"])
        if old is not None and old.deferred is not None:
            old.deferred.cancel()
        cs = CheckState(rec, definition, source, token)
        if rec["Status"] == "critical":
            cs.critical_since = (
                old.critical_since if old is not None and not old.deleted and old.critical_since is not None
                else self.clock.monotonic()
            )
        self.checks_[rec["CheckID"]] = cs
        self._changed()

    def _delete_check(self, cid: str, cs: CheckState) -> None:
        if cs.deferred is not None:
            cs.deferred.cancel()
            cs.deferred = None
        cs.deleted = True
        cs.in_sync = False

    def remove_check(self, cid: str) -> bool:
        cs = self.checks_.get(cid)
        if cs is None or cs.deleted:
            return False
        self._delete_check(cid, cs)
        self._changed()
        return True

    def check(self, cid: str) -> dict[str, Any] | None:
        cs = self.checks_.get(cid)
        return None if cs is None or cs.deleted else cs.check

    def check_state(self, cid: str) -> CheckState | None:
        cs = self.checks_.get(cid)
        return None if cs is None or cs.deleted else cs

    def checks(self) -> dict[str, dict[str, Any]]:
        return {cid: cs.check for cid, cs in sorted(self.checks_.items()) if not cs.deleted}

    def checks_for_service(self, sid: str, include_node_checks: bool = True) -> list[dict[str, Any]]:
        out = []
        for _, cs in sorted(self.checks_.items()):
            if cs.deleted:
                continue
            csid = cs.check.get("ServiceID") or ""
            if csid == sid or (include_node_checks and not csid):
                out.append(cs.check)
        return out

    def update_check(self, check_id: str, status: str, output: str) -> None:
        """A runner's result.  Idempotent; output-only changes are deferred (module doc)."""
        cs = self.checks_.get(check_id)
        if cs is None or cs.deleted:
            return
        c = cs.check
        if status == "critical":
            if cs.critical_since is None:
                cs.critical_since = self.clock.monotonic()
        else:
            cs.critical_since = None
        if c["Status"] == status and c["Output"] == output:
            return
        if self.check_update_interval > 0 and c["Status"] == status:
            cs.check = dict(c, Output=output)
            if cs.deferred is None:
                d = self.check_update_interval
                delay = d / 2 + self.rng.uniform(0, d)
                cs.deferred = asyncio.get_running_loop().call_later(delay, self._deferred_sync, check_id)
            self._changed(sync=False)
            return
        if cs.deferred is not None:
            cs.deferred.cancel()
            cs.deferred = None
        cs.check = dict(c, Status=status, Output=output)
        cs.in_sync = False
        self._changed()

    def _deferred_sync(self, check_id: str) -> None:
        cs = self.checks_.get(check_id)
        if cs is None:
            return
        cs.deferred = None
        if cs.deleted:
            return
        cs.in_sync = False
        self.on_change()

    def critical_for(self, check_id: str) -> float | None:
        """Seconds the check has been continuously critical, None when it is not critical."""
        cs = self.check_state(check_id)
        if cs is None or cs.critical_since is None:
            return None
        return self.clock.monotonic() - cs.critical_since

    def stop(self) -> None:
        for cs in self.checks_.values():
            if cs.deferred is not None:
                cs.deferred.cancel()
                cs.deferred = None

    # ------------------------------------------------------------------ sync bookkeeping

    def out_of_sync(self) -> bool:
        return (
            not self.node_in_sync
            or any(not s.in_sync for s in self.services_.values())
            or any(not c.in_sync for c in self.checks_.values())
        )


class AntiEntropy:
    """Keeps the catalog equal to ``LocalState`` (module doc).

    ``apply`` proposes a command (the server's ``apply``); ``catalog`` returns the catalog's
    current (node record, services, checks) of our node; ``node_record`` the node record we
    want.  The first full sync runs at start.  A failed sync (e.g. no leader) is retried after
    ``retry_interval``.
    """

    def __init__(
        self,
        local: LocalState,
        apply: Callable[[Any], Any],
        catalog: Callable[[], tuple[Node | None, dict[str, Service], dict[str, Check]]],
        node_record: Callable[[], dict[str, Any]],
        rng: Rng,
        interval: float = 60.0,
        retry_interval: float = 15.0,
    ) -> None:
        self.local = local
        self.apply = apply
        self.catalog = catalog
        self.node_record = node_record
        self.rng = rng
        self.interval = interval
        self.retry_interval = retry_interval
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.full_syncs = 0
        self.partial_syncs = 0
        local.on_change = self.trigger

    def trigger(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="anti-entropy")

    async def stop(self) -> None:
        # The flag, not only the cancel: on Python 3.11 ``asyncio.wait_for`` swallows a
        # cancellation that arrives as the wake event is set (a local change at stop time, e.g.
        # an alias check reacting to a deregistration), and the loop would wait forever.
        self._stopping = True
        self._wake.set()
        t, self._task = self._task, None
        if t is not None:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def _stagger(self, d: float) -> float:
        return d + self.rng.uniform(0, d)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_full = loop.time()
        while not self._stopping:
            now = loop.time()
            if now >= next_full:
                self._wake.clear()
                try:
                    await self.full_sync()
                    next_full = loop.time() + self._stagger(self.interval)
                except MusterError as err:
                    log.warning("anti-entropy full sync failed: %s", err)
                    next_full = loop.time() + self._stagger(self.retry_interval)
                except Exception:  # a bug must not stop syncing forever: log it and retry later
                    log.exception("anti-entropy full sync crashed")
                    next_full = loop.time() + self._stagger(self.retry_interval)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), next_full - now)
            if self._wake.is_set():
                self._wake.clear()
                try:
                    await self.sync_changes()
                except MusterError as err:
                    log.warning("anti-entropy partial sync failed: %s", err)
                    next_full = min(next_full, loop.time() + self._stagger(self.retry_interval))
                except Exception:  # see above
                    log.exception("anti-entropy partial sync crashed")
                    next_full = min(next_full, loop.time() + self._stagger(self.retry_interval))

    async def full_sync(self) -> None:
        self.update_sync_state()
        await self.sync_changes()
        self.full_syncs += 1

    def update_sync_state(self) -> None:
        """Compare local state with the catalog and mark what differs (Consul's updateSyncState)."""
        local = self.local
        node, remote_svcs, remote_checks = self.catalog()
        want = self.node_record()
        local.node_in_sync = node is not None and same_as_row(want, node)
        for sid, rs in remote_svcs.items():
            if sid == CONSUL_SERVICE_ID:
                continue
            st = local.services_.get(sid)
            if st is None:
                # Registered on our node behind our back: remove it (as Consul does).
                local.services_[sid] = ServiceState(msgspec.to_builtins(rs), deleted=True)
        for sid, st in local.services_.items():
            if st.deleted:
                st.in_sync = sid not in remote_svcs
            else:
                remote = remote_svcs.get(sid)
                st.in_sync = remote is not None and same_as_row(st.service, remote)
        for cid, rc in remote_checks.items():
            if cid == SERF_CHECK_ID:
                continue
            if cid not in local.checks_:
                local.checks_[cid] = CheckState(msgspec.to_builtins(rc), deleted=True)
        for cid, cs in local.checks_.items():
            remote_chk = remote_checks.get(cid)
            if cs.deleted:
                cs.in_sync = remote_chk is None
            elif remote_chk is None:
                cs.in_sync = False
            else:
                ignore = ("Output",) if cs.deferred is not None else ()
                cs.in_sync = same_as_row(cs.check, remote_chk, ignore)

    async def sync_changes(self) -> None:
        """Push every out-of-sync entry (Consul's SyncChanges): deletions first, then updates."""
        local = self.local
        self.partial_syncs += 1
        for sid, st in list(local.services_.items()):
            if st.deleted and not st.in_sync:
                await self.apply(DeregisterCommand(node=local.node, service_id=sid))
                if local.services_.get(sid) is st:
                    del local.services_[sid]
        for cid, cs in list(local.checks_.items()):
            if cs.deleted and not cs.in_sync:
                await self.apply(DeregisterCommand(node=local.node, check_id=cid))
                if local.checks_.get(cid) is cs:
                    del local.checks_[cid]
        # Tombstones already confirmed absent need no command.
        for sid in [s for s, st in local.services_.items() if st.deleted and st.in_sync]:
            del local.services_[sid]
        for cid in [c for c, cs in local.checks_.items() if cs.deleted and cs.in_sync]:
            del local.checks_[cid]
        if not local.node_in_sync:
            await self.apply(RegisterCommand(node=self.node_record()))
            local.node_in_sync = True
        for sid, st in list(local.services_.items()):
            if st.in_sync or st.deleted:
                continue
            svc: dict[str, Any] = st.service
            sent_checks = [
                (cid, cs, cs.check) for cid, cs in sorted(local.checks_.items())
                if not cs.deleted and cs.check.get("ServiceID") == sid
            ]
            await self.apply(RegisterCommand(
                node=self.node_record(), service=svc, checks=[c for _, _, c in sent_checks], skip_node_update=True,
            ))
            if st.service is svc:
                st.in_sync = True
            for _, cs, c in sent_checks:
                if cs.check is c and not cs.deleted:
                    cs.in_sync = True
        for _, cs in sorted(local.checks_.items()):
            if cs.in_sync or cs.deleted:
                continue
            c = cs.check
            sid = c.get("ServiceID") or ""
            svc_rec = local.service(sid) if sid else None
            if sid and svc_rec is None:
                continue  # its service is gone; the check goes with it
            await self.apply(RegisterCommand(
                node=self.node_record(), service=svc_rec, checks=[c], skip_node_update=True,
            ))
            if cs.check is c:
                cs.in_sync = True
