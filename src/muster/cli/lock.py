"""``muster lock``: run a child process while holding a distributed lock (or semaphore slot).

A faithful port of Consul's ``command/lock`` and of the Go client's ``api.Lock`` and
``api.Semaphore`` recipes (docs/compat/sessions.md#how-clients-use-it), so a Muster lock interoperates with ``consul lock``
and with other Go clients using the same prefix:

* a session ``{"Name": ..., "TTL": "15s"}`` renewed every TTL/2 and destroyed at the end;
* ``-n 1``: key ``<prefix>/.lock`` acquired with flags ``0x2ddccbc058a50c18``; while it is
  held by someone else the command blocks on the key (``?index=``), after a lock-delay
  refusal it retries every 5 s;
* ``-n N``: contender key ``<prefix>/<session>`` plus a ``<prefix>/.lock`` JSON document
  ``{"Limit": N, "Holders": {...}}`` updated with check-and-set (flags ``0xe0f69a2baa414de0``);
* once held, a monitor blocks on the key; if the lock is lost the child gets SIGTERM and,
  after a 5 s grace period, SIGKILL;
* at the end the lock is released, the session destroyed and the lock key deleted (CAS)
  unless someone else is using it.

Exit code: 0, or with ``-child-exit-code`` 2 when the child failed (Consul's behaviour); 1
for any error of the command itself.
"""

from __future__ import annotations

import json
import os
import posixpath
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from muster.api import APIError, Client, ConsulError, TransportError
from muster.cli.flags import FlagSet, add_http_flags
from muster.cli.format import LOCK_FLAG_VALUE, SEMAPHORE_FLAG_VALUE
from muster.cli.ui import UI, api_errors, make_client, parse_or_usage
from muster.durations import SECOND, parse_duration

__all__ = [
    "Lock",
    "LockError",
    "LockInUse",
    "RenewedSession",
    "Semaphore",
    "child_command",
    "describe_exit",
    "lock",
]

SESSION_TTL = "15s"
LOCK_WAIT_TIME = 15.0
LOCK_RETRY_TIME = 5.0
MONITOR_RETRY_TIME = 1.0
KILL_GRACE_PERIOD = 5.0
DEFAULT_MONITOR_RETRY = 3
LOCK_KEY = ".lock"


class LockError(Exception):
    """The lock (or semaphore) cannot be used; the message is Consul's text."""


class LockInUse(LockError):
    """Cleanup skipped: somebody else holds or contends for the lock."""


class _WaitBudget:
    """The acquire loop's time budget (Consul's ``api.Lock``): the first blocking read waits
    ``timeout`` (or LOCK_WAIT_TIME without one), later ones what is left; None once spent."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout or 0.0
        self.start = time.monotonic()
        self.attempts = 0

    def next_wait(self) -> float | None:
        wait = self.timeout if self.timeout else LOCK_WAIT_TIME
        if self.timeout and self.attempts > 0:
            elapsed = time.monotonic() - self.start
            if elapsed > self.timeout:
                return None
            wait = self.timeout - elapsed
        self.attempts += 1
        return wait


def _wait_param(seconds: float) -> str:
    return f"{max(1, int(seconds * 1000))}ms"


def _retryable(err: ConsulError) -> bool:
    """Go ``api.IsRetryableError``: a 500 answer or a transport failure."""
    return isinstance(err, TransportError) or (isinstance(err, APIError) and err.status == 500)


class RenewedSession:
    """A TTL session renewed every TTL/2 on a background thread; :meth:`stop` destroys it.

    Mirrors Go's ``Session.RenewPeriodic``: a failed renew is retried every second until
    the TTL has elapsed since the last success; a 404 ends the renewals (session gone).
    """

    def __init__(self, client: Client, name: str, ttl: str = SESSION_TTL) -> None:
        self.client = client
        self.ttl = ttl
        self.id = client.session_create({"Name": name, "TTL": ttl})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="session-renew", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        ttl = parse_duration(self.ttl)
        wait = ttl / 2
        last = time.monotonic()
        while True:
            if time.monotonic() - last > ttl:
                return
            if self._stop.wait(wait):
                try:
                    self.client.session_destroy(self.id)
                except ConsulError:
                    pass
                return
            try:
                entry = self.client.session_renew(self.id)
            except ConsulError:
                wait = 1.0
                continue
            if entry is None:
                return
            try:
                ttl = parse_duration(str(entry.get("TTL") or self.ttl))
            except ValueError:
                ttl = parse_duration(self.ttl)
            wait = ttl / 2
            last = time.monotonic()

    def stop(self) -> None:
        """Stop renewing and destroy the session (best effort, bounded)."""
        self._stop.set()
        self._thread.join(timeout=10)


class Lock:
    """Go's ``api.Lock`` on ``<prefix>/.lock``."""

    def __init__(self, client: Client, prefix: str, session_name: str, monitor_retries: int) -> None:
        self.client = client
        self.key = posixpath.normpath(posixpath.join(prefix, LOCK_KEY)) if prefix else LOCK_KEY
        self.session_name = session_name
        self.monitor_retries = monitor_retries
        self.session: RenewedSession | None = None
        self.held = False
        self.lost = threading.Event()

    def acquire(self, timeout: float | None, should_stop: Callable[[], bool]) -> bool:
        """Block until the lock is held (True) or ``timeout``/``should_stop`` (False)."""
        if self.session is None:
            try:
                self.session = RenewedSession(self.client, self.session_name)
            except ConsulError as err:
                raise LockError(f"failed to create session: {err}") from None
        sid = self.session.id
        budget = _WaitBudget(timeout)
        wait_index = 0
        while True:
            if should_stop():
                return False
            query_wait = budget.next_wait()
            if query_wait is None:
                return False
            try:
                pair, meta = self.client.kv_get(self.key, index=wait_index, wait=_wait_param(query_wait))
            except ConsulError as err:
                raise LockError(f"failed to read lock: {err}") from None
            if pair is not None and pair.get("Flags") != LOCK_FLAG_VALUE:
                raise LockError("Existing key does not match lock use")
            if pair is not None and pair.get("Session") == sid:
                break
            if pair is not None and pair.get("Session"):
                wait_index = meta.index
                continue
            try:
                locked = self.client.kv_put(self.key, b"", flags=LOCK_FLAG_VALUE, acquire=sid)
            except ConsulError as err:
                raise LockError(f"failed to acquire lock: {err}") from None
            if locked:
                break
            try:
                pair, meta = self.client.kv_get(self.key)
            except ConsulError as err:
                raise LockError(f"failed to read lock: {err}") from None
            if pair is not None and pair.get("Session"):
                wait_index = meta.index
                continue
            # Free but refused: a lock-delay is in effect; retry after a timed wait.
            wait_index = 0
            deadline = time.monotonic() + LOCK_RETRY_TIME
            while time.monotonic() < deadline:
                if should_stop():
                    return False
                time.sleep(0.1)
        self.held = True
        threading.Thread(target=self._monitor, args=(sid,), name="lock-monitor", daemon=True).start()
        return True

    def _monitor(self, sid: str) -> None:
        wait_index = 0
        retries = self.monitor_retries
        while self.held:
            try:
                pair, meta = self.client.kv_get(self.key, index=wait_index, consistent=True)
            except ConsulError as err:
                if retries > 0 and _retryable(err):
                    time.sleep(MONITOR_RETRY_TIME)
                    retries -= 1
                    wait_index = 0
                    continue
                break
            if pair is not None and pair.get("Session") == sid:
                wait_index = meta.index
                retries = self.monitor_retries
                continue
            break
        if self.held:
            self.lost.set()

    def release(self) -> None:
        """Release the key and destroy the session."""
        if not self.held:
            if self.session is not None:
                self.session.stop()
            raise LockError("Lock not held")
        self.held = False
        assert self.session is not None
        try:
            self.client.kv_put(self.key, b"", flags=LOCK_FLAG_VALUE, release=self.session.id)
        except ConsulError as err:
            raise LockError(f"failed to release lock: {err}") from None
        finally:
            self.session.stop()

    def abandon(self) -> None:
        """Give up before holding the lock: only destroy the session."""
        if self.session is not None:
            self.session.stop()

    def cleanup(self) -> None:
        """Delete the lock key if nobody uses it (Go ``Lock.Destroy``)."""
        try:
            pair, _ = self.client.kv_get(self.key)
        except ConsulError as err:
            raise LockError(f"failed to read lock: {err}") from None
        if pair is None:
            return
        if pair.get("Flags") != LOCK_FLAG_VALUE:
            raise LockError("Existing key does not match lock use")
        if pair.get("Session"):
            raise LockInUse("Lock in use")
        try:
            removed = self.client.kv_delete(self.key, cas=int(pair.get("ModifyIndex", 0)))
        except ConsulError as err:
            raise LockError(f"failed to remove lock: {err}") from None
        if not removed:
            raise LockInUse("Lock in use")


class Semaphore:
    """Go's ``api.Semaphore``: up to ``limit`` holders under ``prefix``."""

    def __init__(
        self, client: Client, prefix: str, limit: int, session_name: str, monitor_retries: int
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.limit = limit
        self.lock_key = posixpath.normpath(posixpath.join(prefix, LOCK_KEY)) if prefix else LOCK_KEY
        self.session_name = session_name
        self.monitor_retries = monitor_retries
        self.session: RenewedSession | None = None
        self.held = False
        self.lost = threading.Event()

    def _contender_key(self, sid: str) -> str:
        return posixpath.join(self.prefix, sid) if self.prefix else sid

    def _find_lock(self, pairs: list[dict[str, Any]]) -> dict[str, Any] | None:
        for pair in pairs:
            if pair.get("Key") == self.lock_key:
                return pair
        return None

    def _decode(self, pair: dict[str, Any] | None) -> dict[str, Any]:
        if pair is None or not pair.get("Value"):
            return {"Limit": self.limit, "Holders": {}}
        from muster.api import decode_value

        try:
            lock = json.loads(decode_value(pair))
        except ValueError as err:
            raise LockError(f"lock decoding failed: {err}") from None
        if not isinstance(lock, dict):
            raise LockError("lock decoding failed: not an object")
        lock.setdefault("Holders", {})
        if lock["Holders"] is None:
            lock["Holders"] = {}
        return lock

    @staticmethod
    def _prune(lock: dict[str, Any], pairs: list[dict[str, Any]]) -> None:
        alive = {p.get("Session") for p in pairs if p.get("Session")}
        for holder in list(lock["Holders"]):
            if holder not in alive:
                del lock["Holders"][holder]

    def _list(
        self, index: int = 0, wait: str | None = None, consistent: bool = False
    ) -> tuple[list[dict[str, Any]], int]:
        prefix = self.prefix + "/" if self.prefix and not self.prefix.endswith("/") else self.prefix
        pairs, meta = self.client.kv_list(prefix, index=index, wait=wait, consistent=consistent)
        return pairs, meta.index

    def acquire(self, timeout: float | None, should_stop: Callable[[], bool]) -> bool:
        """Block until a slot is held (True) or ``timeout``/``should_stop`` (False)."""
        if self.session is None:
            try:
                self.session = RenewedSession(self.client, self.session_name)
            except ConsulError as err:
                raise LockError(f"failed to create session: {err}") from None
        sid = self.session.id
        try:
            made = self.client.kv_put(self._contender_key(sid), b"", flags=SEMAPHORE_FLAG_VALUE, acquire=sid)
        except ConsulError as err:
            raise LockError(f"failed to make contender entry: {err}") from None
        if not made:
            raise LockError("failed to make contender entry")
        budget = _WaitBudget(timeout)
        wait_index = 0
        while True:
            if should_stop():
                return False
            query_wait = budget.next_wait()
            if query_wait is None:
                return False
            try:
                pairs, index = self._list(wait_index, _wait_param(query_wait))
            except ConsulError as err:
                raise LockError(f"failed to read prefix: {err}") from None
            lock_pair = self._find_lock(pairs)
            if lock_pair is not None and lock_pair.get("Flags") != SEMAPHORE_FLAG_VALUE:
                raise LockError("Existing key does not match semaphore use")
            lock = self._decode(lock_pair)
            if lock.get("Limit") != self.limit:
                raise LockError(f"semaphore limit conflict (lock: {lock.get('Limit')}, local: {self.limit})")
            self._prune(lock, pairs)
            if len(lock["Holders"]) >= self.limit:
                wait_index = index
                continue
            lock["Holders"][sid] = True
            cas = int(lock_pair.get("ModifyIndex", 0)) if lock_pair is not None else 0
            body = json.dumps(lock, separators=(",", ":")).encode()
            try:
                did_set = self.client.kv_put(self.lock_key, body, flags=SEMAPHORE_FLAG_VALUE, cas=cas)
            except ConsulError as err:
                raise LockError(f"failed to update lock: {err}") from None
            if did_set:
                break
            wait_index = 0
        self.held = True
        threading.Thread(target=self._monitor, args=(sid,), name="semaphore-monitor", daemon=True).start()
        return True

    def _monitor(self, sid: str) -> None:
        wait_index = 0
        retries = self.monitor_retries
        while self.held:
            try:
                pairs, index = self._list(wait_index, consistent=True)
                lock = self._decode(self._find_lock(pairs))
            except ConsulError as err:
                if retries > 0 and _retryable(err):
                    time.sleep(MONITOR_RETRY_TIME)
                    retries -= 1
                    wait_index = 0
                    continue
                break
            except LockError:
                break
            self._prune(lock, pairs)
            if sid in lock["Holders"]:
                wait_index = index
                retries = self.monitor_retries
                continue
            break
        if self.held:
            self.lost.set()

    def release(self) -> None:
        """Remove this session from the holders, delete the contender key, destroy the session."""
        if not self.held:
            if self.session is not None:
                self.session.stop()
            raise LockError("Semaphore not held")
        self.held = False
        assert self.session is not None
        sid = self.session.id
        try:
            for _ in range(100):
                pair, _ = self.client.kv_get(self.lock_key)
                lock = self._decode(pair)
                if sid not in lock["Holders"]:
                    break
                del lock["Holders"][sid]
                body = json.dumps(lock, separators=(",", ":")).encode()
                cas = int(pair.get("ModifyIndex", 0)) if pair is not None else 0
                if self.client.kv_put(self.lock_key, body, flags=SEMAPHORE_FLAG_VALUE, cas=cas):
                    break
            self.client.kv_delete(self._contender_key(sid))
        except ConsulError as err:
            raise LockError(f"failed to release semaphore: {err}") from None
        finally:
            self.session.stop()

    def abandon(self) -> None:
        """Give up before holding a slot: delete the contender key, destroy the session."""
        if self.session is not None:
            try:
                self.client.kv_delete(self._contender_key(self.session.id))
            except ConsulError:
                pass
            self.session.stop()

    def cleanup(self) -> None:
        """Delete the semaphore's lock key if it has no live holders (Go ``Semaphore.Destroy``)."""
        try:
            pairs, _ = self._list()
        except ConsulError as err:
            raise LockError(f"failed to read prefix: {err}") from None
        lock_pair = self._find_lock(pairs)
        if lock_pair is None:
            return
        if lock_pair.get("Flags") != SEMAPHORE_FLAG_VALUE:
            raise LockError("Existing key does not match semaphore use")
        lock = self._decode(lock_pair)
        self._prune(lock, pairs)
        if lock["Holders"]:
            raise LockInUse("Semaphore in use")
        try:
            removed = self.client.kv_delete(self.lock_key, cas=int(lock_pair.get("ModifyIndex", 0)))
        except ConsulError as err:
            raise LockError(f"failed to remove semaphore: {err}") from None
        if not removed:
            raise LockInUse("Semaphore in use")


class _Shutdown(Exception):
    """Raised from the signal handler while the lock is being acquired."""


def describe_exit(rc: int) -> str:
    """Go's ``*exec.ExitError`` text: ``exit status N`` or ``signal: <name>``."""
    if rc < 0:
        sig = -rc
        names = {
            signal.SIGTERM: "terminated",
            signal.SIGKILL: "killed",
            signal.SIGINT: "interrupt",
            signal.SIGHUP: "hangup",
        }
        try:
            return f"signal: {names.get(signal.Signals(sig), signal.Signals(sig).name)}"
        except ValueError:
            return f"signal: {sig}"
    return f"exit status {rc}"


def child_command(args: list[str], shell: bool, environ: dict[str, str]) -> list[str]:
    """The argv for the child: ``$SHELL -c 'args joined'`` (default) or ``args`` verbatim."""
    if shell:
        return [environ.get("SHELL") or "/bin/sh", "-c", " ".join(args)]
    return list(args)


def lock(ui: UI, args: list[str]) -> int:
    """``lock [-n N] [-timeout D] [-child-exit-code] [-name S] [-shell=false] PREFIX CHILD...``."""
    fs = FlagSet(
        "Usage: muster lock [options] prefix child...\n\n"
        "  Acquires a lock or semaphore at a given path, and invokes a child process\n"
        "  when successful. If the lock is lost or communication is disrupted the child\n"
        "  process will be sent a SIGTERM signal and given time to gracefully exit.\n"
        "  After the grace period expires the process will be hard terminated.\n\n"
        "  When -n=1, only a single lock holder exists. A higher value switches to a\n"
        "  semaphore allowing multiple holders to coordinate."
    )
    fs.add("child-exit-code", "bool", False, "Exit 2 if the child process exited with an error.")
    fs.add("n", "int", 1, "Optional limit on the number of concurrent lock holders.")
    fs.add(
        "monitor-retry", "int", DEFAULT_MONITOR_RETRY, "Number of times to retry on a 500 while monitoring."
    )
    fs.add("name", "string", "", "Optional name to associate with the lock session.")
    fs.add("pass-stdin", "bool", False, "Pass stdin to the child process.")
    fs.add("shell", "bool", True, "Use a shell to run the command ($SHELL, default /bin/sh).")
    fs.add("timeout", "duration", 0, "Maximum amount of time to wait to acquire the lock.")
    fs.add("try", "duration", 0, "DEPRECATED. Use -timeout instead.")
    fs.add("verbose", "bool", False, "Enable verbose (debugging) output.")
    add_http_flags(fs)
    p = parse_or_usage(ui, fs, args)

    def info(msg: str) -> None:
        if p["verbose"]:
            ui.out(msg)

    if p["n"] <= 0:
        ui.err("Lock holder limit must be positive")
        return 1
    if len(p.args) < 2:
        ui.err("Key prefix and child command must be specified")
        return 1
    prefix = p.args[0][1:] if p.args[0].startswith("/") else p.args[0]
    child_args = p.args[1:]
    timeout_ns = p["timeout"] if p.is_set("timeout") else p["try"]
    if timeout_ns < 0:
        ui.err("Timeout must be positive")
        return 1
    name = p["name"] or f"Consul lock for '{' '.join(child_args)}' at '{prefix}'"
    if p["monitor-retry"] < 0:
        ui.err("Number for 'monitor-retry' must be >= 0")
        return 1
    client = make_client(ui, p)
    with api_errors(ui, "Error querying Consul agent"):
        client.agent_node_name()
    locker: Lock | Semaphore
    if p["n"] == 1:
        locker = Lock(client, prefix, name, p["monitor-retry"])
        info(f"Setting up lock at path: {locker.key}")
    else:
        locker = Semaphore(client, prefix, p["n"], name, p["monitor-retry"])
        info(f"Setting up semaphore (limit {p['n']}) at prefix: {prefix}")

    state = {"acquiring": True, "shutdown": False}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        state["shutdown"] = True
        if state["acquiring"]:
            raise _Shutdown()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run_locked(
            ui, p.values, locker, child_args, timeout_ns / SECOND if timeout_ns else None, state, info
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_locked(
    ui: UI,
    opts: dict[str, Any],
    locker: Lock | Semaphore,
    child_args: list[str],
    timeout: float | None,
    state: dict[str, bool],
    info: Callable[[str], None],
) -> int:
    info("Attempting lock acquisition")
    try:
        try:
            held = locker.acquire(timeout, lambda: state["shutdown"])
        finally:
            state["acquiring"] = False
    except _Shutdown:
        locker.abandon()
        ui.err("Shutdown triggered or timeout during lock acquisition")
        return 1
    except LockError as err:
        locker.abandon()
        ui.err(f"Lock acquisition failed: {err}")
        return 1
    if not held:
        locker.abandon()
        ui.err("Shutdown triggered or timeout during lock acquisition")
        return 1

    child_code = 0
    if state["shutdown"]:
        ui.err("Shutdown triggered during lock acquisition")
    else:
        info("Starting handler")
        env = dict(ui.environ)
        env["CONSUL_LOCK_HELD"] = "true"
        proc: subprocess.Popen[bytes] | None = None
        try:
            proc = subprocess.Popen(
                child_command(child_args, bool(opts["shell"]), env),
                env=env,
                stdin=None if opts["pass-stdin"] else subprocess.DEVNULL,
            )
        except OSError as err:
            ui.err(f"Error starting handler: {err}")
            child_code = 2
        if proc is not None:
            child_code = _supervise(ui, proc, locker, state, info)
    try:
        locker.release()
    except LockError as err:
        ui.err(f"Lock release failed: {err}")
        return 1
    try:
        locker.cleanup()
        info("Cleanup succeeded")
    except LockInUse:
        info("Cleanup aborted, lock in use")
    except LockError as err:
        ui.err(f"Lock cleanup failed: {err}")
        return 1
    return child_code if opts["child-exit-code"] else 0


def _supervise(
    ui: UI,
    proc: subprocess.Popen[bytes],
    locker: Lock | Semaphore,
    state: dict[str, bool],
    info: Callable[[str], None],
) -> int:
    """Wait for the child, a lost lock or a shutdown signal; returns Consul's child code."""
    while True:
        rc = proc.poll()
        if rc is not None:
            if rc != 0:
                ui.err(f"Error running handler: {describe_exit(rc)}")
                info("Child terminated, releasing lock")
                return 2
            info("Child terminated, releasing lock")
            return 0
        if state["shutdown"]:
            info("Shutdown triggered, killing child")
            break
        if locker.lost.wait(0.05):
            info("Lock lost, killing child")
            break
    info(f"Terminating child pid {proc.pid}")
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        rc = proc.wait(timeout=KILL_GRACE_PERIOD)
        info("Child terminated")
    except subprocess.TimeoutExpired:
        info(f"Child did not exit after grace period of {int(KILL_GRACE_PERIOD)}s")
        info(f"Killing child pid {proc.pid}")
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        rc = proc.wait()
    if rc != 0:
        ui.err(f"Error running handler: {describe_exit(rc)}")
    return 0
