// RestClient against a real `chatd serve`: every group of calls, errors as
// ChatError with code/status/retryAfterMs, uploads and file URLs.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { ChatServer, UNTHROTTLED } from "./helpers/server.js";
import { newUser, uniqueName } from "./helpers/util.js";
import { deflateSync } from "node:zlib";
import { RestClient, ChatError } from "../src/index.js";

/** A valid RGB PNG of w×h grey pixels, built here from the PNG specification. */
function tinyPng(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((w * 3 + 1) * h, 0x80);
  for (let y = 0; y < h; y++) raw[y * (w * 3 + 1)] = 0; // filter: none
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

let server;
before(async () => {
  server = await new ChatServer({ ...UNTHROTTLED, CHAT_ADMINS: '["admin_js"]' }).start();
});
after(async () => {
  await server.dispose();
});

test("register, login, me, profile, password, logout", async () => {
  const api = new RestClient({ baseUrl: `${server.base}/` });
  const username = uniqueName("acc");
  const reg = await api.register({ username, password: "password-123", display_name: "First" });
  assert.equal(reg.user.username, username);
  assert.equal(typeof reg.user.id, "string");
  assert.equal(api.token, reg.token);

  const me = await api.me();
  assert.equal(me.id, reg.user.id);
  const updated = await api.updateProfile({ display_name: "Second" });
  assert.equal(updated.display_name, "Second");

  const other = new RestClient({ baseUrl: server.base });
  await other.login(username, "password-123");
  await api.changePassword("password-123", "password-456");
  // the other session was revoked by the password change
  await assert.rejects(other.me(), (e) => e instanceof ChatError && e.code === "unauthorized" && e.status === 401);
  await assert.rejects(api.login(username, "password-123"), (e) => e.code === "unauthorized" && e.status === 401);
  await api.login(username, "password-456");
  await api.logout();
  assert.equal(api.token, null);
  await assert.rejects(api.me(), (e) => e.code === "unauthorized");
});

test("errors carry the server's code, status and message", async () => {
  const { api, username } = await newUser(server, "err");
  const anon = new RestClient({ baseUrl: server.base });
  await assert.rejects(anon.register({ username, password: "password-123" }), (e) => {
    assert.ok(e instanceof ChatError);
    assert.equal(e.code, "conflict");
    assert.equal(e.status, 409);
    assert.ok(e.message.length > 0);
    assert.equal(e.retryable, false);
    return true;
  });
  await assert.rejects(api.getRoom("999999"), (e) => e.code === "not_found" && e.status === 404);
  await assert.rejects(api.getRoom("abc"), (e) => e.code === "bad_request" && e.status === 400);
  let unauthorized = 0;
  const expired = new RestClient({ baseUrl: server.base, token: "not-a-jwt", onUnauthorized: () => unauthorized++ });
  await assert.rejects(expired.me(), (e) => e.code === "unauthorized");
  assert.equal(unauthorized, 1);
  // nothing listening: a network error, status 0
  const nowhere = new RestClient({ baseUrl: "http://127.0.0.1:9", timeoutMs: 5000 });
  await assert.rejects(nowhere.me(), (e) => e.code === "network" && e.status === 0 && e.retryable);
});

test("rate limits give rate_limited with retryAfterMs", async () => {
  const limited = await new ChatServer({ CHAT_RATES__ACTIONS_PER_SECOND: "1", CHAT_RATES__ACTION_BURST: "2" }).start();
  try {
    const { api } = await newUser(limited, "rl");
    let err;
    for (let i = 0; i < 10 && !err; i++) {
      try {
        await api.me();
      } catch (e) {
        err = e;
      }
    }
    assert.ok(err, "the budget ran out");
    assert.equal(err.code, "rate_limited");
    assert.equal(err.status, 429);
    assert.ok(err.retryAfterMs > 0, `retryAfterMs ${err.retryAfterMs}`);
    assert.ok(err.retryable);
  } finally {
    await limited.dispose();
  }
});

test("users, rooms, directory, members, join/leave, add/kick", async () => {
  const alice = await newUser(server, "ali");
  const bob = await newUser(server, "bob");
  const carol = await newUser(server, "car");

  const found = await alice.api.searchUsers({ prefix: bob.username.slice(0, 8), limit: 5 });
  assert.ok(found.users.some((u) => u.id === bob.user.id));
  const bobSeen = await alice.api.getUser(bob.user.id);
  assert.equal(bobSeen.username, bob.username);

  const name = uniqueName("Room");
  const room = await alice.api.createRoom({ name, visibility: "public", max_members: 10 });
  assert.equal(room.name, name);
  assert.equal(room.owner_id, alice.user.id);
  assert.equal(room.max_members, 10);
  const priv = await alice.api.createRoom({ name: uniqueName("Priv"), visibility: "private", member_ids: [carol.user.id] });

  const dir = await bob.api.publicRooms({ prefix: name, limit: 10 });
  assert.deepEqual(dir.rooms.map((r) => r.id), [room.id]);
  assert.equal((await bob.api.getRoom(room.id)).id, room.id);
  const joined = await bob.api.joinRoom(room.id);
  assert.equal(joined.member_count, 2);
  await assert.rejects(bob.api.joinRoom(priv.id), (e) => e.code === "forbidden");

  const mine = await bob.api.listRooms();
  const summary = mine.rooms.find((r) => r.id === room.id);
  assert.equal(summary.role, "member");
  assert.equal(summary.unread_count, 0);
  assert.equal(summary.mention_count, 0);

  await alice.api.addMember(room.id, carol.user.id);
  const page1 = await alice.api.listMembers(room.id, { limit: 2 });
  assert.equal(page1.members.length, 2);
  assert.ok(page1.next_cursor);
  const page2 = await alice.api.listMembers(room.id, { limit: 2, cursor: page1.next_cursor });
  assert.equal(page2.members.length, 1);
  const all = await alice.api.allMembers(room.id);
  assert.deepEqual(all.map((m) => m.user.id).sort(), [alice.user.id, bob.user.id, carol.user.id].sort());
  assert.equal(typeof all[0].online, "boolean");

  await alice.api.removeMember(room.id, carol.user.id);
  await bob.api.leaveRoom(room.id);
  assert.deepEqual((await alice.api.allMembers(room.id)).map((m) => m.user.id), [alice.user.id]);
});

test("messages: post, pages, read, DMs, notifications", async () => {
  const alice = await newUser(server, "ma");
  const bob = await newUser(server, "mb");
  const room = await alice.api.createRoom({ name: uniqueName("Msgs"), member_ids: [bob.user.id] });
  const posted = [];
  for (let i = 0; i < 5; i++) posted.push(await alice.api.postMessage(room.id, `m${i}`));
  const mention = await alice.api.postMessage(room.id, { content: `hi @${bob.username}`, reply_to: posted[0].id, client_id: "fixed-1" });
  assert.deepEqual(mention.mentions, [bob.user.id]);
  assert.equal(mention.reply_to, posted[0].id);
  // same client_id: the original answer, nothing new
  const again = await alice.api.postMessage(room.id, { content: "whatever", client_id: "fixed-1" });
  assert.equal(again.id, mention.id);

  const newest = await bob.api.getMessages(room.id, { limit: 3 });
  assert.deepEqual(newest.messages.map((m) => m.content), ["m3", "m4", `hi @${bob.username}`]);
  assert.equal(newest.has_more, true);
  const older = await bob.api.getMessages(room.id, { before: newest.messages[0].id, limit: 10 });
  assert.deepEqual(older.messages.map((m) => m.content), ["m0", "m1", "m2"]);
  assert.equal(older.has_more, false);
  const after = await bob.api.getMessages(room.id, { after: posted[3].id });
  assert.equal(after.messages.length, 2);

  let summary = (await bob.api.listRooms()).rooms.find((r) => r.id === room.id);
  assert.equal(summary.unread_count, 6);
  assert.equal(summary.mention_count, 1);
  const notes = await bob.api.getNotifications({ limit: 10 });
  assert.equal(notes.notifications.length, 1);
  assert.equal(notes.notifications[0].message_id, mention.id);
  assert.equal(notes.notifications[0].read, false);
  await bob.api.markNotificationsRead(notes.notifications[0].id);
  assert.equal((await bob.api.getNotifications()).notifications[0].read, true);
  await bob.api.markRead(room.id, mention.id);
  summary = (await bob.api.listRooms()).rooms.find((r) => r.id === room.id);
  assert.equal(summary.unread_count, 0);

  const dm = await alice.api.openDm(bob.user.id);
  assert.equal(dm.kind, "dm");
  assert.match(dm.id, /^dm:\d+:\d+$/);
  await bob.api.postMessage(dm.id, "psst");
  assert.deepEqual((await alice.api.getMessages(dm.id)).messages.map((m) => m.content), ["psst"]);
});

test("files: upload with progress, fetch, thumbnail, attach", async () => {
  const alice = await newUser(server, "fa");
  const bob = await newUser(server, "fb");
  const room = await alice.api.createRoom({ name: uniqueName("Files"), member_ids: [bob.user.id] });
  const progress = [];
  const text = await alice.api.uploadFile(new TextEncoder().encode("hello file"), {
    name: "../hello.txt",
    onProgress: (p) => progress.push(p),
  });
  assert.equal(text.name, "hello.txt");
  assert.equal(text.size, 10);
  assert.ok(progress.length >= 1);
  assert.equal(progress.at(-1).loaded, 10);

  // a PNG gets a thumbnail
  const png = tinyPng(4, 3);
  const image = await alice.api.uploadFile(new Blob([png]), { name: "dot.png" });
  assert.equal(image.content_type, "image/png");
  assert.ok(image.thumbnail_url);
  assert.equal(alice.api.thumbnailUrl(image.id), `${server.base}${image.thumbnail_url}`);

  const msg = await alice.api.postMessage(room.id, { content: "files", attachment_ids: [text.id, image.id] });
  assert.deepEqual(msg.attachments.map((f) => f.id), [text.id, image.id]);
  assert.equal(alice.api.fileUrl(text.id), `${server.base}/api/v1/files/${text.id}`);
  const blob = await bob.api.downloadFile(text.id);
  assert.equal(await blob.text(), "hello file");
  const part = await bob.api.fetchFile(text.id, { range: "bytes=0-4" });
  assert.equal(part.status, 206);
  assert.equal(await part.text(), "hello");
  const thumb = await bob.api.fetchFile(image.id, { thumbnail: true });
  assert.equal(thumb.headers.get("content-type"), "image/png");
  const stranger = await newUser(server, "fs");
  await assert.rejects(stranger.api.downloadFile(text.id), (e) => e.code === "not_found" && e.status === 404);
});

test("uploads report progress through XMLHttpRequest when there is one", async () => {
  // Node has no XMLHttpRequest; this minimal one (over fetch) stands for the
  // browser's, to check the library's XHR path end to end against the server.
  class FakeXHR {
    constructor() {
      this.upload = {};
      this.headers = {};
    }
    open(method, url) {
      this.method = method;
      this.url = url;
    }
    setRequestHeader(k, v) {
      this.headers[k] = v;
    }
    getResponseHeader(name) {
      return this.res ? this.res.headers.get(name) : null;
    }
    async send(body) {
      this.upload.onprogress?.({ loaded: 0, total: 4, lengthComputable: true });
      try {
        // Serialise the form first, as a browser does before it sends.
        const encoded = new Response(body);
        const bytes = new Uint8Array(await encoded.arrayBuffer());
        const headers = { ...this.headers, "Content-Type": encoded.headers.get("content-type") };
        this.res = await fetch(this.url, { method: this.method, headers, body: bytes });
        this.upload.onprogress?.({ loaded: 4, total: 4, lengthComputable: true });
        this.status = this.res.status;
        this.responseText = await this.res.text();
        this.onload();
      } catch {
        this.onerror();
      }
    }
    abort() {
      this.onabort();
    }
  }
  const { token } = await newUser(server, "xhr");
  const api = new RestClient({ baseUrl: server.base, token, XMLHttpRequest: FakeXHR });
  const seen = [];
  const file = await api.uploadFile(new Blob(["abcd"]), { name: "a.txt", onProgress: (p) => seen.push(p.loaded) });
  assert.equal(file.size, 4);
  assert.deepEqual(seen, [0, 4]);
  const anon = new RestClient({ baseUrl: server.base, XMLHttpRequest: FakeXHR });
  await assert.rejects(anon.uploadFile(new Blob(["x"])), (e) => e.code === "unauthorized" && e.status === 401);
});

test("admin calls: notice, ban, unban, audit", async () => {
  const admin = new RestClient({ baseUrl: server.base });
  await admin.register({ username: "admin_js", password: "password-123" });
  const bob = await newUser(server, "ban");
  await admin.postNotice("maintenance soon");
  await assert.rejects(bob.api.postNotice("me too"), (e) => e.code === "forbidden" && e.status === 403);
  await admin.banUser(bob.user.id, { reason: "testing" });
  await assert.rejects(new RestClient({ baseUrl: server.base }).login(bob.username, bob.password), (e) => e.code === "forbidden");
  await admin.unbanUser(bob.user.id);
  await new RestClient({ baseUrl: server.base }).login(bob.username, bob.password);
  let audit;
  for (let i = 0; i < 50; i++) {
    audit = await admin.getAudit({ kind: "ban", limit: 5 });
    if (audit.events.length) break;
    await new Promise((r) => setTimeout(r, 100)); // audit events are written in batches
  }
  assert.equal(audit.events[0].kind, "ban");
  assert.equal(audit.events[0].target_id, bob.user.id);
  assert.deepEqual(await admin.health(), { status: "ok" });
  assert.equal((await admin.readiness()).status, "ready");
});
