// Unit tests of the pieces without I/O: backoff, the seen-id tracker behind
// resume and de-duplication, the outbox, id helpers, errors.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Backoff } from "../src/backoff.js";
import { SeenTracker } from "../src/tracker.js";
import { Outbox } from "../src/outbox.js";
import { errorFromResponse } from "../src/rest.js";
import { ChatError, compareIds, mergeMessages, idTime, newClientId } from "../src/index.js";

test("backoff: full jitter under an exponentially growing, capped ceiling", () => {
  const b = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, random: () => 0.999 });
  const delays = Array.from({ length: 6 }, () => b.next());
  assert.deepEqual(delays, [99, 199, 399, 799, 999, 999]);
  b.reset();
  assert.equal(b.next(), 99);
  const zero = new Backoff({ random: () => 0 });
  assert.equal(zero.next(), 0); // full jitter reaches down to 0
  const later = new Backoff({ tryAgainLaterMs: 5000, random: () => 0 });
  assert.equal(later.nextLater(), 5000);
  // real randomness stays within the ceiling
  const r = new Backoff({ initialDelayMs: 10, maxDelayMs: 40 });
  for (let i = 0; i < 100; i++) assert.ok(r.next() < 40);
});

test("tracker: duplicates dropped by id, resume point is the highest id", () => {
  const t = new SeenTracker();
  t.track("r", "100");
  assert.deepEqual(t.resumePoints(), { r: "100" });
  assert.equal(t.accept({ room_id: "r", id: "101" }), true);
  assert.equal(t.accept({ room_id: "r", id: "101" }), false);
  assert.equal(t.accept({ room_id: "r", id: "99" }), true); // late but new
  assert.deepEqual(t.resumePoints(), { r: "101" });
  t.markSeen("r", "150");
  assert.deepEqual(t.lastSeen(), { r: "150" });
  t.forget("r");
  assert.deepEqual(t.resumePoints(), {});
  t.track("empty");
  assert.deepEqual(t.resumePoints(), { empty: "0" });
});

test("tracker: a held room resumes from where its resume began, and finds the replay's last id", () => {
  const t = new SeenTracker();
  t.track("r", "10");
  t.hold({ r: "10" });
  // replayed 11, 12, 13 interleaved with a live 50 (and 11 twice)
  for (const id of ["11", "50", "12", "11", "13"]) t.accept({ room_id: "r", id });
  assert.deepEqual(t.resumePoints(), { r: "10" }, "held: a drop now must not skip 14..49");
  assert.equal(t.replayCursor("r", 3), "13");
  assert.equal(t.replayCursor("r", 0), "10");
  t.release("r");
  assert.deepEqual(t.resumePoints(), { r: "50" });
});

test("tracker: memory is bounded per room", () => {
  const t = new SeenTracker(3);
  for (const id of ["1", "2", "3", "4"]) t.accept({ room_id: "r", id });
  assert.equal(t.rooms.get("r").ids.size, 3);
  assert.equal(t.accept({ room_id: "r", id: "1" }), false, "at or below the evicted ids: duplicate");
  assert.equal(t.accept({ room_id: "r", id: "4" }), false);
  assert.equal(t.accept({ room_id: "r", id: "5" }), true);
});

test("outbox: statuses, settle, requeue, fail, retry, discard", async () => {
  const changes = [];
  const o = new Outbox((p) => changes.push(`${p.content}:${p.status}`));
  const a = o.add("r", "a");
  const b = o.add("r", "b", { reply_to: 5, attachment_ids: [7] });
  assert.deepEqual(o.frame(b), { type: "send", room_id: "r", content: "b", client_id: b.client_id, reply_to: "5", attachment_ids: ["7"] });
  o.setStatus(a.client_id, "sending");
  o.setStatus(b.client_id, "sending");
  assert.equal(o.inFlight(), 2);
  o.requeueInFlight();
  assert.deepEqual(o.queued().map((p) => p.content), ["a", "b"]);
  // the ack comes first: listed as sent until the message itself
  assert.equal(o.settle(a.client_id, { message_id: "9", created_at: 1 }, true), true);
  assert.equal((await a.done).message_id, "9");
  assert.equal(a.message_id, "9");
  assert.deepEqual(o.list().map((p) => p.status), ["sent", "queued"]);
  o.fail(a.client_id, new ChatError("closed", "x")); // a sent message cannot fail any more
  assert.equal(a.status, "sent");
  assert.equal(o.settle(a.client_id, { message_id: "9", created_at: 1 }), false, "settled once");
  assert.deepEqual(o.list().map((p) => p.status), ["queued"], "its message came: released");
  const err = new ChatError("forbidden", "no");
  o.fail(b.client_id, err);
  await assert.rejects(b.done, err);
  const b2 = o.retry(b.client_id);
  assert.equal(b2.status, "queued");
  assert.notEqual(b2.done, b.done);
  assert.equal(o.discard(b.client_id), true);
  await assert.rejects(b2.done, (e) => e.code === "aborted");
  assert.equal(o.list().length, 0);
  assert.deepEqual(changes, ["a:queued", "b:queued", "a:sending", "b:sending", "a:queued", "b:queued", "a:sent", "a:sent", "b:failed", "b:queued"]);
  // the message before any ack: resolved and gone at once
  const c = o.add("r", "c");
  assert.equal(o.settle(c.client_id, { message_id: "10", created_at: 2 }), true);
  assert.equal(o.list().length, 0);
  // releaseAll forgets sent records only
  const d = o.add("r", "d");
  o.settle(d.client_id, { message_id: "11", created_at: 3 }, true);
  o.add("r", "e");
  o.releaseAll();
  assert.deepEqual(o.list().map((p) => p.content), ["e"]);
  o.discard(o.list()[0].client_id);
  assert.throws(() => {
    const c = o.add("r", "c", { client_id: "same" });
    o.add("r", "d", { client_id: c.client_id });
  }, ChatError);
  const big = o.add("r", "é".repeat(4000)); // 4000 characters, 8000 bytes: allowed
  assert.equal(big.status, "queued");
});

test("ids: numeric comparison, merge, time, client ids", () => {
  assert.equal(compareIds("9", "10"), -1);
  assert.equal(compareIds("18446744073709551615", "18446744073709551614"), 1);
  assert.equal(compareIds("5", "5"), 0);
  const merged = mergeMessages([{ id: "10", content: "a" }, { id: "30", content: "c" }], [{ id: "20", content: "b" }, { id: "10", content: "a2" }]);
  assert.deepEqual(merged.map((m) => m.content), ["a2", "b", "c"]);
  // A stale copy (a page read before the edit or the deletion) does not undo them.
  const edited = { id: "10", content: "new", edited_at: 2000 };
  const deleted = { id: "20", content: "", deleted: true };
  const stale = [{ id: "10", content: "old" }, { id: "20", content: "b" }];
  assert.deepEqual(mergeMessages([edited, deleted], stale), [edited, deleted]);
  const older = { id: "10", content: "older", edited_at: 1000 };
  assert.deepEqual(mergeMessages([edited], [older]), [edited]);
  // Newer states still replace older ones.
  assert.deepEqual(mergeMessages(stale, [edited, deleted]), [edited, deleted]);
  // 2024-01-01T00:00:01Z, worker 3, sequence 4
  const id = String((1000n << 22n) | (3n << 12n) | 4n);
  assert.equal(idTime(id), Date.UTC(2024, 0, 1, 0, 0, 1));
  const c = newClientId();
  assert.ok(c.length > 0 && c.length <= 64);
  assert.notEqual(c, newClientId());
});

test("REST errors: code and retry-after from the body or the headers", () => {
  const e = errorFromResponse(429, '{"error":{"code":"rate_limited","message":"slow down","retry_after_ms":1500}}', "2");
  assert.equal(e.code, "rate_limited");
  assert.equal(e.status, 429);
  assert.equal(e.message, "slow down");
  assert.equal(e.retryAfterMs, 1500);
  const u = errorFromResponse(503, "<html>bad gateway</html>", "3");
  assert.equal(u.code, "unavailable");
  assert.equal(u.retryAfterMs, 3000);
  assert.equal(errorFromResponse(502, "", null).code, "internal");
  assert.ok(new ChatError("timeout", "t").retryable);
  assert.equal(new ChatError("forbidden", "f").retryable, false);
});
