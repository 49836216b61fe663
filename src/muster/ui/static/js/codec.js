// Encoding helpers: base64 <-> UTF-8, u64-safe JSON, durations, value formats.
import {load as yamlLoad, dump as yamlDump} from "../vendor/js-yaml.mjs";

/** Decode a base64 KV value. Returns {text, bytes, binary}. `null` => empty. */
export function decodeValue(b64) {
  if (b64 === null || b64 === undefined || b64 === "") return {text: "", bytes: new Uint8Array(0), binary: false};
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i += 1) bytes[i] = bin.charCodeAt(i);
  try {
    const text = new TextDecoder("utf-8", {fatal: true}).decode(bytes);
    return {text, bytes, binary: false};
  } catch {
    return {text: "", bytes, binary: true};
  }
}

export function bytesToBase64(bytes) {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 1) bin += String.fromCharCode(bytes[i]);
  return btoa(bin);
}

export function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}

/**
 * Quote integer literals too large for a double (outside of strings), so that
 * unsigned 64-bit values (KV Flags, raft indexes) survive JSON.parse exactly.
 */
export function quoteBigInts(text) {
  let out = "";
  let last = 0;
  let inString = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i += 1; // backslash: skip the escaped char
      else if (c === 34) inString = false;
      continue;
    }
    if (c === 34) {
      inString = true;
      continue;
    }
    if (c >= 48 && c <= 57) {
      let j = i;
      while (j < text.length && text.charCodeAt(j) >= 48 && text.charCodeAt(j) <= 57) j += 1;
      const next = text[j];
      const prev = text[i - 1];
      if (j - i >= 16 && next !== "." && next !== "e" && next !== "E" && prev !== "-") {
        out += `${text.slice(last, i)}"${text.slice(i, j)}"`;
        last = j;
      }
      i = j - 1;
    }
  }
  return last === 0 ? text : out + text.slice(last);
}

/** JSON.parse that keeps unsigned 64-bit integers exact (as decimal strings). */
export function parseJSONSafe(text) {
  if (!text) return null;
  return JSON.parse(quoteBigInts(text));
}

/** Compare two non-negative integers given as numbers or decimal strings. */
export function cmpIndex(a, b) {
  const x = BigInt(a || 0);
  const y = BigInt(b || 0);
  return x < y ? -1 : x > y ? 1 : 0;
}

export const U64_MAX = 18446744073709551615n;

/** Validate a u64 given as text. Returns the canonical decimal string or null. */
export function parseU64(text) {
  const t = String(text).trim();
  if (!/^\d+$/.test(t)) return null;
  const v = BigInt(t);
  if (v > U64_MAX) return null;
  return v.toString();
}

/** Nanoseconds (number or numeric string) -> human duration like "15s". */
export function formatNs(ns) {
  if (ns === null || ns === undefined || ns === "") return "—";
  const n = Number(ns);
  if (!Number.isFinite(n)) return String(ns);
  if (n === 0) return "0s";
  const ms = n / 1e6;
  if (ms < 1) return `${n / 1e3}µs`;
  if (ms < 1000) return `${Math.round(ms * 100) / 100}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Math.round(s * 1000) / 1000}s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s - m * 60);
  if (m < 60) return rest ? `${m}m${rest}s` : `${m}m`;
  const hrs = Math.floor(m / 60);
  const mm = m - hrs * 60;
  return mm ? `${hrs}h${mm}m` : `${hrs}h`;
}

export function timeAgo(date, now = new Date()) {
  const s = Math.max(0, Math.round((now - date) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ago`;
  const hrs = Math.floor(m / 60);
  return `${hrs}h ${m % 60}m ago`;
}

export function formatTime(date) {
  return date.toLocaleTimeString(undefined, {hour12: false});
}

// ---------------------------------------------------------------------------
// Value formats for the KV editor.

export const FORMATS = [
  {id: "plain", label: "Plain text"},
  {id: "json", label: "JSON"},
  {id: "yaml", label: "YAML"},
];

/** Guess the format of a value for the editor's initial selection. */
export function detectFormat(key, text) {
  const lower = key.toLowerCase();
  if (lower.endsWith(".json")) return "json";
  if (lower.endsWith(".yaml") || lower.endsWith(".yml")) return "yaml";
  const t = text.trim();
  if ((t.startsWith("{") && t.endsWith("}")) || (t.startsWith("[") && t.endsWith("]"))) {
    try {
      JSON.parse(t);
      return "json";
    } catch {
      return "plain";
    }
  }
  return "plain";
}

function lineCol(text, pos) {
  let line = 1;
  let col = 1;
  for (let i = 0; i < pos && i < text.length; i += 1) {
    if (text[i] === "\n") {
      line += 1;
      col = 1;
    } else {
      col += 1;
    }
  }
  return {line, col};
}

/**
 * Locate the first JSON syntax error (browsers' JSON.parse messages do not
 * reliably carry a position). Returns {pos, message}.
 */
export function findJSONError(text) {
  let i = 0;
  const fail = (message) => {
    throw {pos: i, message};
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i += 1;
  };
  const describe = () => (i >= text.length ? "unexpected end of input" : `unexpected ${JSON.stringify(text[i])}`);
  const literal = (word) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail(describe());
  };
  const string = () => {
    i += 1;
    while (i < text.length) {
      const c = text[i];
      if (c === '"') {
        i += 1;
        return;
      }
      if (c === "\\") {
        const e = text[i + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail("invalid \\u escape");
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i += 2;
        } else {
          fail("invalid escape in string");
        }
        continue;
      }
      if (c < " ") fail("control character in string");
      i += 1;
    }
    fail("unterminated string");
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m || m[0] === "-" || m[0] === "") fail(describe());
    i += m[0].length;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i += 1;
      ws();
      if (text[i] === "}") {
        i += 1;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(`expected a property name in double quotes, found ${describe().replace("unexpected ", "")}`);
        string();
        ws();
        if (text[i] !== ":") fail(`expected ":" after property name, found ${describe().replace("unexpected ", "")}`);
        i += 1;
        value();
        ws();
        if (text[i] === ",") {
          i += 1;
          continue;
        }
        if (text[i] === "}") {
          i += 1;
          return;
        }
        fail(`expected "," or "}", found ${describe().replace("unexpected ", "")}`);
      }
    }
    if (c === "[") {
      i += 1;
      ws();
      if (text[i] === "]") {
        i += 1;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ",") {
          i += 1;
          continue;
        }
        if (text[i] === "]") {
          i += 1;
          return;
        }
        fail(`expected "," or "]", found ${describe().replace("unexpected ", "")}`);
      }
    }
    if (c === '"') return string();
    if (c === "t") return literal("true");
    if (c === "f") return literal("false");
    if (c === "n") return literal("null");
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    return fail(describe());
  };
  try {
    value();
    ws();
    if (i < text.length) fail(`unexpected ${JSON.stringify(text[i])} after the JSON value`);
    return null;
  } catch (err) {
    if (err && typeof err.pos === "number") return err;
    throw err;
  }
}

function jsonErrorMessage(err, text) {
  const found = findJSONError(text);
  if (!found) return String((err && err.message) || err);
  const {line, col} = lineCol(text, found.pos);
  const msg = found.message.charAt(0).toUpperCase() + found.message.slice(1);
  return `${msg} (line ${line}, column ${col})`;
}

/**
 * Check a value against a format.
 * Returns {ok: true} or {ok: false, message}.
 */
export function validateValue(format, text) {
  if (format === "json") {
    if (text.trim() === "") return {ok: false, message: "Empty value is not valid JSON"};
    try {
      JSON.parse(text);
      return {ok: true};
    } catch (err) {
      return {ok: false, message: jsonErrorMessage(err, text)};
    }
  }
  if (format === "yaml") {
    try {
      yamlLoad(text);
      return {ok: true};
    } catch (err) {
      const mark = err.mark ? ` (line ${err.mark.line + 1}, column ${err.mark.column + 1})` : "";
      return {ok: false, message: `${err.reason || err.message}${mark}`};
    }
  }
  return {ok: true};
}

/** Pretty-print a value. Throws on invalid input. */
export function formatValue(format, text) {
  if (format === "json") {
    // Keep big integers exact while re-indenting.
    JSON.parse(text); // surface real syntax errors with JSON.parse's message
    const value = parseJSONSafe(text);
    return JSON.stringify(value, null, 2).replace(/"(\d{16,})"/g, (match, digits, offset, whole) => {
      // Only unquote values that were big integer literals in the source.
      return new RegExp(`(^|[^"\\d])${digits}([^"\\d]|$)`).test(text) ? digits : match;
    });
  }
  if (format === "yaml") {
    const value = yamlLoad(text);
    return yamlDump(value, {indent: 2, lineWidth: 100, noRefs: true});
  }
  return text;
}
