// Requests: client frames waiting for their answer, matched by `ref`.
//
// Most answers carry the request's `ref` (`history`, `resumed`, `pong`,
// `error`). Some actions have no direct answer on success, only an event
// (`edit` → `message_updated`, `read` → the `read` echo, `join` →
// `room_added`, ...): those requests carry a `match` predicate and resolve
// on the first event it accepts, or fail on an `error` with their `ref`.
// Every request has a timeout. A request made while offline waits for the
// next connection; one already written to a connection that drops fails
// with `disconnected` (the app decides whether to try again).

import { ChatError } from "./errors.js";

export class Requests {
  /** @param {number} timeoutMs */
  constructor(timeoutMs) {
    this.timeoutMs = timeoutMs;
    this.entries = new Map(); // ref → {frame, resolve, reject, timer, sent, match?, keepOnError?}
    this.seq = 0;
  }

  /**
   * Registers a frame under a fresh ref; returns the entry (its `frame`
   * carries the ref) and the promise of its answer.
   * Options: `match(frame)` to resolve on an event, `keepOnError` to ignore
   * `error` frames with the ref (a `resume` answers an error per unreadable
   * room and still ends with `resumed`).
   */
  add(frame, options = {}) {
    const ref = `r${++this.seq}`;
    let entry;
    const promise = new Promise((resolve, reject) => {
      entry = { frame: { ...frame, ref }, resolve, reject, sent: false, ...options };
    });
    entry.timer = setTimeout(
      () => this.settle(ref, null, new ChatError("timeout", `no answer to ${frame.type} within ${this.timeoutMs} ms`, { ref })),
      this.timeoutMs,
    );
    this.entries.set(ref, entry);
    return { entry, promise };
  }

  /** Entries not yet written to a connection, oldest first. */
  unsent() {
    return [...this.entries.values()].filter((e) => !e.sent);
  }

  settle(ref, frame, error) {
    const entry = this.entries.get(ref);
    if (!entry) return;
    this.entries.delete(ref);
    clearTimeout(entry.timer);
    if (error) entry.reject(error);
    else entry.resolve(frame);
  }

  /** A server frame: a reply with a known ref resolves its request; an event resolves those that match it. */
  answer(frame) {
    if (frame.ref) {
      const entry = this.entries.get(frame.ref);
      if (entry && !entry.match) this.settle(frame.ref, frame, null);
    }
    for (const [ref, entry] of this.entries) {
      if (entry.match && entry.sent && entry.match(frame)) this.settle(ref, frame, null);
    }
  }

  /** An `error` frame with a ref fails its request (unless it keeps going on errors). */
  fail(ref, error) {
    const entry = this.entries.get(ref);
    if (entry && !entry.keepOnError) this.settle(ref, null, error);
  }

  /** The connection is gone: requests written to it fail (`all`: every request). */
  failInFlight(error, all = false) {
    for (const [ref, entry] of this.entries) if (entry.sent || all) this.settle(ref, null, error);
  }
}
