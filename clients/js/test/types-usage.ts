// Type-checked by CI (`tsc --noEmit -p test/tsconfig.json`), never run: a
// typical app's use of the library, so that index.d.ts stays complete and
// usable. A change that breaks this file breaks apps written in TypeScript.

import WebSocket from "ws";
import {
  ChatError,
  RestClient,
  RealtimeClient,
  compareIds,
  mergeMessages,
  msgpack,
  codecFor,
  idTime,
  newClientId,
  VERSION,
  type Message,
  type PendingMessage,
  type RoomSummary,
  type ConnectionState,
  type ServerFrame,
  type ErrorCode,
} from "../src/index.js";

async function app(): Promise<void> {
  const api = new RestClient({ baseUrl: "http://127.0.0.1:8080", timeoutMs: 10_000 });
  const { token, user } = await api.register({ username: "alice", password: "correct horse", display_name: "Alice" });
  const me: string = user.id;
  await api.login("alice", "correct horse");
  const room = await api.createRoom({ name: "general", visibility: "public", max_members: 50 });
  const { rooms }: { rooms: RoomSummary[] } = await api.listRooms();
  const dir = await api.publicRooms({ prefix: "gen", limit: 10 });
  const next: string | undefined = dir.next_cursor;
  await api.joinRoom(room.id);
  const members = await api.listMembers(room.id, { limit: 100 });
  const online: boolean = members.members[0].online;
  await api.allMembers(room.id);
  const page = await api.getMessages(room.id, { before: "123", limit: 20 });
  const more: boolean = page.has_more;
  const posted: Message = await api.postMessage(room.id, { content: "hi", reply_to: page.messages[0]?.id });
  await api.postMessage(room.id, "plain");
  await api.markRead(room.id, posted.id);
  const dm = await api.openDm("42");
  const file = await api.uploadFile(new Blob(["x"]), { name: "x.txt", onProgress: (p) => p.loaded / (p.total ?? 1) });
  const url: string = api.fileUrl(file.id);
  const thumb: string = api.thumbnailUrl(file.id);
  const blob: Blob = await api.downloadFile(file.id, { thumbnail: true });
  const res: Response = await api.fetchFile(file.id, { range: "bytes=0-1" });
  const notes = await api.getNotifications({ limit: 10 });
  await api.markNotificationsRead(notes.notifications[0].id);
  await api.searchUsers({ prefix: "al", limit: 5 });
  await api.getUser(me);
  await api.me();
  await api.updateProfile({ display_name: "A." });
  await api.changePassword("correct horse", "battery staple");
  await api.addMember(room.id, "7");
  await api.removeMember(room.id, "7");
  await api.leaveRoom(room.id);
  await api.getRoom(dm.id);
  await api.postNotice("maintenance at 5", { room_id: room.id });
  await api.banUser("7", { reason: "spam" });
  await api.unbanUser("7");
  const audit = await api.getAudit({ kind: "login", limit: 5 });
  const kind: string = audit.events[0].kind;
  await api.health();
  await api.readiness();
  const raw = await api.request<{ users: unknown[] }>("GET", "/users", { query: { prefix: "a" } });
  await api.logout({ all: true });

  const rt = new RealtimeClient({
    rest: api,
    codec: "msgpack",
    WebSocket: WebSocket as unknown as new (url: string, protocols?: string | string[]) => any,
    getToken: async () => (await api.login("alice", "battery staple")).token,
    reconnect: { initialDelayMs: 200, maxDelayMs: 10_000 },
    connectTimeoutMs: 5000,
    pingIntervalMs: 20_000,
    pongTimeoutMs: 5000,
  });
  const off = rt.on("message", (f) => {
    const m: Message = f.message;
    const list: Message[] = mergeMessages([], [m]);
    compareIds(m.id, list[0].id);
  });
  off();
  rt.on("state", ({ state, previous }) => {
    const s: ConnectionState = state;
    void previous;
    void s;
  });
  rt.on("pending", (p: PendingMessage) => p.status === "failed" && p.error?.code);
  rt.on("typing", (t) => t.typing && t.user_id);
  rt.on("error", (e) => e.retry_after_ms);
  rt.on("closed", (c) => c.error?.code);
  rt.on("frame", (f: ServerFrame) => f.type);
  rt.on("notification", (n) => n.notification.read);
  rt.on("resync", (r) => r.replayed);
  const ready = await rt.connect();
  const again: boolean = ready.reconnected;
  const pending = rt.send(room.id, "hello @bob", { reply_to: posted.id });
  const ack = await pending.done;
  const mid: string = ack.message_id;
  rt.pendingMessages(room.id).forEach((p) => rt.discard(p.client_id));
  rt.retry(pending.client_id);
  await rt.edit(room.id, mid, "edited");
  await rt.delete(room.id, mid);
  rt.typing(room.id, true);
  await rt.read(room.id, mid);
  const h = await rt.history(room.id, { before: mid, limit: 50 });
  h.messages.forEach((m) => m.deleted);
  await rt.join(room.id);
  await rt.leave(room.id);
  await rt.ping();
  rt.markSeen(room.id, mid);
  const seen: Record<string, string> = rt.lastSeen();
  rt.reconnectNow();
  rt.setToken(token);
  rt.close();

  try {
    await api.me();
  } catch (err) {
    if (err instanceof ChatError) {
      const code: ErrorCode = err.code;
      const wait: number | undefined = err.retryAfterMs;
      const status: number = err.status;
      void [code, wait, status, err.retryable];
    }
  }
  const bytes: Uint8Array = msgpack.encode({ a: 1n });
  msgpack.decode(bytes);
  codecFor("json").encode({ type: "ping" });
  void [rooms, next, online, more, url, thumb, blob, res, kind, raw, again, seen, idTime(mid), newClientId(), VERSION];
}

void app;
