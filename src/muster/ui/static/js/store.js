// Live models shared by pages: the catalog (services, instances, nodes,
// checks) and the cluster's leader/raft view.
import {ApiError, emit, encodePath, mapLimit, on, poll, POLL_MS, request, settings, watch} from "./api.js";
import {aggregate} from "./health.js";

/**
 * Keep a catalog model up to date while `scope` lives.
 *   services:  {name: [tags]}                (/v1/catalog/services, blocking)
 *   instances: {name: [ServiceNode]}         (/v1/catalog/service/:name, refreshed when services change)
 *   nodes:     [Node]                        (/v1/catalog/nodes, blocking)   -- only with {nodes: true}
 *   checks:    [HealthCheck]                 (/v1/health/state/any, blocking)
 * onChange(model) runs after each update; onError(err) on failures.
 */
export function watchCatalog(scope, {nodes = false, onChange, onError}) {
  const model = {
    services: null,
    instances: {},
    nodes: nodes ? null : [],
    checks: null,
    instancesReady: false,
    error: null,
  };
  let generation = 0;
  let pending = null;

  const changed = () => {
    if (!scope.active) return;
    if (pending) return;
    // Coalesce bursts of updates into one render.
    pending = setTimeout(() => {
      pending = null;
      if (scope.active) onChange(model);
    }, 30);
  };
  scope.add(() => clearTimeout(pending));

  const fail = (err) => {
    model.error = err;
    if (onError) onError(err);
  };

  async function refreshInstances(services) {
    generation += 1;
    const gen = generation;
    const names = Object.keys(services);
    const results = await mapLimit(names, 3, async (name) => {
      try {
        const res = await request(`catalog/service/${encodePath(name)}`, {signal: scope.signal});
        return [name, res.data || []];
      } catch (err) {
        if (!scope.active) return [name, []];
        fail(err);
        return [name, model.instances[name] || []];
      }
    });
    if (gen !== generation || !scope.active) return;
    model.instances = Object.fromEntries(results);
    model.instancesReady = true;
    changed();
  }

  watch(scope, "catalog/services", {
    onData: (data) => {
      model.error = null;
      model.services = data || {};
      refreshInstances(model.services).catch((err) => scope.active && fail(err));
      changed();
    },
    onError: fail,
  });
  watch(scope, "health/state/any", {
    onData: (data) => {
      model.checks = data || [];
      changed();
    },
    onError: fail,
  });
  if (nodes) {
    watch(scope, "catalog/nodes", {
      onData: (data) => {
        model.nodes = data || [];
        changed();
      },
      onError: fail,
    });
  }
  return model;
}

/** Index checks by node and by node+service id. */
export function indexChecks(checks) {
  const byNode = new Map();
  const byInstance = new Map();
  for (const c of checks || []) {
    if (!byNode.has(c.Node)) byNode.set(c.Node, []);
    byNode.get(c.Node).push(c);
    if (c.ServiceID) {
      const k = `${c.Node}\u0000${c.ServiceID}`;
      if (!byInstance.has(k)) byInstance.set(k, []);
      byInstance.get(k).push(c);
    }
  }
  return {
    node(name) {
      return (byNode.get(name) || []).filter((c) => !c.ServiceID);
    },
    allOnNode(name) {
      return byNode.get(name) || [];
    },
    instance(node, serviceId) {
      return byInstance.get(`${node}\u0000${serviceId}`) || [];
    },
  };
}

/** Health of one instance = its checks + its node's node-level checks. */
export function instanceStatus(idx, node, serviceId) {
  return aggregate([...idx.node(node), ...idx.instance(node, serviceId)]);
}

// ---------------------------------------------------------------------------
// Leader tracker: polls /v1/status/leader for the whole app and records the
// leader changes it observes (kept per datacenter in sessionStorage).

const HISTORY_KEY = "muster.ui.leaderHistory";
const HISTORY_MAX = 25;

export const leaderState = {
  dc: null,
  leader: null, // "ip:port" or "" (no leader); null = unknown yet
  history: [], // [{at: ms, from, to}]
};

function loadHistory(dc) {
  try {
    const all = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "{}");
    return Array.isArray(all[dc]) ? all[dc] : [];
  } catch {
    return [];
  }
}

function saveHistory(dc, history) {
  try {
    const all = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "{}");
    all[dc] = history;
    sessionStorage.setItem(HISTORY_KEY, JSON.stringify(all));
  } catch {
    // ignore storage failures
  }
}

export function startLeaderTracker(scope, intervalMs = POLL_MS) {
  const reset = () => {
    leaderState.dc = settings.dc || "";
    leaderState.history = loadHistory(leaderState.dc);
    const last = leaderState.history[leaderState.history.length - 1];
    leaderState.leader = last ? last.to : null;
  };
  reset();
  let inner = scope.child();
  const start = () => {
    poll(inner, intervalMs, async (signal) => {
      const res = await request("status/leader", {signal});
      const leader = typeof res.data === "string" ? res.data : "";
      if (leader !== leaderState.leader) {
        leaderState.history.push({at: Date.now(), from: leaderState.leader, to: leader});
        if (leaderState.history.length > HISTORY_MAX) leaderState.history.splice(0, leaderState.history.length - HISTORY_MAX);
        leaderState.leader = leader;
        saveHistory(leaderState.dc, leaderState.history);
      }
      emit("leader", leaderState);
    }, (err) => {
      if (err instanceof ApiError && !err.isNetwork) emit("leader-error", err);
    });
  };
  start();
  scope.add(
    on("dc", () => {
      inner.dispose();
      inner = scope.child();
      reset();
      start();
    }),
  );
}

/** Server roles from /v1/operator/raft/configuration: {byNode, byAddress, leader}. */
export function raftRoles(config, leaderAddr) {
  const byNode = new Map();
  const byAddress = new Map();
  let leader = null;
  for (const s of (config && config.Servers) || []) {
    const isLeader = Boolean(s.Leader) || (leaderAddr && s.Address === leaderAddr);
    const info = {...s, isLeader};
    byNode.set(s.Node, info);
    byAddress.set(s.Address, info);
    if (isLeader) leader = info;
  }
  return {byNode, byAddress, leader};
}
