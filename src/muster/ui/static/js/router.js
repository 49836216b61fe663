// Hash routes: "#/<section>/<rest>?<query>". Every page has a deep link; the
// datacenter travels as ?dc=<name>.
import {settings} from "./api.js";

/** Parse location.hash into {path, segments, query}. */
export function parseHash(hash = location.hash) {
  let raw = hash.startsWith("#") ? hash.slice(1) : hash;
  if (!raw.startsWith("/")) raw = `/${raw}`;
  const qpos = raw.indexOf("?");
  const path = qpos >= 0 ? raw.slice(0, qpos) : raw;
  const query = new URLSearchParams(qpos >= 0 ? raw.slice(qpos + 1) : "");
  const rest = path.slice(1);
  const slash = rest.indexOf("/");
  const section = slash >= 0 ? rest.slice(0, slash) : rest;
  const tail = slash >= 0 ? rest.slice(slash + 1) : "";
  return {path, section, tail, query};
}

/** Build a hash link; keeps the current datacenter unless overridden. */
export function href(path, query = {}) {
  const params = new URLSearchParams();
  const dc = "dc" in query ? query.dc : settings.dc;
  if (dc) params.set("dc", dc);
  for (const [k, v] of Object.entries(query)) {
    if (k === "dc" || v === undefined || v === null || v === "") continue;
    params.set(k, v);
  }
  const qs = params.toString();
  return `#${path}${qs ? `?${qs}` : ""}`;
}

export function navigate(path, query = {}) {
  location.hash = href(path, query);
}

/** Update the query of the current route without re-rendering the page. */
export function replaceQuery(query) {
  const {path} = parseHash();
  history.replaceState(history.state, "", href(path, query));
}

export const link = {
  services: () => href("/services"),
  service: (name) => href(`/services/${encodeURIComponent(name)}`),
  nodes: () => href("/nodes"),
  node: (name) => href(`/nodes/${encodeURIComponent(name)}`),
  kv: (key = "") => href(`/kv/${key.split("/").map(encodeURIComponent).join("/")}`),
  kvCreate: (folder = "") => href(`/kv/${folder.split("/").map(encodeURIComponent).join("/")}`, {create: "1"}),
  sessions: () => href("/sessions"),
  cluster: () => href("/cluster"),
  settings: () => href("/settings"),
};

/** Decode a path tail that was encoded segment by segment. */
export function decodeTail(tail) {
  return tail
    .split("/")
    .map((seg) => {
      try {
        return decodeURIComponent(seg);
      } catch {
        return seg;
      }
    })
    .join("/");
}
