// The server goes away mid-conversation. SIGKILL (a crash) and a restart on
// the same port and data: nothing lost, nothing twice — messages posted by a
// REST client meanwhile arrive by resume, sends queued or unacked when the
// server died are delivered once. SIGTERM: the server closes with 1012 and
// the client dials again at once.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ChatServer, UNTHROTTLED } from "./helpers/server.js";
import { newUser, realtime, waitFor, eventually, collectMessages, gatedWebSocket, uniqueName, sleep } from "./helpers/util.js";
import { compareIds } from "../src/index.js";

let server;
before(async () => {
  server = await new ChatServer(UNTHROTTLED).start();
});
after(async () => {
  await server.dispose();
});

for (const codec of ["json", "msgpack"]) {
  test(`${codec}: SIGKILL and restart mid-conversation, no message lost, none duplicated`, async (t) => {
    const alice = await newUser(server, "ka");
    const bob = await newUser(server, "kb");
    const room = await alice.api.createRoom({ name: uniqueName("Kill"), member_ids: [bob.user.id] });
    const bobGate = gatedWebSocket();
    const ra = realtime(alice.api, { codec });
    const rb = realtime(bob.api, { codec, WebSocket: bobGate.WebSocket });
    const aliceMsgs = collectMessages(ra);
    const bobMsgs = collectMessages(rb);
    const expected = [];
    try {
      await ra.connect();
      await rb.connect();

      // A conversation, both ways.
      for (let i = 0; i < 5; i++) {
        expected.push(`a${i}`);
        await ra.send(room.id, `a${i}`).done;
        expected.push(`b${i}`);
        await rb.send(room.id, `b${i}`).done;
      }

      // A burst on the wire, not awaited: some are acked, some may be stored
      // without their ack reaching alice, some never reach the server.
      // Kill as soon as the first ack comes back: the rest is then in every
      // state between "on the wire" and "stored, ack not yet sent".
      const firstAck = waitFor(ra, "pending", (p) => p.status === "sent" && p.content.startsWith("burst"));
      const burst = Array.from({ length: 20 }, (_, i) => ra.send(room.id, `burst ${i}`));
      expected.push(...burst.map((p) => p.content));
      await firstAck;
      const lost = waitFor(ra, "state", (s) => s.state === "reconnecting");
      const unackedAtKill = burst.filter((p) => p.status !== "sent").map((p) => p.content);
      const killedAt = Date.now();
      await server.kill();
      // Bob stays away until the REST client has posted.
      bobGate.cut();
      await lost;

      // Queued while the server is down.
      const queued = [0, 1, 2].map((i) => ra.send(room.id, `queued ${i}`));
      expected.push(...queued.map((p) => p.content));
      assert.ok(queued.every((p) => p.status === "queued"));

      await server.start();
      const rest = await newUser(server, "kr");
      await alice.api.addMember(room.id, rest.user.id);
      for (let i = 0; i < 3; i++) {
        expected.push(`rest ${i}`);
        await rest.api.postMessage(room.id, `rest ${i}`);
      }
      bobGate.restore();

      await Promise.all([...burst, ...queued].map((p) => p.done));
      await eventually(() => ra.pendingMessages().length === 0, 6000, "alice's pending list empties");

      const want = [...expected].sort();
      for (const [who, msgs] of [
        ["alice", aliceMsgs],
        ["bob", bobMsgs],
      ]) {
        await eventually(() => msgs.contents(room.id).length >= expected.length, 15000, `${who} catches up`);
      }
      await sleep(300); // let any late duplicate show itself
      const stored = [];
      let page = await rest.api.getMessages(room.id, { limit: 100 });
      stored.push(...page.messages);
      assert.equal(page.has_more, false);
      assert.deepEqual(stored.map((m) => m.content).sort(), want, "the server stored each message once");
      for (const [who, msgs] of [
        ["alice", aliceMsgs],
        ["bob", bobMsgs],
      ]) {
        assert.deepEqual(msgs.contents(room.id).sort(), want, `${who} saw each message once`);
        assert.deepEqual(msgs.ids(room.id).sort(compareIds), stored.map((m) => m.id), `${who} has the stored ids`);
      }
      const storedUnacked = stored.filter((m) => unackedAtKill.includes(m.content) && m.created_at < killedAt).length;
      t.diagnostic(
        `burst: ${20 - unackedAtKill.length} acked before the kill; of the ${unackedAtKill.length} others, ` +
          `${storedUnacked} had been stored (their resend was answered with the original ack)`,
      );
      // The burst and the queue kept alice's order in the room.
      const aliceOrder = stored.filter((m) => /^(burst|queued)/.test(m.content)).map((m) => m.content);
      assert.deepEqual(aliceOrder, [...burst, ...queued].map((p) => p.content));
    } finally {
      ra.close();
      rb.close();
    }
  });
}

test("SIGTERM: 1012 and an immediate reconnect, then resume", async () => {
  const alice = await newUser(server, "ta");
  const bob = await newUser(server, "tb");
  const room = await alice.api.createRoom({ name: uniqueName("Term"), member_ids: [bob.user.id] });
  const rb = realtime(bob.api, { reconnect: { initialDelayMs: 2000, maxDelayMs: 4000 } });
  const bobMsgs = collectMessages(rb);
  try {
    await rb.connect();
    await alice.api.postMessage(room.id, "before");
    await eventually(() => bobMsgs.contents(room.id).length === 1, 5000, "before");
    const disconnected = waitFor(rb, "disconnected");
    await server.stop("SIGTERM");
    const d = await disconnected;
    assert.equal(d.code, 1012);
    assert.equal(d.delayMs, 0, "1012 redials at once");
    const back = waitFor(rb, "ready", (r) => r.reconnected, 15000);
    await server.start();
    await alice.api.postMessage(room.id, "after");
    await back;
    await eventually(() => bobMsgs.contents(room.id).length === 2, 5000, "after");
    assert.deepEqual(bobMsgs.contents(room.id), ["before", "after"]);
  } finally {
    rb.close();
  }
});

test("a server that stops answering (SIGSTOP) is detected by ping and left; the client comes back after SIGCONT", async () => {
  const alice = await newUser(server, "pa");
  const bob = await newUser(server, "pb");
  const room = await alice.api.createRoom({ name: uniqueName("Stop"), member_ids: [bob.user.id] });
  const rb = realtime(bob.api, { pingIntervalMs: 1000, pongTimeoutMs: 1000, connectTimeoutMs: 1500 });
  const bobMsgs = collectMessages(rb);
  try {
    await rb.connect();
    const reasons = [];
    rb.on("disconnected", (d) => reasons.push(d.reason));
    const lost = waitFor(rb, "disconnected", () => true, 10000);
    server.proc.kill("SIGSTOP"); // the TCP connection stays up; nothing answers
    assert.match((await lost).reason, /ping/);
    assert.equal(rb.state, "reconnecting");
    await sleep(3000); // dials hang on the stopped server and are abandoned
    assert.ok(reasons.some((r) => /connect timeout/.test(r)), reasons.join("; "));
    const back = waitFor(rb, "ready", (r) => r.reconnected, 15000);
    server.proc.kill("SIGCONT");
    await back;
    await alice.api.postMessage(room.id, "back");
    await eventually(() => bobMsgs.contents(room.id).includes("back"), 5000, "message after SIGCONT");
  } finally {
    if (server.proc) server.proc.kill("SIGCONT");
    rb.close();
  }
});

test("a REST post without an answer is tried again with the same client_id, and stored once", async () => {
  const alice = await newUser(server, "rp");
  const room = await alice.api.createRoom({ name: uniqueName("Retry") });
  await server.kill();
  // The first attempts find nothing listening; the server is back before the last.
  const posting = alice.api.postMessage(room.id, "through the restart", { retries: 4 });
  await sleep(300);
  await server.start();
  const posted = await posting;
  assert.equal(posted.content, "through the restart");
  const again = await alice.api.postMessage(room.id, { content: "through the restart", client_id: posted.client_id });
  assert.equal(again.id, posted.id, "the same client_id names the same message");
  const stored = (await alice.api.getMessages(room.id)).messages;
  assert.deepEqual(stored.map((m) => m.id), [posted.id]);
  // an answer that is a refusal is not retried
  await assert.rejects(alice.api.postMessage(room.id, "   "), (e) => e.code === "bad_request");
});
