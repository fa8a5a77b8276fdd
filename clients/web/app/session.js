// The signed-in session: the REST and realtime clients of the library, the
// token, and the users seen so far.
//
// The token lives in memory and in sessionStorage: a reload of the tab
// keeps the user signed in, but it is not shared with other tabs, does not
// outlive the tab, and is never put in a URL (the library passes it to the
// WebSocket as `access_token`, the one place the protocol asks for it) or
// logged. localStorage would keep it on disk after the browser closes,
// where anything that later runs on the origin could read it.

import { RestClient, RealtimeClient } from './lib/index.js';
import { state, changed, dmPeer } from './store.js';

const TOKEN_KEY = 'chat.token';

let unauthorized = () => {};

export const rest = new RestClient({
  token: sessionStorage.getItem(TOKEN_KEY),
  onUnauthorized: (error) => unauthorized(error),
});

/** What to do when the server no longer takes the token (expired, revoked). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/** The realtime client of the signed-in user (null when signed out). */
export let realtime = null;

export function saveToken(token) {
  rest.setToken(token);
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function hasToken() {
  return Boolean(rest.token);
}

/** Starts the realtime client (the library reconnects and resumes by itself). */
export function startRealtime() {
  // No way to get a new token without the password: on 4001 the app signs
  // out (the `closed` event), so getToken gives up.
  realtime = new RealtimeClient({ rest, getToken: () => null });
  return realtime;
}

export function stopRealtime() {
  const stopping = realtime;
  realtime = null;
  if (stopping) stopping.close();
}

const fetching = new Map();

/** The user, from the cache or fetched once (then "users" changes). */
export function user(id) {
  const known = state.users.get(id);
  if (known) return known;
  if (!fetching.has(id) && rest.token) {
    const asked = presenceMark();
    fetching.set(
      id,
      rest
        .getUser(id)
        .then((fetched) => rememberUser(fetched, asked))
        .catch(() => {})
        .finally(() => fetching.delete(id)),
    );
  }
  return null;
}

/** Presence frames heard so far: each one's number orders it against reads. */
let presenceFrames = 0;
/** user id → {online, last_seen_at, heard}: the last presence frame heard of them. */
const presenceHeard = new Map();

/** Where presence stands: taken before a read whose answer carries `online`. */
export function presenceMark() {
  return presenceFrames;
}

/** A `presence` frame: newer than any answer read before it. */
export function heardPresence(userId, online, lastSeenAt) {
  presenceHeard.set(userId, { online, last_seen_at: lastSeenAt, heard: ++presenceFrames });
  const known = state.users.get(userId);
  if (known) {
    state.users.set(userId, { ...known, online, last_seen_at: lastSeenAt });
    changed('users', userId);
  }
}

/**
 * Puts a user in the cache and answers the entry. `asked` is the
 * `presenceMark()` taken before the read: a presence frame heard since is
 * newer than the answer's `online`, and wins over it.
 */
export function rememberUser(fetched, asked = presenceFrames) {
  const entry = { ...state.users.get(fetched.id), ...fetched };
  const live = presenceHeard.get(fetched.id);
  if (live && live.heard > asked) {
    entry.online = live.online;
    entry.last_seen_at = live.last_seen_at;
  }
  state.users.set(fetched.id, entry);
  changed('users', fetched.id);
  return entry;
}

/** The name to show for a user id. */
export function displayName(id) {
  if (state.me && id === state.me.id) return state.me.display_name || state.me.username;
  const known = user(id);
  return known ? known.display_name || known.username : '…';
}

/** The name to show for a room (the other user's name for a DM). */
export function roomName(room) {
  return room.kind === 'dm' || room.id.startsWith('dm:') ? displayName(dmPeer(room.id)) : room.name;
}
