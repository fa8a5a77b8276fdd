// RealtimeClient: the WebSocket half of the library.
//
// One object per signed-in user. It dials `/ws` with the token, keeps the
// connection alive (client pings, reconnect with exponential backoff and
// full jitter, at once after 1012 "server restarting"), resumes every room
// from the last message seen so nothing is missed (duplicates dropped by
// id, see tracker.js), queues sends while offline and reconciles them by
// `ack` (see outbox.js), matches answers to requests by `ref`, and asks the
// app for a new token when the server closes with 4001.
//
// Connection states: idle → connecting → open ⇄ reconnecting → closed.
// "closed" is final: close(), a close code that means "do not come back"
// (1008 policy, 1002 protocol error, 4xxx other than 4001 and 4003), or a
// 4001 for which the app had no new token.

import { ChatError } from "./errors.js";
import { Emitter } from "./emitter.js";
import { Backoff } from "./backoff.js";
import { codecFor } from "./codec.js";
import { SeenTracker } from "./tracker.js";
import { Outbox } from "./outbox.js";
import { RestClient } from "./rest.js";
import { Requests } from "./requests.js";

const RESUME_MAX_ROOMS = 1000; // the server refuses more in one `resume`
const HISTORY_PAGE = 100;
const SENT_GRACE_MS = 5000; // how long an acked send stays listed while its message is awaited

/** Close codes after which the client does not dial again. */
function isFinalClose(code) {
  return code === 1008 || code === 1002 || (code >= 4000 && code !== 4001 && code !== 4003);
}

function wsUrlFrom(baseUrl) {
  let base = String(baseUrl ?? "").replace(/\/+$/, "");
  if (!base) {
    const loc = globalThis.location;
    if (!loc || !loc.host) throw new TypeError("RealtimeClient: no baseUrl or url, and no page location to derive one from");
    base = `${loc.protocol}//${loc.host}`;
  }
  return `${base.replace(/^http(s?):/i, "ws$1:")}/ws`;
}

export class RealtimeClient extends Emitter {
  constructor(options = {}) {
    super();
    this.rest = options.rest ?? null;
    this._url = options.url ?? null;
    this._baseUrl = options.baseUrl ?? (this.rest ? this.rest.baseUrl : undefined);
    this._token = options.token ?? (this.rest ? this.rest.token : null);
    this._getToken = options.getToken ?? null;
    this._codec = codecFor(options.codec);
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket ?? null;
    this._reconnect = options.reconnect !== false;
    this._backoff = new Backoff(options.reconnect || {});
    this._requestTimeoutMs = options.requestTimeoutMs ?? 15000;
    this._pingIntervalMs = options.pingIntervalMs ?? null;
    this._pongTimeoutMs = options.pongTimeoutMs ?? 10000;
    this._connectTimeoutMs = options.connectTimeoutMs ?? 15000;
    this._resumeEnabled = options.resume !== false;
    this._maxInFlight = options.maxInFlight ?? 20;
    this._ackTimeoutMs = options.ackTimeoutMs ?? 15000;
    this._ackTimers = new Map(); // client_id → timer of a send on the wire

    this._state = "idle";
    this._ws = null;
    this._everReady = false;
    this._readyWaiters = [];
    this._requests = new Requests(this._requestTimeoutMs);
    this._seq = 0; // heartbeat ping refs
    this._timers = { reconnect: null, ping: null, pong: null, pump: null, connect: null };
    this._lastFrameAt = 0;
    this._handshakeFailures = 0;
    this._tokenRefreshes = 0;
    this._last1012 = false;
    this._sendPausedUntil = 0;
    this._sendBackoff = new Backoff({ initialDelayMs: 1000, maxDelayMs: 30000 });
    this._rooms = new Set(); // rooms of the user, as of ready / room_added / room_removed
    this._tracker = new SeenTracker();
    this._outbox = new Outbox((pending) => this.emit("pending", pending));

    this.user = null;
    this.sessionId = null;
    this.heartbeatIntervalMs = null;
  }

  get state() {
    return this._state;
  }

  get codec() {
    return this._codec.name;
  }

  _setState(state) {
    if (state === this._state) return;
    const previous = this._state;
    this._state = state;
    this.emit("state", { state, previous });
  }

  // ------------------------------------------------------------ lifecycle

  connect() {
    const promise = new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
    if (this._state === "idle" || this._state === "closed") {
      this._closing = false;
      this._setState("connecting");
      this._dial();
    } else if (this._state === "open" && this._lastReady) {
      this._resolveReady(this._lastReady);
    }
    return promise;
  }

  close(code = 1000, reason = "client closed") {
    if (this._state === "closed") return;
    this._closing = true;
    const ws = this._ws;
    this._detach();
    if (ws) {
      try {
        ws.close(code, reason);
      } catch {
        ws.close();
      }
    }
    this._final(code, reason, undefined);
  }

  setToken(token) {
    this._token = token ?? null;
    if (this.rest && token) this.rest.setToken(token);
  }

  reconnectNow() {
    if (this._state === "closed" || this._state === "idle") return;
    if (this._ws) this._drop(1000, "reconnect requested", 0);
    else {
      clearTimeout(this._timers.reconnect);
      this._dial();
    }
  }

  _wsUrl() {
    const url = this._url ?? wsUrlFrom(this._baseUrl);
    const sep = url.includes("?") ? "&" : "?";
    return `${url}${sep}access_token=${encodeURIComponent(this._token)}`;
  }

  _dial() {
    clearTimeout(this._timers.reconnect);
    this._timers.reconnect = null;
    if (this._state === "closed") return;
    if (!this._WebSocket) {
      this._final(1000, "no WebSocket", new ChatError("network", "no WebSocket implementation: pass options.WebSocket"));
      return;
    }
    // With a REST client, its token is the latest (the app may have logged in again with it).
    if (this.rest && this.rest.token) this._token = this.rest.token;
    if (!this._token) {
      this._onTokenRejected(4001, "no token");
      return;
    }
    let ws;
    try {
      ws = new this._WebSocket(this._wsUrl(), [this._codec.protocol]);
    } catch (err) {
      this._final(1000, "bad url", new ChatError("network", `cannot open the WebSocket: ${err && err.message}`, { cause: err }));
      return;
    }
    try {
      ws.binaryType = "arraybuffer";
    } catch {
      // React Native's WebSocket delivers ArrayBuffers already.
    }
    this._ws = ws;
    this._opened = false;
    this._gotReady = false;
    // A dial to a server that accepts TCP but never answers (stopped,
    // overloaded) would otherwise hang for as long as the platform likes.
    clearTimeout(this._timers.connect);
    this._timers.connect = setTimeout(() => {
      this._timers.connect = null;
      if (ws === this._ws && !this._gotReady) this._drop(1006, "no ready within the connect timeout", undefined);
    }, this._connectTimeoutMs);
    ws.onopen = () => {
      if (ws === this._ws) this._opened = true;
    };
    ws.onmessage = (ev) => {
      if (ws === this._ws) this._onData(ev.data);
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (ws === this._ws) this._onClose(ev.code ?? 1006, ev.reason ?? "");
    };
  }

  _detach() {
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {}; // a late error event must not go unhandled (npm ws throws on those)
    }
    clearInterval(this._timers.ping);
    clearTimeout(this._timers.pong);
    clearTimeout(this._timers.connect);
    this._timers.ping = this._timers.pong = this._timers.connect = null;
  }

  /** Drops the current connection without waiting for its close handshake (dead link, reconnectNow). */
  _drop(code, reason, delayMs) {
    const ws = this._ws;
    this._detach();
    try {
      ws.close(code === 1000 ? 1000 : 4000, reason);
    } catch {
      // Already closing.
    }
    this._lost(code, reason, delayMs);
  }

  _onClose(code, reason) {
    this._detach();
    if (this._closing || this._state === "closed") return;
    const opened = this._opened;
    const gotReady = this._gotReady;
    this._gotReady = false;
    if (code === 4001) return this._onTokenRejected(code, reason);
    if (isFinalClose(code)) {
      this._requests.failInFlight(new ChatError("disconnected", `connection closed: ${code} ${reason}`));
      this._outbox.requeueInFlight();
      return this._final(code, reason, new ChatError(code === 1008 ? "forbidden" : "bad_request", `the server closed the connection for good: ${code} ${reason}`));
    }
    if (!gotReady && !opened) {
      // Refused before the upgrade: the browser says 1006 and nothing else. A
      // token the server no longer takes would make us dial forever, so after
      // two such failures ask REST whether it is the token.
      this._handshakeFailures++;
      if (this._handshakeFailures >= 2 && this._handshakeFailures % 2 === 0) {
        this._lost(code, reason, null, true);
        return;
      }
    }
    let delay;
    if (code === 1012 && !this._last1012) delay = 0;
    else if (code === 1013) delay = this._backoff.nextLater();
    this._last1012 = code === 1012;
    this._lost(code, reason, delay);
  }

  /**
   * The connection is gone and we will dial again: fail requests in flight,
   * put unacked sends back in the queue, schedule the next attempt.
   */
  _lost(code, reason, delayMs, probeToken = false) {
    this._requests.failInFlight(new ChatError("disconnected", `connection lost: ${code} ${reason}`.trim()));
    this._outbox.requeueInFlight();
    if (!this._reconnect) {
      return this._final(code, reason, new ChatError("disconnected", `connection lost: ${code} ${reason}`.trim()));
    }
    const delay = delayMs ?? this._backoff.next();
    this._setState("reconnecting");
    this.emit("disconnected", { code, reason, willReconnect: true, delayMs: delay });
    this.emit("reconnecting", { attempt: this._backoff.attempt, delayMs: delay });
    this._timers.reconnect = setTimeout(() => {
      this._timers.reconnect = null;
      if (probeToken) this._probeToken();
      else this._dial();
    }, delay);
  }

  /** After failed handshakes: is it the token? A 401 from REST says so. */
  async _probeToken() {
    // A client of its own: the probe must not fire the app's onUnauthorized.
    const probe = new RestClient({ baseUrl: this._restBase(), token: this._token, fetch: this.rest ? this.rest._fetch : undefined });
    let unauthorized = false;
    try {
      await probe.me();
    } catch (err) {
      unauthorized = err instanceof ChatError && err.code === "unauthorized";
    }
    if (this._state === "closed") return;
    if (unauthorized) this._onTokenRejected(4001, "token refused at the handshake");
    else this._dial();
  }

  _restBase() {
    if (this._baseUrl !== undefined) return this._baseUrl;
    if (this._url) return this._url.replace(/^ws(s?):/i, "http$1:").replace(/\/ws(\?.*)?$/, "");
    return "";
  }

  /** 4001 (expired, revoked) or a token refused at the handshake: ask the app for a new one. */
  async _onTokenRejected(code, reason) {
    this._requests.failInFlight(new ChatError("disconnected", `connection closed: ${code} ${reason}`));
    this._outbox.requeueInFlight();
    this.emit("token_expired", { code, reason });
    if (!this._getToken) {
      return this._final(code, reason, new ChatError("unauthorized", `token refused (${reason}) and no getToken callback`));
    }
    this._setState("reconnecting");
    this.emit("disconnected", { code, reason, willReconnect: true, delayMs: 0 });
    let token;
    try {
      token = await this._getToken();
    } catch (err) {
      return this._final(code, reason, new ChatError("unauthorized", `getToken failed: ${err && err.message}`, { cause: err }));
    }
    if (this._state === "closed") return;
    if (!token) return this._final(code, reason, new ChatError("unauthorized", "getToken gave no token"));
    this._token = token;
    if (this.rest) this.rest.setToken(token);
    // A callback that keeps returning a refused token must not make us spin.
    this._tokenRefreshes++;
    const delay = this._tokenRefreshes > 1 ? this._backoff.next() : 0;
    this._timers.reconnect = setTimeout(() => this._dial(), delay);
  }

  _final(code, reason, error) {
    this._detach();
    clearTimeout(this._timers.reconnect);
    clearTimeout(this._timers.pump);
    this._timers.reconnect = this._timers.pump = null;
    for (const timer of this._ackTimers.values()) clearTimeout(timer);
    this._ackTimers.clear();
    const why = error ?? new ChatError("closed", "the client was closed");
    this._requests.failInFlight(new ChatError("closed", why.message), true);
    this._outbox.failAll(new ChatError("closed", `not sent: ${why.message}`));
    this._outbox.releaseAll();
    for (const w of this._readyWaiters.splice(0)) w.reject(why);
    this._setState("closed");
    this.emit("closed", error ? { code, reason, error } : { code, reason });
  }

  // ------------------------------------------------------------ frames in

  _onData(data) {
    let frame;
    try {
      frame = this._codec.decode(data);
    } catch {
      return; // Not a frame we can read: ignore it rather than drop the connection.
    }
    if (!frame || typeof frame.type !== "string") return;
    this._lastFrameAt = Date.now();
    this.emit("frame", frame);
    switch (frame.type) {
      case "ready":
        return this._onReady(frame);
      case "message":
        return this._onMessage(frame.message, true);
      case "ack":
        if (frame.client_id && this._outbox.settle(frame.client_id, frame, true)) {
          this._sendBackoff.reset();
          // Its `message` normally follows at once; if it was lost, stop waiting for it.
          const clientId = frame.client_id;
          const timer = setTimeout(() => this._outbox.release(clientId), SENT_GRACE_MS);
          if (typeof timer === "object" && timer && typeof timer.unref === "function") timer.unref();
        }
        this._requests.answer(frame);
        this._pump();
        return this.emit("ack", frame);
      case "error":
        return this._onError(frame);
      case "room_added":
        this._rooms.add(frame.room.id);
        if (!this._tracker.known(frame.room.id)) this._tracker.track(frame.room.id, frame.room.last_message && frame.room.last_message.id);
        break;
      case "room_removed":
        this._rooms.delete(frame.room_id);
        this._tracker.forget(frame.room_id);
        break;
      default:
        break;
    }
    this._requests.answer(frame);
    this.emit(frame.type, frame);
  }

  _onReady(frame) {
    const reconnected = this._everReady;
    this._everReady = true;
    this._gotReady = true;
    clearTimeout(this._timers.connect);
    this._timers.connect = null;
    this._handshakeFailures = 0;
    this._tokenRefreshes = 0;
    this._last1012 = false;
    this._backoff.reset();
    this.user = frame.user;
    this.sessionId = frame.session_id;
    this.heartbeatIntervalMs = frame.heartbeat_interval_ms;

    const inReady = new Set(frame.rooms.map((r) => r.id));
    // A truncated `ready` lists only the first rooms: one missing from it
    // may still be the user's, so its resume point is kept (the server
    // answers for rooms the user has left).
    const truncated = frame.rooms_truncated === true;
    let points = {};
    if (reconnected && this._resumeEnabled) {
      for (const [roomId, from] of Object.entries(this._tracker.resumePoints())) {
        if (inReady.has(roomId) || truncated) points[roomId] = from;
        else this._tracker.forget(roomId); // left or removed while offline
      }
    }
    this._rooms = truncated ? new Set([...this._rooms, ...inReady]) : inReady;
    for (const room of frame.rooms) {
      if (!this._tracker.known(room.id)) this._tracker.track(room.id, room.last_message && room.last_message.id);
    }

    const ready = { ...frame, reconnected };
    this._lastReady = ready;
    this._setState("open");
    this._resolveReady(ready); // before the event: a listener that closes the client does not undo connect()
    this.emit("ready", ready);

    // A listener of `ready` may have closed the client, or the link may already be gone.
    if (this._state !== "open" || !this._ws) return;
    this._startPing();
    if (Object.keys(points).length) this._resume(points);
    for (const entry of this._requests.unsent()) {
      try {
        this._write(entry);
      } catch {
        break; // The connection went away; they wait for the next one.
      }
    }
    this._pump();
  }

  _resolveReady(ready) {
    for (const w of this._readyWaiters.splice(0)) w.resolve(ready);
  }

  _onMessage(message, live) {
    if (!message) return;
    if (this._tracker.accept(message)) {
      if (!this._rooms.has(message.room_id) && live) this._rooms.add(message.room_id);
      this.emit("message", { type: "message", message });
    }
    // Our own message is stored: as good as its ack (it is sent only after
    // the commit). Settled after the `message` event, so that an app showing
    // pending messages has the real one before the optimistic one goes.
    if (message.client_id && this.user && message.sender_id === this.user.id) {
      const settled = this._outbox.settle(message.client_id, {
        type: "ack",
        client_id: message.client_id,
        message_id: message.id,
        created_at: message.created_at,
      });
      if (settled) this._pump();
    }
  }

  _onError(frame) {
    const err = ChatError.fromFrame(frame);
    const record = frame.client_id ? this._outbox.get(frame.client_id) : undefined;
    if (record && record.pending.status !== "sent") {
      if (frame.code === "rate_limited" || frame.code === "unavailable") {
        this._outbox.setStatus(frame.client_id, "queued");
        const wait = frame.code === "rate_limited" ? (err.retryAfterMs ?? 1000) : this._sendBackoff.next() + 500;
        this._pauseSends(wait);
      } else {
        this._outbox.fail(frame.client_id, err);
        this._pump();
      }
    } else if (frame.ref) {
      this._requests.fail(frame.ref, err);
    }
    this.emit("error", frame);
  }

  // ------------------------------------------------------------ frames out

  _write(entry) {
    this._writeFrame(entry.frame);
    entry.sent = true;
  }

  _writeFrame(frame) {
    const ws = this._ws;
    if (!ws || this._state !== "open") throw new ChatError("disconnected", "not connected");
    ws.send(this._codec.encode(frame));
  }

  sendFrame(frame) {
    this._writeFrame(frame);
  }

  /** Sends a frame with a fresh ref; queued until the connection is open. */
  request(frame, options) {
    if (this._state === "closed") return Promise.reject(new ChatError("closed", "the client is closed"));
    const { entry, promise } = this._requests.add(frame, options);
    if (this._state === "open" && this._ws) {
      try {
        this._write(entry);
      } catch (err) {
        const error = err instanceof ChatError ? err : new ChatError("network", String(err), { cause: err });
        this._requests.settle(entry.frame.ref, null, error);
      }
    }
    return promise;
  }

  _pauseSends(ms) {
    this._sendPausedUntil = Date.now() + ms;
    clearTimeout(this._timers.pump);
    this._timers.pump = setTimeout(() => {
      this._timers.pump = null;
      // Timers may fire a little before Date.now() reaches the mark: the
      // pause is over when its timer says so.
      this._sendPausedUntil = 0;
      this._pump();
    }, ms);
  }

  /** Writes queued sends, oldest first, up to maxInFlight unacked at once. */
  _pump() {
    if (this._state !== "open" || !this._ws || Date.now() < this._sendPausedUntil) return;
    let inFlight = this._outbox.inFlight();
    for (const pending of this._outbox.queued()) {
      if (inFlight >= this._maxInFlight) break;
      this._outbox.setStatus(pending.client_id, "sending");
      try {
        this._writeFrame(this._outbox.frame(pending));
      } catch {
        this._outbox.setStatus(pending.client_id, "queued");
        return;
      }
      this._awaitAck(pending.client_id);
      inFlight++;
    }
  }

  /**
   * A send on the wire whose `ack` (or `error`) has not come within
   * ackTimeoutMs goes back to the queue and out again, with the same
   * `client_id`: live delivery is at most once, so an answer can be lost
   * while the connection stays up, and without this the send would hold
   * its place in flight for the connection's life. The server answers the
   * repeat with the original `ack` if the first attempt was stored.
   */
  _awaitAck(clientId) {
    clearTimeout(this._ackTimers.get(clientId));
    const timer = setTimeout(() => {
      this._ackTimers.delete(clientId);
      if (this._outbox.get(clientId)?.pending.status !== "sending") return;
      this._outbox.setStatus(clientId, "queued");
      this._pump();
    }, this._ackTimeoutMs);
    this._ackTimers.set(clientId, timer);
  }

  _startPing() {
    const every = Math.max(1000, this._pingIntervalMs ?? this.heartbeatIntervalMs ?? 25000);
    clearInterval(this._timers.ping);
    this._timers.ping = setInterval(() => {
      if (this._state !== "open" || !this._ws) return;
      const sentAt = Date.now();
      try {
        this._writeFrame({ type: "ping", ref: `hb${++this._seq}` });
      } catch {
        return;
      }
      clearTimeout(this._timers.pong);
      this._timers.pong = setTimeout(() => {
        if (this._lastFrameAt < sentAt && this._ws) this._drop(1006, "no answer to ping", undefined);
      }, this._pongTimeoutMs);
    }, every);
  }

  // ------------------------------------------------------------ resume

  async _resume(points) {
    const rooms = Object.keys(points);
    for (let i = 0; i < rooms.length; i += RESUME_MAX_ROOMS) {
      const chunk = {};
      for (const roomId of rooms.slice(i, i + RESUME_MAX_ROOMS)) chunk[roomId] = points[roomId];
      this._tracker.hold(chunk);
      let resumed;
      try {
        // A room we can no longer read answers an `error` with this ref; only `resumed` ends it.
        resumed = await this.request({ type: "resume", rooms: chunk }, { keepOnError: true });
      } catch {
        return; // Lost again: the held points are where the next connection resumes from.
      }
      for (const roomId of Object.keys(chunk)) {
        const r = resumed.rooms[roomId];
        if (!r) {
          this._tracker.release(roomId);
          continue;
        }
        let replayed = r.replayed;
        if (!r.complete) {
          try {
            replayed += await this._catchUp(roomId, this._tracker.replayCursor(roomId, r.replayed));
          } catch {
            return;
          }
        }
        this._tracker.release(roomId);
        this.emit("resync", { room_id: roomId, replayed });
      }
    }
  }

  /** Fetches the messages after `after` with `history` until none remain; returns how many. */
  async _catchUp(roomId, after) {
    let count = 0;
    for (;;) {
      const page = await this.request({ type: "history", room_id: roomId, after, limit: HISTORY_PAGE });
      for (const m of page.messages) this._onMessage(m, false);
      count += page.messages.length;
      if (!page.has_more || page.messages.length === 0) return count;
      after = page.messages[page.messages.length - 1].id;
    }
  }

  lastSeen() {
    return this._tracker.lastSeen();
  }

  markSeen(roomId, messageId) {
    this._tracker.markSeen(roomId, messageId);
  }

  // ------------------------------------------------------------ actions

  send(roomId, content, options = {}) {
    if (this._state === "closed") throw new ChatError("closed", "the client is closed");
    const pending = this._outbox.add(String(roomId), String(content), options);
    this._pump();
    return pending;
  }

  pendingMessages(roomId) {
    return this._outbox.list(roomId);
  }

  retry(clientId) {
    const pending = this._outbox.retry(clientId);
    this._pump();
    return pending;
  }

  discard(clientId) {
    return this._outbox.discard(clientId);
  }

  edit(roomId, messageId, content) {
    const id = String(messageId);
    return this.request(
      { type: "edit", room_id: roomId, message_id: id, content },
      { match: (f) => f.type === "message_updated" && f.message.id === id },
    );
  }

  delete(roomId, messageId) {
    const id = String(messageId);
    return this.request(
      { type: "delete", room_id: roomId, message_id: id },
      { match: (f) => f.type === "message_deleted" && f.message_id === id },
    );
  }

  typing(roomId, typing) {
    if (this._state !== "open") return;
    try {
      this._writeFrame({ type: "typing", room_id: roomId, typing: !!typing });
    } catch {
      // Typing is best effort.
    }
  }

  read(roomId, messageId) {
    const id = String(messageId);
    return this.request(
      { type: "read", room_id: roomId, message_id: id },
      { match: (f) => f.type === "read" && f.room_id === roomId && f.message_id === id && this.user && f.user_id === this.user.id },
    );
  }

  history(roomId, query = {}) {
    const frame = { type: "history", room_id: roomId };
    if (query.before !== undefined) frame.before = String(query.before);
    if (query.after !== undefined) frame.after = String(query.after);
    if (query.limit !== undefined) frame.limit = query.limit;
    return this.request(frame);
  }

  join(roomId) {
    if (this._rooms.has(roomId)) return Promise.resolve(undefined);
    return this.request({ type: "join", room_id: roomId }, { match: (f) => f.type === "room_added" && f.room.id === roomId });
  }

  leave(roomId) {
    return this.request({ type: "leave", room_id: roomId }, { match: (f) => f.type === "room_removed" && f.room_id === roomId });
  }

  ping() {
    return this.request({ type: "ping" });
  }
}
