// Health aggregation (same rules as Consul's Go/py clients).

const RANK = {passing: 0, warning: 1, critical: 2, maintenance: 3};

export function isMaintenance(check) {
  return check.CheckID === "_node_maintenance" || String(check.CheckID).startsWith("_service_maintenance:");
}

/** Aggregated status of a list of checks: maintenance > critical > warning > passing. */
export function aggregate(checks) {
  let worst = "passing";
  for (const c of checks || []) {
    if (isMaintenance(c)) return "maintenance";
    const s = RANK[c.Status] !== undefined ? c.Status : "critical";
    if (RANK[s] > RANK[worst]) worst = s;
  }
  return worst;
}

export function worst(statuses) {
  let w = "passing";
  for (const s of statuses) if (RANK[s] > RANK[w]) w = s;
  return w;
}

/** Count statuses: {passing, warning, critical, maintenance}. */
export function countStatuses(statuses) {
  const out = {passing: 0, warning: 0, critical: 0, maintenance: 0};
  for (const s of statuses) out[s] = (out[s] || 0) + 1;
  return out;
}

export const MEMBER_STATUS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"};

export function memberStatusKind(status) {
  const s = MEMBER_STATUS[status] || String(status);
  if (s === "alive") return "passing";
  if (s === "leaving" || s === "left") return "warning";
  return "critical";
}

export function sortBy(list, key) {
  return [...list].sort((a, b) => {
    const x = key(a);
    const y = key(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}
