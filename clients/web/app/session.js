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
    fetching.set(
      id,
      rest
        .getUser(id)
        .then((fetched) => rememberUser(fetched))
        .catch(() => {})
        .finally(() => fetching.delete(id)),
    );
  }
  return null;
}

/** Puts a user in the cache (keeping a live presence seen since). */
export function rememberUser(fetched) {
  const known = state.users.get(fetched.id);
  state.users.set(fetched.id, { ...known, ...fetched });
  changed('users', fetched.id);
  return fetched;
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
