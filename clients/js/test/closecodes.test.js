// The client's policy for each close code, against a scripted WebSocket
// server (npm `ws`) that says exactly what the test wants: the real server
// cannot be made to send 1013 or 4003 on demand. Real sockets, real frames;
// only the server side is a script. Also checks the `resume` frame the
// client sends after a reconnect.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { WebSocketServer } from "ws";
import WebSocket from "ws";
import { RealtimeClient, msgpack } from "../src/index.js";
import { waitFor, sleep } from "./helpers/util.js";

let wss;
let base;
const connections = []; // {ws, url, protocol, frames: [], at}
let onConnection = () => {};

before(async () => {
  wss = new WebSocketServer({ port: 0, host: "127.0.0.1", handleProtocols: (protocols) => [...protocols][0] ?? false });
  await new Promise((r) => wss.once("listening", r));
  base = `http://127.0.0.1:${wss.address().port}`;
  wss.on("connection", (ws, req) => {
    const conn = { ws, url: req.url, protocol: ws.protocol, frames: [], at: Date.now() };
    ws.on("message", (data, isBinary) => conn.frames.push(isBinary ? msgpack.decode(data) : JSON.parse(String(data))));
    connections.push(conn);
    onConnection(conn);
  });
});
after(() => {
  for (const c of wss.clients) c.terminate();
  wss.close();
});

const ready = (rooms = []) => ({
  type: "ready",
  session_id: "s1",
  user: { id: "18446744073709551615", username: "u", display_name: "u", created_at: 1 },
  rooms,
  heartbeat_interval_ms: 25000,
});

function client(options = {}) {
  return new RealtimeClient({
    baseUrl: base,
    token: "t0k/en+",
    WebSocket,
    reconnect: { initialDelayMs: 400, maxDelayMs: 400, tryAgainLaterMs: 1000 },
    ...options,
  });
}

/** Serves `ready`, then closes each connection with the next code of `codes`. */
function script(codes) {
  connections.length = 0;
  let i = 0;
  onConnection = (conn) => {
    conn.ws.send(JSON.stringify(ready()));
    const code = codes[i++];
    if (code !== undefined) setTimeout(() => conn.ws.close(code, `code ${code}`), 50);
  };
}

test("the token goes in access_token, the codec in the subprotocol", async () => {
  script([]);
  const rt = client({ codec: "msgpack" });
  await rt.connect();
  assert.equal(connections[0].url, "/ws?access_token=t0k%2Fen%2B");
  assert.equal(connections[0].protocol, "chat.v1.msgpack");
  assert.equal(rt.user.id, "18446744073709551615");
  rt.close();
});

for (const code of [1012, 1011, 4003, 1006]) {
  test(`${code}: reconnect${code === 1012 ? " at once" : " after a backoff"}`, async () => {
    script(code === 1006 ? [] : [code]);
    const rt = client();
    await rt.connect();
    if (code === 1006) connections[0].ws.terminate();
    const d = await waitFor(rt, "disconnected");
    assert.equal(d.code, code);
    assert.equal(d.willReconnect, true);
    if (code === 1012) assert.equal(d.delayMs, 0);
    else assert.ok(d.delayMs < 400);
    await waitFor(rt, "ready", (r) => r.reconnected);
    assert.equal(connections.length, 2);
    rt.close();
  });
}

test("1013: the next dial waits at least tryAgainLaterMs", async () => {
  script([1013]);
  const rt = client();
  await rt.connect();
  const d = await waitFor(rt, "disconnected");
  assert.equal(d.code, 1013);
  assert.ok(d.delayMs >= 1000, `delay ${d.delayMs}`);
  await waitFor(rt, "ready", (r) => r.reconnected, 5000);
  assert.ok(connections[1].at - connections[0].at >= 1000);
  rt.close();
});

for (const code of [1008, 1002, 4000, 4999]) {
  test(`${code}: final, no reconnect`, async () => {
    script([code]);
    const rt = client();
    await rt.connect();
    const closed = await waitFor(rt, "closed");
    assert.equal(closed.code, code);
    assert.equal(rt.state, "closed");
    await sleep(600);
    assert.equal(connections.length, 1);
  });
}

test("4001: getToken's token is used for the next dial", async () => {
  script([4001]);
  const rt = client({ getToken: async () => "fresh" });
  await rt.connect();
  await waitFor(rt, "ready", (r) => r.reconnected);
  assert.equal(connections[1].url, "/ws?access_token=fresh");
  rt.close();
});

test("after a reconnect: resume from the last id seen per room, then the queued sends", async () => {
  for (const codec of ["json", "msgpack"]) {
    connections.length = 0;
    const rooms = [
      { id: "1", kind: "group", name: "a", visibility: "public", member_count: 1, created_at: 1, unread_count: 0, mention_count: 0, role: "owner", last_message: { id: "100", room_id: "1", sender_id: "5", content: "x", mentions: [], attachments: [], created_at: 1 } },
      { id: "dm:5:18446744073709551615", kind: "dm", name: "", visibility: "private", member_count: 2, created_at: 1, unread_count: 0, mention_count: 0, role: "member" },
    ];
    // JSON carries ids as strings, MessagePack as integers.
    const json = (frame) => JSON.stringify(frame, (_, v) => (typeof v === "bigint" ? String(v) : v));
    const encode = (conn, frame) => conn.ws.send(conn.protocol === "chat.v1.msgpack" ? msgpack.encode(frame) : json(frame));
    onConnection = (conn) => encode(conn, ready(rooms));
    const rt = client({ codec });
    await rt.connect();
    const first = connections[0];
    // a message with a u64 id, as MessagePack carries it
    encode(first, { type: "message", message: { id: 18446744073709551000n, room_id: "1", sender_id: 5, content: "big", mentions: [], attachments: [], created_at: 2 } });
    await waitFor(rt, "message");
    first.ws.terminate();
    await waitFor(rt, "state", (s) => s.state === "reconnecting");
    const p = rt.send("1", "queued while away");
    await waitFor(rt, "ready", (r) => r.reconnected);
    await sleep(100);
    const second = connections[1];
    const [resume, send] = second.frames;
    assert.equal(resume.type, "resume");
    assert.deepEqual(resume.rooms, { 1: "18446744073709551000", "dm:5:18446744073709551615": "0" });
    assert.equal(send.type, "send");
    assert.equal(send.client_id, p.client_id);
    // the replay repeats the message seen live: emitted once
    const seen = [];
    rt.on("message", (f) => seen.push(f.message.id));
    encode(second, { type: "message", message: { id: 18446744073709551000n, room_id: "1", sender_id: 5, content: "big", mentions: [], attachments: [], created_at: 2 } });
    encode(second, { type: "message", message: { id: 18446744073709551001n, room_id: "1", sender_id: 5, content: "new", mentions: [], attachments: [], created_at: 3 } });
    encode(second, { type: "resumed", ref: resume.ref, rooms: { 1: { replayed: 2, complete: true }, "dm:5:18446744073709551615": { replayed: 0, complete: true } } });
    encode(second, { type: "ack", client_id: p.client_id, message_id: 18446744073709551002n, created_at: 4 });
    const ack = await p.done;
    assert.equal(ack.message_id, "18446744073709551002");
    await sleep(50);
    assert.deepEqual(seen, ["18446744073709551001"]);
    assert.equal(rt.lastSeen()["1"], "18446744073709551001");
    // acked, its message not here yet: still listed, as sent
    assert.deepEqual(rt.pendingMessages().map((m) => [m.client_id, m.status]), [[p.client_id, "sent"]]);
    const own = { id: 18446744073709551002n, room_id: "1", sender_id: 18446744073709551615n, client_id: p.client_id, content: "queued while away", mentions: [], attachments: [], created_at: 4 };
    encode(second, { type: "message", message: own });
    await waitFor(rt, "message", (f) => f.message.client_id === p.client_id);
    assert.deepEqual(rt.pendingMessages(), []);
    rt.close();
  }
});

test("a ready listener that closes the client leaves nothing running", async () => {
  script([]);
  const rt = client();
  rt.once("ready", () => rt.close());
  const h = rt.history("1"); // queued before connect: failed by the close, not written
  await rt.connect();
  await assert.rejects(h, (e) => e.code === "closed");
  assert.equal(rt.state, "closed");
  await sleep(100);
  assert.deepEqual(connections[0].frames, []);
});

test("a send whose answer is lost while the connection stays up goes out again, same client_id", async () => {
  script([]);
  const rt = client({ ackTimeoutMs: 300 });
  await rt.connect();
  const p = rt.send("1", "lost answer");
  await sleep(100);
  const conn = connections[0];
  const sends = () => conn.frames.filter((f) => f.type === "send");
  assert.equal(sends().length, 1);
  // No answer to the first: the client sends it again after ackTimeoutMs.
  await sleep(400);
  assert.equal(sends().length, 2);
  assert.equal(sends()[1].client_id, p.client_id);
  assert.equal(rt.pendingMessages()[0].status, "sending");
  conn.ws.send(JSON.stringify({ type: "ack", client_id: p.client_id, message_id: "7", created_at: 1 }));
  const ack = await p.done;
  assert.equal(ack.message_id, "7");
  // Answered: not sent a third time.
  await sleep(400);
  assert.equal(sends().length, 2);
  rt.close();
});
