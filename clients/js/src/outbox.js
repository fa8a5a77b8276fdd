// Outbox: the optimistic messages of a RealtimeClient.
//
// `send` puts a message here at once, with a fresh `client_id`, and the app
// can show it as pending. It goes out when the connection is open, goes back
// to the queue if the connection drops before its `ack` (and out again on
// the next connection, with the same `client_id`, which the server answers
// with the original `ack` if the first attempt had in fact been stored), and
// leaves the outbox when its own `message` arrives (after its `ack`, it is
// listed as "sent" until then, for at most a few seconds). An
// `error` for it fails it, except `rate_limited` and `unavailable`, after
// which it is sent again later.

import { ChatError } from "./errors.js";
import { newClientId } from "./ids.js";

/** Content rules of the protocol, checked before queueing so a doomed message fails at once. */
export const MAX_CONTENT_CHARS = 4000;

export class Outbox {
  /** @param {(pending: object) => void} onChange called after every status change */
  constructor(onChange) {
    this.onChange = onChange;
    this.items = new Map(); // client_id → record, in insertion (send) order
  }

  add(roomId, content, options = {}) {
    const clientId = options.client_id || newClientId();
    if (this.items.has(clientId)) throw new ChatError("bad_request", `client_id ${clientId} is already pending`);
    let resolve, reject;
    const done = new Promise((res, rej) => ((resolve = res), (reject = rej)));
    // The app may never look at `done`; a failure must not become an unhandled rejection.
    done.catch(() => {});
    const pending = {
      client_id: clientId,
      room_id: roomId,
      content,
      local_at: Date.now(),
      status: "queued",
      done,
    };
    if (options.reply_to !== undefined) pending.reply_to = String(options.reply_to);
    if (options.attachment_ids && options.attachment_ids.length) pending.attachment_ids = options.attachment_ids.map(String);
    const record = { pending, resolve, reject };
    this.items.set(clientId, record);
    const trimmed = String(content).trim();
    if (trimmed.length === 0) this.fail(clientId, new ChatError("bad_request", "content is empty", { clientId }));
    else if ([...trimmed].length > MAX_CONTENT_CHARS)
      this.fail(clientId, new ChatError("too_large", `content is over ${MAX_CONTENT_CHARS} characters`, { clientId }));
    else this.onChange(pending);
    return pending;
  }

  get(clientId) {
    return this.items.get(clientId);
  }

  /** Records not yet seen as messages (queued, sending, sent awaiting their message, failed), oldest first. */
  list(roomId) {
    const out = [];
    for (const { pending } of this.items.values()) if (roomId === undefined || pending.room_id === roomId) out.push(pending);
    return out;
  }

  inFlight() {
    let n = 0;
    for (const { pending } of this.items.values()) if (pending.status === "sending") n++;
    return n;
  }

  /** Queued records, oldest first. */
  queued() {
    return [...this.items.values()].filter((r) => r.pending.status === "queued").map((r) => r.pending);
  }

  /** The send frame for a record. */
  frame(pending) {
    const frame = { type: "send", room_id: pending.room_id, content: pending.content, client_id: pending.client_id };
    if (pending.reply_to !== undefined) frame.reply_to = pending.reply_to;
    if (pending.attachment_ids) frame.attachment_ids = pending.attachment_ids;
    return frame;
  }

  setStatus(clientId, status) {
    const r = this.items.get(clientId);
    if (!r || r.pending.status === status) return;
    r.pending.status = status;
    if (status !== "failed") delete r.pending.error;
    this.onChange(r.pending);
  }

  /**
   * Stored: resolves `done` with the ack. With `keep` (the ack came before
   * the message itself) the record stays listed as "sent" until its message
   * arrives (settle again without `keep`) or `release`, so that the app
   * never shows neither. True if this resolved it.
   */
  settle(clientId, ack, keep = false) {
    const r = this.items.get(clientId);
    if (!r || r.pending.status === "failed") return false;
    if (r.pending.status === "sent") {
      if (!keep) this.release(clientId);
      return false;
    }
    r.pending.status = "sent";
    r.pending.message_id = ack.message_id;
    r.pending.created_at = ack.created_at;
    r.resolve(ack);
    if (!keep) this.items.delete(clientId);
    this.onChange(r.pending);
    return true;
  }

  /** Forgets a sent record (its message arrived, or it is time to stop waiting for it). */
  release(clientId) {
    const r = this.items.get(clientId);
    if (!r || r.pending.status !== "sent") return;
    this.items.delete(clientId);
    this.onChange(r.pending);
  }

  /** Forgets every sent record. */
  releaseAll() {
    for (const [clientId, r] of [...this.items]) if (r.pending.status === "sent") this.release(clientId);
  }

  fail(clientId, error) {
    const r = this.items.get(clientId);
    if (!r || r.pending.status === "failed" || r.pending.status === "sent") return;
    r.pending.status = "failed";
    r.pending.error = error;
    r.reject(error);
    this.onChange(r.pending);
  }

  /** Every record that was on the wire goes back to the queue (the connection dropped). */
  requeueInFlight() {
    for (const { pending } of this.items.values()) if (pending.status === "sending") this.setStatus(pending.client_id, "queued");
  }

  /** A failed record goes back to the queue with a fresh `done`. */
  retry(clientId) {
    const r = this.items.get(clientId);
    if (!r || r.pending.status !== "failed") return r ? r.pending : undefined;
    let resolve, reject;
    const done = new Promise((res, rej) => ((resolve = res), (reject = rej)));
    done.catch(() => {});
    // A new PendingMessage object: `done` of the failed attempt stays rejected.
    r.pending = { ...r.pending, done, status: "queued" };
    delete r.pending.error;
    r.resolve = resolve;
    r.reject = reject;
    this.onChange(r.pending);
    return r.pending;
  }

  discard(clientId) {
    const r = this.items.get(clientId);
    if (!r || r.pending.status === "sending") return false;
    this.items.delete(clientId);
    if (r.pending.status === "queued") r.reject(new ChatError("aborted", "discarded before it was sent", { clientId }));
    return true;
  }

  failAll(error) {
    for (const clientId of [...this.items.keys()]) this.fail(clientId, error);
  }
}
