// Cluster overview: Raft servers (role, term, last index, lag), failure
// tolerance, gossip members, leader changes observed by this browser.
import {ApiError, on, poll, POLL_MS, request, settings} from "../api.js";
import {formatTime, timeAgo} from "../codec.js";
import {errorNotice, idCode, loading} from "../common.js";
import {badge, h, kvList, pageHeader, statusBadge, table, update} from "../dom.js";
import {MEMBER_STATUS, memberStatusKind, sortBy} from "../health.js";
import {link} from "../router.js";
import {leaderState, raftRoles} from "../store.js";

const RAFT_KEYS = [
  "state",
  "term",
  "last_log_index",
  "last_log_term",
  "commit_index",
  "applied_index",
  "last_snapshot_index",
  "last_contact",
  "num_peers",
  "protocol_version",
];

async function settle(promise) {
  try {
    return {ok: true, value: (await promise).data};
  } catch (err) {
    if (err instanceof ApiError && err.isNetwork) throw err;
    if (!(err instanceof ApiError)) throw err;
    return {ok: false, error: err};
  }
}

function stat(label, value, id) {
  return h("div", {class: "stat"}, h("span", {class: "stat-label"}, label), h("span", {class: "stat-value", id}, value));
}

/** Best known last log index of a server (raft configuration or autopilot); 0n = not reported. */
function lastIndexOf(raftServer, apServer) {
  let best = 0n;
  for (const v of [raftServer && raftServer.LastIndex, apServer && apServer.LastIndex]) {
    if (v === undefined || v === null || v === "") continue;
    const b = BigInt(v);
    if (b > best) best = b;
  }
  return best;
}

function lagText(reference, index) {
  if (!reference || !index) return "—";
  const diff = reference - index;
  return diff <= 0n ? "0" : diff.toString();
}

export function render({root, scope}) {
  const summaryEl = h("div", {class: "summary-row", id: "cluster-summary"}, loading());
  const serversEl = h("div", {id: "cluster-servers"}, loading());
  const raftEl = h("div", {id: "cluster-raft"}, loading());
  const membersEl = h("div", {id: "cluster-members"}, loading());
  const leadersEl = h("div", {id: "cluster-leaders"});
  const errorsEl = h("div", {class: "error-slot"});
  let data = null;

  root.append(
    pageHeader("Cluster", {subtitle: "Raft servers, replication and gossip membership. Refreshed every 2 seconds."}),
    errorsEl,
    summaryEl,
    h("section", {class: "panel", "aria-labelledby": "servers-title"}, h("h2", {id: "servers-title"}, "Servers"), serversEl),
    h(
      "div",
      {class: "grid-2"},
      h("section", {class: "panel", "aria-labelledby": "raft-title"}, h("h2", {id: "raft-title"}, "This agent’s Raft state"), raftEl),
      h("section", {class: "panel", "aria-labelledby": "leaders-title"}, h("h2", {id: "leaders-title"}, "Leader changes observed"), leadersEl),
    ),
    h(
      "section",
      {class: "panel", "aria-labelledby": "members-title"},
      h("h2", {id: "members-title"}, "Gossip members"),
      settings.dc
        ? h("p", {class: "muted small"}, `LAN members and Raft state are those of the agent this UI is connected to; servers and autopilot are for datacenter ${settings.dc}.`)
        : null,
      membersEl,
    ),
  );

  const drawLeaders = () => {
    const roles = data && data.raft.ok ? raftRoles(data.raft.value, leaderState.leader) : null;
    const nameOf = (addr) => {
      if (addr === null || addr === undefined) return "unknown";
      if (addr === "") return "no leader";
      const info = roles && roles.byAddress.get(addr);
      return info ? `${info.Node} (${addr})` : addr;
    };
    const items = [...leaderState.history].reverse();
    update(
      leadersEl,
      items.length === 0
        ? h("p", {class: "muted"}, "Waiting for the first observation…")
        : h(
            "ol",
            {class: "timeline", id: "leader-history"},
            items.map((e) =>
              h(
                "li",
                null,
                h("time", {datetime: new Date(e.at).toISOString(), title: new Date(e.at).toString()}, formatTime(new Date(e.at))),
                " ",
                e.from === null
                  ? h("span", null, "Leader is ", h("strong", null, nameOf(e.to)), h("span", {class: "muted"}, " (first observation)"))
                  : h("span", null, h("strong", null, nameOf(e.to)), " took over from ", nameOf(e.from)),
                h("span", {class: "muted small"}, ` · ${timeAgo(new Date(e.at))}`),
              ),
            ),
          ),
    );
  };

  const draw = () => {
    if (!data) return;
    const {raft, ap, self, members, critical} = data;
    // Nodes whose gossip health check (serfHealth) is failing, from the catalog.
    const serfDown = new Set(((critical.ok && critical.value) || []).filter((c) => c.CheckID === "serfHealth").map((c) => c.Node));
    const errors = [raft, ap, self, members].filter((r) => !r.ok).map((r) => r.error);
    const uniq = new Map(errors.map((e) => [`${e.status}:${e.path}`, e]));
    update(errorsEl, [...uniq.values()].map((e) => errorNotice(e, `read ${e.path}`)));

    const roles = raft.ok ? raftRoles(raft.value, leaderState.leader) : null;
    const apServers = new Map(((ap.ok && ap.value && ap.value.Servers) || []).map((s) => [s.ID, s]));
    const raftServers = raft.ok ? (raft.value.Servers || []) : [];
    const leader = roles && roles.leader;
    // Lag is measured against the most advanced log we know of (normally the
    // leader's); servers that report no index show "—" rather than a guess.
    let reference = 0n;
    for (const s of raftServers) {
      const v = lastIndexOf(s, apServers.get(s.ID));
      if (v > reference) reference = v;
    }
    const voters = raftServers.filter((s) => s.Voter).length;
    const selfRaft = (self.ok && self.value && self.value.Stats && self.value.Stats.raft) || {};
    const computedTolerance = voters > 0 ? Math.floor((voters - 1) / 2) : null;
    const tolerance = ap.ok && ap.value && typeof ap.value.FailureTolerance === "number" ? ap.value.FailureTolerance : computedTolerance;
    const term = selfRaft.term || (leader && apServers.get(leader.ID)?.LastTerm) || "—";

    update(
      summaryEl,
      stat("Leader", leader ? h("a", {href: link.node(leader.Node)}, leader.Node) : leaderState.leader === "" ? badge("no leader", "danger") : "—", "stat-leader"),
      stat("Raft term", String(term), "stat-term"),
      stat("Commit index", selfRaft.commit_index || "—", "stat-commit"),
      stat("Voters", raft.ok ? `${voters} of ${raftServers.length} servers` : "—", "stat-voters"),
      stat("Failure tolerance", tolerance === null ? "—" : `${tolerance} server${tolerance === 1 ? "" : "s"}`, "stat-tolerance"),
      stat(
        "Autopilot",
        ap.ok && ap.value ? statusBadge(ap.value.Healthy ? "passing" : "critical", ap.value.Healthy ? "healthy" : "unhealthy") : "—",
        "stat-autopilot",
      ),
    );

    const rows = sortBy(raftServers, (s) => s.Node).map((s) => {
      const a = apServers.get(s.ID) || {};
      const isLeader = roles.byNode.get(s.Node)?.isLeader;
      const role = isLeader ? "leader" : s.Voter ? "follower" : "non-voter";
      const lastIndex = lastIndexOf(s, a);
      return {
        attrs: {"data-server": s.Node, "data-role": role},
        cells: [
          h("a", {href: link.node(s.Node)}, s.Node),
          h("code", {class: "address"}, s.Address),
          isLeader ? badge("Leader", "leader") : s.Voter ? badge("Follower", "voter") : badge("Non-voter"),
          s.Voter ? "yes" : "no",
          a.LastTerm !== undefined ? String(a.LastTerm) : isLeader && selfRaft.term ? selfRaft.term : "—",
          lastIndex ? lastIndex.toString() : h("span", {class: "muted", title: "not reported"}, "—"),
          lagText(reference, lastIndex),
          a.LastContact || "—",
          a.Healthy === undefined ? "—" : statusBadge(a.Healthy ? "passing" : "critical", a.Healthy ? "healthy" : "unhealthy"),
          critical.ok ? statusBadge(serfDown.has(s.Node) ? "critical" : "passing", serfDown.has(s.Node) ? "failing" : "alive") : "—",
          idCode(s.ID),
        ],
      };
    });
    update(
      serversEl,
      raft.ok
        ? table({
            caption: "Raft servers",
            captionHidden: true,
            id: "servers-table",
            columns: [
              {label: "Server"},
              {label: "Address"},
              {label: "Raft role"},
              {label: "Voter"},
              {label: "Term", className: "num"},
              {label: "Last index", className: "num"},
              {label: "Lag", className: "num"},
              {label: "Last contact"},
              {label: "Autopilot"},
              {label: "Gossip"},
              {label: "ID"},
            ],
            rows,
            empty: "No Raft servers reported.",
          })
        : h("p", {class: "muted"}, "Raft configuration unavailable."),
    );

    const raftPairs = {};
    for (const k of RAFT_KEYS) if (selfRaft[k] !== undefined) raftPairs[k] = selfRaft[k];
    update(raftEl, self.ok ? kvList(raftPairs, "This agent reports no Raft state (not a server).") : h("p", {class: "muted"}, "Unavailable."));

    const memberRows = sortBy((members.ok && members.value) || [], (m) => m.Name).map((m) => {
      const status = MEMBER_STATUS[m.Status] || String(m.Status);
      const tags = m.Tags || {};
      const build = (tags.build || "").split(":")[0];
      return {
        attrs: {"data-member": m.Name, "data-status": status},
        cells: [
          m.Name,
          h("code", {class: "address"}, `${m.Addr}:${m.Port}`),
          statusBadge(memberStatusKind(m.Status), status),
          tags.role === "consul" ? "server" : tags.role === "node" ? "client" : tags.role || "—",
          tags.dc || "—",
          build || "—",
        ],
      };
    });
    update(
      membersEl,
      members.ok
        ? table({
            caption: "Gossip members",
            captionHidden: true,
            id: "members-table",
            columns: [{label: "Member"}, {label: "Address"}, {label: "Status"}, {label: "Role"}, {label: "Datacenter"}, {label: "Version"}],
            rows: memberRows,
            empty: "No gossip members.",
          })
        : h("p", {class: "muted"}, "Members unavailable."),
    );
    drawLeaders();
  };

  poll(
    scope,
    POLL_MS,
    async (signal) => {
      const [raft, ap, self, members, critical] = await Promise.all([
        settle(request("operator/raft/configuration", {signal})),
        settle(request("operator/autopilot/health", {signal, accept: [429]})),
        settle(request("agent/self", {signal, dc: false})),
        settle(request("agent/members", {signal, dc: false})),
        settle(request("health/state/critical", {signal})),
      ]);
      data = {raft, ap, self, members, critical};
      draw();
    },
    (err) => update(errorsEl, errorNotice(err, "read the cluster state")),
  );
  scope.add(on("leader", () => (data ? draw() : drawLeaders())));
  drawLeaders();
  // Keep "x seconds ago" fresh without refetching.
  const timer = setInterval(drawLeaders, 5000);
  scope.add(() => clearInterval(timer));
}
