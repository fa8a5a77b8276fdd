// RealtimeClient against a real `chatd serve`, in both codecs: ready, optimistic
// sends reconciled by ack, events between two users, requests by ref,
// offline queue, resume after a lost connection, token refresh on 4001,
// final closes, rate limits.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { ChatServer, UNTHROTTLED } from "./helpers/server.js";
import { newUser, realtime, waitFor, eventually, collectMessages, gatedWebSocket, uniqueName, sleep } from "./helpers/util.js";
import { ChatError, RestClient, compareIds } from "../src/index.js";

let server;
before(async () => {
  server = await new ChatServer(UNTHROTTLED).start();
});
after(async () => {
  await server.dispose();
});

for (const codec of ["json", "msgpack"]) {
  describe(`codec ${codec}`, () => {
    test("two users: sends reconciled by ack, messages, typing, read, mentions, edits, deletes", async () => {
      const alice = await newUser(server, "a");
      const bob = await newUser(server, "b");
      const room = await alice.api.createRoom({ name: uniqueName("R"), member_ids: [bob.user.id] });
      const gate = gatedWebSocket();
      const ra = realtime(alice.api, { codec, WebSocket: gate.WebSocket });
      const rb = realtime(bob.api, { codec });
      try {
        const readyA = await ra.connect();
        await rb.connect();
        assert.equal(gate.last.protocol, `chat.v1.${codec}`);
        assert.equal(ra.state, "open");
        assert.equal(readyA.reconnected, false);
        assert.equal(readyA.user.id, alice.user.id);
        assert.ok(readyA.rooms.some((r) => r.id === room.id));
        assert.equal(ra.user.id, alice.user.id);
        assert.equal(typeof ra.sessionId, "string");
        assert.ok(ra.heartbeatIntervalMs > 0);

        const bobMsgs = collectMessages(rb);
        const statuses = [];
        ra.on("pending", (p) => statuses.push(p.status));
        const pending = ra.send(room.id, `hello @${bob.username}`);
        assert.equal(pending.status, "sending");
        assert.equal(ra.pendingMessages(room.id).length, 1);
        const mention = waitFor(rb, "mention");
        const notification = waitFor(rb, "notification");
        const ack = await pending.done;
        assert.equal(pending.status, "sent");
        assert.equal(pending.message_id, ack.message_id);
        assert.deepEqual(statuses.at(-1), "sent");
        // listed until alice has the real message too, then gone
        await eventually(() => ra.pendingMessages().length === 0, 5000, "pending list empty");
        const got = { message: await eventually(() => bobMsgs.all.find((m) => m.id === ack.message_id), 5000, "bob's copy") };
        assert.equal(got.message.client_id, pending.client_id);
        assert.deepEqual(got.message.mentions, [bob.user.id]);
        // Ids are decimal strings whatever the codec, exactly those REST gives (they exceed 2^53).
        const viaRest = (await bob.api.getMessages(room.id)).messages.at(-1);
        assert.equal(viaRest.id, ack.message_id);
        assert.ok(BigInt(viaRest.id) > BigInt(Number.MAX_SAFE_INTEGER));
        assert.equal(got.message.sender_id, alice.user.id);
        assert.equal((await mention).message_id, ack.message_id);
        assert.equal((await notification).notification.message_id, ack.message_id);

        // typing reaches the other member only
        const typing = waitFor(rb, "typing", (f) => f.room_id === room.id);
        ra.typing(room.id, true);
        assert.deepEqual(await typing, { type: "typing", room_id: room.id, user_id: alice.user.id, typing: true });

        // read: resolved by its own echo, seen by the others
        const bobSeesRead = waitFor(rb, "read", (f) => f.user_id === alice.user.id);
        const readEcho = await ra.read(room.id, ack.message_id);
        assert.equal(readEcho.message_id, ack.message_id);
        assert.equal((await bobSeesRead).message_id, ack.message_id);

        // edit and delete: resolved by their broadcast
        const bobSeesEdit = waitFor(rb, "message_updated", (f) => f.message.id === ack.message_id);
        const updated = await ra.edit(room.id, ack.message_id, "edited");
        assert.equal(updated.message.content, "edited");
        assert.ok(updated.message.edited_at);
        assert.equal((await bobSeesEdit).message.content, "edited");
        await assert.rejects(rb.edit(room.id, ack.message_id, "not mine"), (e) => e instanceof ChatError && e.code === "forbidden" && typeof e.ref === "string");
        const deleted = await ra.delete(room.id, ack.message_id);
        assert.equal(deleted.message_id, ack.message_id);

        // history by ref
        for (let i = 0; i < 3; i++) await ra.send(room.id, `h${i}`).done;
        const h = await rb.history(room.id, { limit: 2 });
        assert.deepEqual(h.messages.map((m) => m.content), ["h1", "h2"]);
        assert.equal(h.has_more, true);
        const older = await rb.history(room.id, { before: h.messages[0].id });
        assert.equal(older.messages.at(-1).content, "h0");
        assert.equal(older.messages[0].deleted, true);
        await assert.rejects(rb.history("999999"), (e) => e.code === "not_found");

        await eventually(() => bobMsgs.contents(room.id).length === 4, 5000, "bob's messages");
        assert.deepEqual(bobMsgs.contents(room.id), [`hello @${bob.username}`, "h0", "h1", "h2"]);
        assert.equal(await ra.ping().then((p) => p.type), "pong");
      } finally {
        ra.close();
        rb.close();
      }
    });

    test("a send the server refuses fails its pending message", async () => {
      const alice = await newUser(server, "f");
      const other = await newUser(server, "g");
      const room = await other.api.createRoom({ name: uniqueName("Closed"), visibility: "private" });
      const ra = realtime(alice.api, { codec });
      try {
        await ra.connect();
        const p = ra.send(room.id, "let me in");
        await assert.rejects(p.done, (e) => e.code === "forbidden" && e.clientId === p.client_id);
        assert.equal(p.status, "failed");
        assert.equal(ra.pendingMessages()[0].status, "failed");
        assert.ok(ra.discard(p.client_id));
        assert.equal(ra.pendingMessages().length, 0);
        // refused locally at once: empty and too long
        const empty = ra.send(room.id, "   ");
        assert.equal(empty.status, "failed");
        await assert.rejects(empty.done, (e) => e.code === "bad_request");
        const long = ra.send(room.id, "x".repeat(4001));
        await assert.rejects(long.done, (e) => e.code === "too_large");
      } finally {
        ra.close();
      }
    });

    test("join, leave, membership events, room_added and room_removed", async () => {
      const alice = await newUser(server, "j");
      const bob = await newUser(server, "k");
      const room = await alice.api.createRoom({ name: uniqueName("Open") });
      const ra = realtime(alice.api, { codec });
      const rb = realtime(bob.api, { codec });
      try {
        await ra.connect();
        await rb.connect();
        const joinedSeen = waitFor(ra, "member_joined", (f) => f.user_id === bob.user.id);
        const added = await rb.join(room.id);
        assert.equal(added.room.id, room.id);
        assert.equal(added.room.role, "member");
        await joinedSeen;
        assert.equal(await rb.join(room.id), undefined); // already a member: nothing to wait for
        const msg = waitFor(rb, "message", (f) => f.message.room_id === room.id);
        await ra.send(room.id, "welcome").done;
        assert.equal((await msg).message.content, "welcome");
        const leftSeen = waitFor(ra, "member_left", (f) => f.user_id === bob.user.id);
        const removed = await rb.leave(room.id);
        assert.equal(removed.room_id, room.id);
        await leftSeen;
        const priv = await alice.api.createRoom({ name: uniqueName("P"), visibility: "private" });
        await assert.rejects(rb.join(priv.id), (e) => e.code === "forbidden");
        // presence: bob goes away
        const presence = waitFor(ra, "presence", (f) => f.user_id === bob.user.id && f.online === false);
        await bob.api.openDm(alice.user.id); // share a room so that presence reaches alice
        rb.close();
        assert.ok((await presence).last_seen_at > 0);
      } finally {
        ra.close();
        rb.close();
      }
    });

    test("offline queue: sends before connect and while cut off are delivered once, in order", async () => {
      const alice = await newUser(server, "q");
      const bob = await newUser(server, "r");
      const room = await alice.api.createRoom({ name: uniqueName("Q"), member_ids: [bob.user.id] });
      const gate = gatedWebSocket();
      const ra = realtime(alice.api, { codec, WebSocket: gate.WebSocket });
      const rb = realtime(bob.api, { codec });
      const bobMsgs = collectMessages(rb);
      try {
        await rb.connect();
        const early = ra.send(room.id, "before connect");
        assert.equal(early.status, "queued");
        await ra.connect();
        await early.done;
        const lost = waitFor(ra, "state", (s) => s.state === "reconnecting");
        gate.cut();
        await lost;
        const queued = [1, 2, 3].map((i) => ra.send(room.id, `offline ${i}`));
        assert.deepEqual(queued.map((p) => p.status), ["queued", "queued", "queued"]);
        await sleep(300);
        // Only the three offline ones wait; the early one is sent (it may
        // still be listed as "sent" until its own message comes back).
        assert.deepEqual(
          ra.pendingMessages().filter((p) => p.status !== "sent").map((p) => [p.content, p.status]),
          [["offline 1", "queued"], ["offline 2", "queued"], ["offline 3", "queued"]],
        );
        gate.restore();
        await Promise.all(queued.map((p) => p.done));
        await eventually(() => bobMsgs.contents(room.id).length >= 4, 5000, "bob gets the queued sends");
        await sleep(200);
        assert.deepEqual(bobMsgs.contents(room.id), ["before connect", "offline 1", "offline 2", "offline 3"]);
        const history = (await bob.api.getMessages(room.id)).messages.map((m) => m.content);
        assert.deepEqual(history, ["before connect", "offline 1", "offline 2", "offline 3"]);
      } finally {
        ra.close();
        rb.close();
      }
    });

    test("resume after a lost connection: missed messages arrive once, beyond one replay too", async () => {
      const alice = await newUser(server, "s");
      const bob = await newUser(server, "t");
      const room = await alice.api.createRoom({ name: uniqueName("Res"), member_ids: [bob.user.id] });
      const quiet = await alice.api.createRoom({ name: uniqueName("Quiet"), member_ids: [bob.user.id] });
      const gate = gatedWebSocket();
      const rb = realtime(bob.api, { codec, WebSocket: gate.WebSocket });
      const bobMsgs = collectMessages(rb);
      try {
        await rb.connect();
        await alice.api.postMessage(room.id, "live 0");
        await eventually(() => bobMsgs.contents(room.id).length === 1, 5000, "live 0");
        const lost = waitFor(rb, "disconnected");
        gate.cut();
        const disconnected = await lost;
        assert.equal(disconnected.willReconnect, true);
        // 520 messages while bob is away: more than one resume replays (500)
        const missed = [];
        for (let i = 0; i < 520; i++) missed.push(`missed ${i}`);
        for (const content of missed) await alice.api.postMessage(room.id, content);
        const resynced = waitFor(rb, "resync", (r) => r.room_id === room.id, 20000);
        const ready = waitFor(rb, "ready");
        gate.restore();
        assert.equal((await ready).reconnected, true);
        assert.equal((await resynced).replayed, 520);
        await alice.api.postMessage(room.id, "live 1");
        await eventually(() => bobMsgs.contents(room.id).length === 522, 10000, "all messages");
        await sleep(200);
        const contents = bobMsgs.contents(room.id);
        assert.deepEqual(contents, ["live 0", ...missed, "live 1"]);
        const ids = bobMsgs.ids(room.id);
        assert.equal(new Set(ids).size, ids.length, "no duplicate");
        assert.deepEqual([...ids].sort(compareIds), ids, "in id order");
        assert.equal(bobMsgs.contents(quiet.id).length, 0);
        assert.equal(rb.lastSeen()[room.id], ids.at(-1));
      } finally {
        rb.close();
      }
    });
  });
}

test("4001: the app's getToken gives a new token and the client carries on", async () => {
  const bob = await newUser(server, "tok");
  const alice = await newUser(server, "tak");
  const room = await alice.api.createRoom({ name: uniqueName("T"), member_ids: [bob.user.id] });
  let asked = 0;
  const rb = realtime(bob.api, {
    getToken: async () => {
      asked++;
      return (await bob.api.login(bob.username, bob.password)).token;
    },
  });
  const bobMsgs = collectMessages(rb);
  try {
    await rb.connect();
    const expired = waitFor(rb, "token_expired");
    const again = waitFor(rb, "ready");
    await bob.api.logout(); // revokes the session the connection uses: 4001
    assert.equal((await expired).code, 4001);
    await alice.api.postMessage(room.id, "while refreshing");
    assert.equal((await again).reconnected, true);
    assert.equal(asked, 1);
    assert.ok(bob.api.token, "the REST client got the new token too");
    await bob.api.me();
    await eventually(() => bobMsgs.contents(room.id).includes("while refreshing"), 5000, "resumed message");
    await rb.send(room.id, "after refresh").done;
  } finally {
    rb.close();
  }
});

test("4001 without getToken, or getToken giving up, closes for good", async () => {
  const bob = await newUser(server, "nt");
  const second = new RestClient({ baseUrl: server.base });
  await second.login(bob.username, bob.password);
  const rb = realtime(bob.api);
  await rb.connect();
  const pending = (() => {
    const closed = waitFor(rb, "closed");
    return closed;
  })();
  await bob.api.logout();
  const closed = await pending;
  assert.equal(closed.code, 4001);
  assert.equal(closed.error.code, "unauthorized");
  assert.equal(rb.state, "closed");
  await assert.rejects(rb.history("1"), (e) => e.code === "closed");

  const rc = realtime(second, { getToken: () => null });
  await rc.connect();
  const p = rc.send("1", "x"); // not a room: fails or is still in flight when the session ends
  const closed2 = waitFor(rc, "closed");
  await second.logout();
  assert.equal((await closed2).error.code, "unauthorized");
  await assert.rejects(p.done);
});

test("a token refused at the handshake asks getToken too", async () => {
  const bob = await newUser(server, "hs");
  const stale = bob.api.token;
  await bob.api.logout();
  bob.api.setToken(stale);
  const rb = realtime(bob.api, {
    getToken: async () => (await bob.api.login(bob.username, bob.password)).token,
  });
  try {
    const ready = await rb.connect();
    assert.equal(ready.user.id, bob.user.id);
  } finally {
    rb.close();
  }
});

test("1008 (too many bad frames) is final: no reconnect", async () => {
  const bob = await newUser(server, "bad");
  const rt = realtime(bob.api);
  let dials = 0;
  rt.on("reconnecting", () => dials++);
  const errors = [];
  rt.on("error", (e) => errors.push(e.code));
  await rt.connect();
  const closed = waitFor(rt, "closed");
  for (let i = 0; i < 21; i++) rt.sendFrame({ type: "no_such_frame" });
  const c = await closed;
  assert.equal(c.code, 1008);
  assert.equal(c.error.code, "forbidden");
  assert.equal(rt.state, "closed");
  assert.ok(errors.length >= 20 && errors.every((code) => code === "bad_request"));
  await sleep(500);
  assert.equal(dials, 0);
});

test("rate_limited sends are retried after retry_after_ms and delivered once", async () => {
  const limited = await new ChatServer({ CHAT_RATES__SEND_PER_SECOND: "5", CHAT_RATES__SEND_BURST: "2" }).start();
  try {
    const alice = await newUser(limited, "rl");
    const room = await alice.api.createRoom({ name: uniqueName("Rl") });
    const ra = realtime(alice.api);
    let limitedSeen = 0;
    ra.on("error", (e) => e.code === "rate_limited" && limitedSeen++);
    await ra.connect();
    const sends = Array.from({ length: 8 }, (_, i) => ra.send(room.id, `burst ${i}`));
    await Promise.all(sends.map((p) => p.done));
    assert.ok(limitedSeen > 0, "the server limited some sends");
    const stored = (await alice.api.getMessages(room.id)).messages.map((m) => m.content);
    assert.deepEqual([...stored].sort(), sends.map((p) => p.content).sort());
    ra.close();
  } finally {
    await limited.dispose();
  }
});
