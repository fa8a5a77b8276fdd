// Small helpers shared by the tests.

import WebSocket from "ws";
import { RestClient, RealtimeClient } from "../../src/index.js";

let counter = 0;

/** A username unique within the run (3 to 32 characters of [A-Za-z0-9_.-]). */
export function uniqueName(prefix = "u") {
  counter++;
  return `${prefix}${process.pid % 10000}_${counter}_${Math.floor(Math.random() * 1e4)}`.slice(0, 32);
}

/** Registers a fresh user; returns its RestClient (token set) and user. */
export async function newUser(server, prefix) {
  const api = new RestClient({ baseUrl: server.base });
  const username = uniqueName(prefix);
  const { user, token } = await api.register({ username, password: "password-123", display_name: username });
  return { api, user, token, username, password: "password-123" };
}

/** A RealtimeClient over npm `ws` (Node 20 has no global WebSocket), quick to reconnect in tests. */
export function realtime(api, options = {}) {
  return new RealtimeClient({
    rest: api,
    WebSocket,
    reconnect: { initialDelayMs: 100, maxDelayMs: 1000, tryAgainLaterMs: 200 },
    requestTimeoutMs: 10000,
    ...options,
  });
}

/** Resolves with the first payload of `event` for which `pred` holds. */
export function waitFor(client, event, pred = () => true, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for ${event}`));
    }, timeoutMs);
    const off = client.on(event, (payload) => {
      if (!pred(payload)) return;
      clearTimeout(timer);
      off();
      resolve(payload);
    });
  });
}

/** Polls `check` until it returns a truthy value. */
export async function eventually(check, timeoutMs = 10000, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Collects every `message` event of a client, by room. */
export function collectMessages(client) {
  const all = [];
  client.on("message", (f) => all.push(f.message));
  return {
    all,
    contents: (roomId) => all.filter((m) => m.room_id === roomId).map((m) => m.content),
    ids: (roomId) => all.filter((m) => m.room_id === roomId).map((m) => m.id),
  };
}

/**
 * A WebSocket class (npm `ws`) whose dials can be refused on demand, to keep
 * a client offline while the test changes the world: `cut()` drops the
 * current connection abruptly (as a lost network does) and refuses new
 * ones until `restore()`.
 */
export function gatedWebSocket() {
  const gate = { open: true, sockets: [], last: null };
  class GatedWebSocket extends WebSocket {
    constructor(url, protocols, options) {
      // Port 9 on loopback: nothing listens, the dial is refused at once.
      super(gate.open ? url : url.replace(/^(wss?:\/\/)[^/]+/, "$1127.0.0.1:9"), protocols, options);
      gate.sockets.push(this);
      gate.last = this;
    }
  }
  gate.WebSocket = GatedWebSocket;
  gate.cut = () => {
    gate.open = false;
    if (gate.last) gate.last.terminate();
  };
  gate.restore = () => {
    gate.open = true;
  };
  return gate;
}
