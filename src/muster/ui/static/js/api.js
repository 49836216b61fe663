// HTTP API access: token, datacenter, blocking queries, connection state.
import {cmpIndex, parseJSONSafe} from "./codec.js";

const TOKEN_KEY = "muster.ui.token";
export const BLOCK_WAIT = "30s";
const BLOCK_TIMEOUT_MS = 45_000; // wait + server jitter + margin
const REQUEST_TIMEOUT_MS = 15_000;
export const POLL_MS = 2_000; // endpoints without X-Consul-Index: a few requests every 2 s at most
const MIN_GAP_MS = 250; // floor between two requests of one watcher
const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

// ---------------------------------------------------------------------------
// Settings

export const settings = {
  dc: "", // datacenter from the route ("" = the agent's own)
  get token() {
    try {
      return localStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  },
  set token(value) {
    try {
      if (value) localStorage.setItem(TOKEN_KEY, value);
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage disabled: keep working without persistence
    }
    emit("token", value);
  },
};

// The agent's ACL default policy, from the X-Consul-Default-ACL-Policy header of every API
// answer ("" until the first one): "deny" with no token set means the UI must ask for one.
export const acl = {defaultPolicy: ""};

// ---------------------------------------------------------------------------
// Tiny event bus

const listeners = new Map();
export function on(event, fn) {
  if (!listeners.has(event)) listeners.set(event, new Set());
  listeners.get(event).add(fn);
  return () => listeners.get(event).delete(fn);
}
export function emit(event, detail) {
  for (const fn of listeners.get(event) || []) fn(detail);
}

// ---------------------------------------------------------------------------
// Connection state

export const connection = {
  up: true,
  failures: 0,
  nextRetryAt: 0,
  lastError: "",
};

function markUp() {
  if (!connection.up || connection.failures) {
    connection.up = true;
    connection.failures = 0;
    connection.nextRetryAt = 0;
    connection.lastError = "";
    emit("connection", connection);
  }
}

function markDown(err, retryInMs) {
  connection.up = false;
  connection.failures += 1;
  connection.lastError = err.message;
  const at = Date.now() + retryInMs;
  connection.nextRetryAt = connection.nextRetryAt > Date.now() ? Math.min(connection.nextRetryAt, at) : at;
  emit("connection", connection);
}

/** Wake every watcher that is sleeping in a back-off ("Retry now"). */
export function retryNow() {
  emit("retry-now");
}

// ---------------------------------------------------------------------------
// Errors

export class ApiError extends Error {
  constructor(status, body, path) {
    const text = (body || "").trim();
    super(status === 0 ? `Cannot reach the agent (${text || "network error"})` : `${status}: ${text || "request failed"}`);
    this.status = status;
    this.body = text;
    this.path = path;
  }

  get isNetwork() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }

  get isPermission() {
    return this.status === 401 || this.status === 403;
  }
}

// ---------------------------------------------------------------------------
// Requests

function timeoutSignal(signal, ms) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(new DOMException("timeout", "TimeoutError")), ms);
  const onAbort = () => ctrl.abort(signal.reason);
  if (signal) {
    if (signal.aborted) ctrl.abort(signal.reason);
    else signal.addEventListener("abort", onAbort, {once: true});
  }
  return {
    signal: ctrl.signal,
    done() {
      clearTimeout(timer);
      if (signal) signal.removeEventListener("abort", onAbort);
    },
  };
}

/** Encode a KV key or name for a URL path, keeping "/" separators. */
export function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}

/**
 * Call the HTTP API.
 *   path: "catalog/services" (without /v1/)
 *   opts: {method, query, body, signal, dc (default true), accept: [extra ok statuses], timeoutMs, parse}
 * Resolves {status, data, index, headers}. 404 resolves with data null when accept includes 404.
 * Rejects with ApiError (status 0 for network failures) or AbortError.
 */
export async function request(path, opts = {}) {
  const {method = "GET", query = {}, body, signal, accept = [], timeoutMs = REQUEST_TIMEOUT_MS, parse = "json"} = opts;
  const params = new URLSearchParams();
  const useDc = opts.dc !== false && settings.dc;
  if (useDc) params.set("dc", settings.dc);
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === false) continue;
    params.append(k, v === true ? "" : String(v));
  }
  // Presence-only flags look nicer without "=".
  const qs = params.toString().replace(/(^|&)(keys|recurse|raw|stale)=(?=&|$)/g, "$1$2");
  const url = `/v1/${path}${qs ? `?${qs}` : ""}`;
  const headers = {};
  const token = settings.token;
  if (token) headers["X-Consul-Token"] = token;
  const t = timeoutSignal(signal, timeoutMs);
  let res;
  try {
    res = await fetch(url, {method, headers, body, signal: t.signal, cache: "no-store"});
  } catch (err) {
    t.done();
    if (signal && signal.aborted) throw err;
    const timedOut = err && (err.name === "AbortError" || err.name === "TimeoutError");
    throw new ApiError(0, timedOut ? "request timed out" : "network error", path);
  }
  let text;
  try {
    text = await res.text();
  } catch (err) {
    t.done();
    if (signal && signal.aborted) throw err;
    throw new ApiError(0, "connection interrupted", path);
  } finally {
    t.done();
  }
  const policy = res.headers.get("X-Consul-Default-ACL-Policy");
  if (policy && policy !== acl.defaultPolicy) {
    acl.defaultPolicy = policy;
    emit("aclpolicy", policy);
  }
  const indexHeader = res.headers.get("X-Consul-Index");
  const out = {status: res.status, data: null, index: indexHeader, headers: res.headers};
  if (res.ok || accept.includes(res.status)) {
    if (res.status !== 404 && text !== "") {
      if (parse === "json") {
        try {
          out.data = parseJSONSafe(text);
        } catch {
          throw new ApiError(res.status, `Unexpected response (not JSON): ${text.slice(0, 120)}`, path);
        }
      } else {
        out.data = text;
      }
    }
    return out;
  }
  throw new ApiError(res.status, text, path);
}

// ---------------------------------------------------------------------------
// Scopes: everything a page starts is stopped when the page goes away.

export class Scope {
  constructor() {
    this.ctrl = new AbortController();
    this.cleanups = [];
  }

  get signal() {
    return this.ctrl.signal;
  }

  get active() {
    return !this.ctrl.signal.aborted;
  }

  add(fn) {
    this.cleanups.push(fn);
  }

  child() {
    const c = new Scope();
    this.add(() => c.dispose());
    return c;
  }

  dispose() {
    if (this.ctrl.signal.aborted) return;
    this.ctrl.abort();
    for (const fn of this.cleanups.splice(0)) {
      try {
        fn();
      } catch {
        // ignore cleanup failures
      }
    }
  }
}

/** Sleep `ms` unless aborted; "Retry now" wakes back-off sleeps early. */
export function sleep(ms, signal, {wakeOnRetry = false} = {}) {
  return new Promise((resolve) => {
    if (signal && signal.aborted) return resolve(false);
    let off = null;
    const done = (value) => {
      clearTimeout(timer);
      if (signal) signal.removeEventListener("abort", onAbort);
      if (off) off();
      resolve(value);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    if (signal) signal.addEventListener("abort", onAbort, {once: true});
    if (wakeOnRetry) off = on("retry-now", () => done(true));
  });
}

function backoffDelay(attempt) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/**
 * Keep `path` up to date with blocking queries.
 *   onData(data, response) is called with every new result (index changed).
 *   onError(err) is called on failures (the loop keeps retrying with back-off,
 *   except for permission/client errors which are retried slowly).
 * Endpoints that do not return X-Consul-Index are polled every `pollMs`.
 */
export function watch(scope, path, {query = {}, accept = [], onData, onError, pollMs = POLL_MS, dc} = {}) {
  const signal = scope.signal;
  (async () => {
    let index = null;
    let failures = 0;
    while (!signal.aborted) {
      const started = Date.now();
      const blocking = index !== null;
      let res;
      try {
        res = await request(path, {
          query: blocking ? {...query, index, wait: BLOCK_WAIT} : query,
          accept,
          signal,
          dc,
          timeoutMs: blocking ? BLOCK_TIMEOUT_MS : REQUEST_TIMEOUT_MS,
        });
      } catch (err) {
        if (signal.aborted) return;
        failures += 1;
        let delay;
        if (err instanceof ApiError && err.isNetwork) {
          delay = backoffDelay(failures - 1);
          markDown(err, delay);
        } else if (err instanceof ApiError && err.status >= 500) {
          // Reachable but failing (e.g. "No cluster leader" during an election): back off.
          markUp();
          delay = backoffDelay(failures - 1);
        } else {
          // Refused (403, 404, 400...): retrying soon will not help; retry slowly.
          if (err instanceof ApiError) markUp();
          delay = Math.max(backoffDelay(failures + 2), 5_000);
        }
        index = null;
        if (onError) onError(err);
        await sleep(delay, signal, {wakeOnRetry: true});
        continue;
      }
      if (signal.aborted) return;
      markUp();
      failures = 0;
      const newIndex = res.index;
      let changed = true;
      if (newIndex) {
        if (index !== null && cmpIndex(newIndex, index) === 0) changed = false;
        // An index that goes backwards (restore, new leader) restarts from scratch.
        index = index !== null && cmpIndex(newIndex, index) < 0 ? null : newIndex;
      } else {
        index = null;
      }
      if (changed && onData) onData(res.data, res);
      if (!newIndex) {
        if (!(await sleep(pollMs, signal))) return;
      } else {
        const elapsed = Date.now() - started;
        // A blocking call that came back quickly without a change is a spurious
        // wake-up; never spin.
        const gap = !changed && elapsed < 1000 ? 1000 : MIN_GAP_MS;
        if (!(await sleep(gap, signal))) return;
      }
    }
  })();
}

/**
 * Poll `fn(signal)` every `ms` (for endpoints without blocking support).
 * Network failures back off exponentially; other errors go to onError and
 * polling continues at the normal pace.
 */
export function poll(scope, ms, fn, onError) {
  const signal = scope.signal;
  (async () => {
    let failures = 0;
    while (!signal.aborted) {
      try {
        await fn(signal);
        failures = 0;
        markUp();
      } catch (err) {
        if (signal.aborted) return;
        if (onError) onError(err);
        if (err instanceof ApiError && err.isNetwork) {
          failures += 1;
          const delay = backoffDelay(failures - 1);
          markDown(err, delay);
          if (!(await sleep(delay, signal, {wakeOnRetry: true}))) return;
          continue;
        }
        if (!(err instanceof ApiError)) throw err;
      }
      if (!(await sleep(ms, signal))) return;
    }
  })();
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function mapLimit(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next;
      next += 1;
      results[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({length: Math.min(limit, items.length)}, worker));
  return results;
}
