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
 * JSON.parse that keeps unsigned 64-bit integers (KV Flags, raft indexes)
 * exact: any integer literal with 16+ digits becomes a string.
 */
export function parseJSONSafe(text) {
  if (!text) return null;
  const patched = text.replace(/([:[,]\s*)(\d{16,})(?=\s*[,\]}])/g, '$1"$2"');
  return JSON.parse(patched);
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

function jsonErrorMessage(err, text) {
  const msg = String(err.message || err);
  const m = /position (\d+)/.exec(msg);
  const lc = /line (\d+) column (\d+)/.exec(msg);
  if (lc) return msg;
  if (m) {
    const {line, col} = lineCol(text, Number(m[1]));
    return `${msg.replace(/ in JSON at position \d+.*$/, "")} (line ${line}, column ${col})`;
  }
  return msg;
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
