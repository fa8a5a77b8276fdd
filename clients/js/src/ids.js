// Helpers for Snowflake ids, which the library always surfaces as decimal
// strings (JavaScript numbers hold integers only up to 2^53; ids use 64 bits).

const EPOCH_MS = 1704067200000n; // 2024-01-01T00:00:00Z, as in protocol/src/id.rs
const TIME_SHIFT = 22n; // 10 bits of worker id + 12 bits of sequence

/** Keys whose number (or BigInt) values are ids and become decimal strings. */
const ID_LIST_KEYS = new Set(["mentions", "attachment_ids", "member_ids"]);
const ID_KEYS = new Set(["reply_to", "up_to"]);

function isIdKey(key) {
  return key === "id" || key.endsWith("_id") || ID_KEYS.has(key);
}

function idString(v) {
  return typeof v === "number" || typeof v === "bigint" ? String(v) : v;
}

/**
 * Turns every id in a decoded frame into a decimal string, in place, and
 * returns it. MessagePack carries ids as unsigned integers (JSON already as
 * strings, so this is a no-op there). Recognised by field name: `id`,
 * `*_id`, `reply_to`, `up_to`, and the lists `mentions`, `attachment_ids`,
 * `member_ids`; counters and `*_at` times stay numbers.
 */
export function normalizeIds(value, depth = 0) {
  if (depth > 64 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    for (const item of value) normalizeIds(item, depth + 1);
    return value;
  }
  if (value instanceof Uint8Array) return value;
  for (const key of Object.keys(value)) {
    const v = value[key];
    if (isIdKey(key)) {
      value[key] = idString(v);
    } else if (ID_LIST_KEYS.has(key) && Array.isArray(v)) {
      value[key] = v.map(idString);
    } else if (v !== null && typeof v === "object") {
      normalizeIds(v, depth + 1);
    }
  }
  return value;
}

/** Compares two decimal ids numerically: -1, 0 or 1. */
export function compareIds(a, b) {
  a = String(a);
  b = String(b);
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The larger of two ids (either may be undefined). */
export function maxId(a, b) {
  if (a === undefined || a === null) return b;
  if (b === undefined || b === null) return a;
  return compareIds(a, b) >= 0 ? a : b;
}

/**
 * Merges messages into a list sorted by id: a message whose id is already
 * there replaces it (an edit or a tombstone) unless the one there is newer
 * (deleted, or edited later), so that a page of history read before an edit
 * or a deletion cannot undo it; others are inserted in order. Returns a new
 * array; the inputs are not changed.
 */
export function mergeMessages(list, incoming) {
  const byId = new Map();
  for (const m of list) byId.set(m.id, m);
  for (const m of incoming) {
    const held = byId.get(m.id);
    if (!held || !isNewer(held, m)) byId.set(m.id, m);
  }
  return [...byId.values()].sort((x, y) => compareIds(x.id, y.id));
}

/** Whether `a` is a later state of the same message than `b`. */
function isNewer(a, b) {
  if (a.deleted || b.deleted) return Boolean(a.deleted) && !b.deleted;
  return (a.edited_at ?? 0) > (b.edited_at ?? 0);
}

/** Milliseconds since the Unix epoch at which a Snowflake id was minted. */
export function idTime(id) {
  return Number((BigInt(id) >> TIME_SHIFT) + EPOCH_MS);
}

/** A fresh random `client_id` (at most 64 characters, as the server requires). */
export function newClientId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") {
    c.getRandomValues(bytes);
  } else {
    // React Native without a crypto polyfill: uniqueness, not secrecy, is needed.
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
