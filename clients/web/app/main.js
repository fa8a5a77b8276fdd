// The chat web app: sign-in, then the room list, the open room and the
// side panels, all over the client library (./lib/, the same files as
// clients/js/src). No build step: these ES modules are what the browser
// runs, embedded in chatd and served at /app/.

import { $, userText } from './dom.js';
import { state, on, changed, addMessages, whenLoaded } from './store.js';
import { rest, saveToken, hasToken, startRealtime, stopRealtime, rememberUser, heardPresence, displayName, roomName, user, onUnauthorized } from './session.js';
import { initSidebar, avatar } from './sidebar.js';
import { initTimeline, loadRoom, catchUp, markReadIfSeen, roomOpened, cancelEdit, cancelDelete } from './timeline.js';
import { initComposer, resetComposer, cancelReply, closeSuggestions } from './composer.js';
import { initPanels, closePanel, refreshPanel, showPresence } from './panels.js';
import { compareIds } from './lib/index.js';

const ROOM_KEY = 'chat.room';
/** A typing indicator nobody renewed is dropped after this long. */
const TYPING_TTL_MS = 6000;

// ------------------------------------------------------------- sign-in

let signingUp = false;

function showAuth(message) {
  $('app').hidden = true;
  $('auth').hidden = false;
  const error = $('auth-error');
  error.textContent = message || '';
  error.hidden = !message;
  $('auth-username').focus();
}

function setAuthMode(signUp) {
  signingUp = signUp;
  $('auth-title').textContent = signUp ? 'Create an account' : 'Sign in';
  $('auth-submit').textContent = signUp ? 'Create account' : 'Sign in';
  $('auth-display-row').hidden = !signUp;
  $('auth-password').autocomplete = signUp ? 'new-password' : 'current-password';
  $('auth-switch-text').textContent = signUp ? 'Have an account?' : 'New here?';
  $('auth-switch').textContent = signUp ? 'Sign in' : 'Create an account';
  $('auth-error').hidden = true;
}

async function submitAuth(event) {
  event.preventDefault();
  const username = $('auth-username').value.trim();
  const password = $('auth-password').value;
  if (!username || !password) return showAuth('Enter a username and a password.');
  const submit = $('auth-submit');
  submit.disabled = true;
  try {
    const input = { username, password };
    const display = $('auth-display').value.trim();
    if (signingUp && display) input.display_name = display;
    const result = signingUp ? await rest.register(input) : await rest.login(username, password);
    saveToken(result.token);
    $('auth-password').value = '';
    await start(result.user);
  } catch (error) {
    showAuth(error.message || 'Could not sign in.');
  } finally {
    submit.disabled = false;
  }
}

async function logout() {
  try {
    await rest.logout();
  } catch {
    // Signed out locally whatever the server says.
  }
  signOut();
}

/** Forgets the session and shows the sign-in form. */
function signOut(message) {
  // First, so that the realtime client's `closed` event finds nobody to sign out.
  state.me = null;
  stopRealtime();
  saveToken(null);
  sessionStorage.removeItem(ROOM_KEY);
  state.rooms.clear();
  state.timelines.clear();
  state.current = null;
  state.unreadNotifications = 0;
  state.heardWhileCounting = null;
  document.body.classList.remove('room-open');
  closePanel();
  setBanner(null);
  showAuth(message);
}

// ------------------------------------------------------------- the app

async function start(me) {
  state.me = me;
  rememberUser(me);
  $('auth').hidden = true;
  $('app').hidden = false;
  renderMe();
  const realtime = startRealtime();
  wire(realtime);
  try {
    await realtime.connect();
  } catch (error) {
    return signOut(error.message);
  }
  const saved = sessionStorage.getItem(ROOM_KEY);
  if (saved && state.rooms.has(saved)) openRoom(saved, { focus: false });
}

function renderMe() {
  const me = state.me;
  const slot = $('me-avatar');
  slot.replaceWith(Object.assign(avatar(me.id, me.display_name || me.username, { presence: state.connection === 'open' }), { id: 'me-avatar' }));
  $('me-name').textContent = me.display_name || me.username;
  $('me-username').textContent = `@${me.username}`;
}

// Read at every `ready`: mentions made while the connection was down come
// with no live frame. A notification heard while the page is on its way
// may be missing from it, so it is counted on top unless the page lists it.
async function loadNotificationCount() {
  const heard = new Set();
  state.heardWhileCounting = heard;
  try {
    const page = await rest.getNotifications({ limit: 100 });
    if (state.heardWhileCounting !== heard) return; // a newer read, or the panel's mark, answers
    const listed = new Set(page.notifications.map((notification) => notification.id));
    const unread = page.notifications.filter((notification) => !notification.read).length;
    state.unreadNotifications = unread + [...heard].filter((id) => !listed.has(id)).length;
    changed('notifications');
  } catch {
    // the badge stays as it is
  } finally {
    if (state.heardWhileCounting === heard) state.heardWhileCounting = null;
  }
}

function renderNotificationBadge() {
  const badge = $('notifications-badge');
  const count = state.unreadNotifications;
  badge.textContent = count > 99 ? '99+' : String(count);
  badge.hidden = count === 0;
  $('open-notifications').setAttribute('aria-label', count ? `Notifications, ${count} unread` : 'Notifications');
}

/** Opens a room: its history, the composer, on phones the conversation view. */
function openRoom(roomId, { focus = true } = {}) {
  const room = state.rooms.get(roomId);
  if (!room) return;
  if (state.current !== roomId) {
    resetComposer();
    roomOpened();
  }
  state.current = roomId;
  sessionStorage.setItem(ROOM_KEY, roomId);
  document.body.classList.add('room-open');
  $('composer').hidden = false;
  $('open-members').disabled = false;
  renderHeader();
  changed('rooms');
  changed('typing');
  loadRoom(roomId);
  if (focus) $('composer-input').focus();
}

function closeRoomView() {
  document.body.classList.remove('room-open');
  const item = document.querySelector(`#room-list li[data-room-id="${CSS.escape(state.current || '')}"] button`);
  if (item) item.focus();
}

function renderHeader() {
  const room = state.current && state.rooms.get(state.current);
  if (!room) return;
  const dm = room.id.startsWith('dm:');
  $('room-title').textContent = dm || room.visibility === 'private' ? roomName(room) : `# ${room.name}`;
  let subtitle;
  if (dm) {
    const [, lo, hi] = room.id.split(':');
    const peer = user(lo === state.me.id ? hi : lo);
    subtitle = peer ? (peer.online ? 'online' : 'offline') : '';
  } else {
    subtitle = `${room.member_count} member${room.member_count === 1 ? '' : 's'} · ${room.visibility}`;
  }
  $('room-subtitle').textContent = subtitle;
  document.title = `${roomName(room)} · Chat`;
}

function renderTyping() {
  const line = $('typing');
  const roomId = state.current;
  const typers = roomId && state.typing.get(roomId);
  const names = typers ? [...typers.keys()].map(displayName) : [];
  line.textContent =
    names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : names.length === 2 ? `${names[0]} and ${names[1]} are typing…` : 'Several people are typing…';
}

// ------------------------------------------------------------- connection banner

let bannerTimer = null;
let wasLost = false;

/** Shows `text` (a string, or strings and nodes) in the banner; null hides it. */
function setBanner(text, kind = 'info') {
  const banner = $('banner');
  clearTimeout(bannerTimer);
  if (!text) {
    banner.hidden = true;
    banner.textContent = '';
    return;
  }
  banner.replaceChildren(...[text].flat());
  banner.className = `banner ${kind}`;
  banner.hidden = false;
}

function connectionChanged({ state: now }) {
  state.connection = now;
  if (now === 'reconnecting') {
    wasLost = true;
    setBanner('Connection lost. Reconnecting…', 'warning');
  } else if (now === 'open' && wasLost) {
    wasLost = false;
    setBanner('Back online', 'success');
    bannerTimer = setTimeout(() => setBanner(null), 3000);
  } else if (now === 'connecting') {
    setBanner('Connecting…', 'info');
  } else if (now === 'open') {
    setBanner(null);
  }
  if (state.me) renderMe();
}

// ------------------------------------------------------------- live events

function bump(roomId, message) {
  withSummary(roomId, (room) => {
    // Not newer than the last message the server summed up (`ready` after a
    // reconnect, then `resume` replaying, or a page of the room list read
    // after it): already counted.
    if (room.last_message && compareIds(message.id, room.last_message.id) <= 0) return;
    room.last_message = message;
    const mine = message.sender_id === state.me.id;
    const seen = room.read_up_to && compareIds(room.read_up_to, message.id) >= 0;
    if (!mine && !seen) {
      room.unread_count = (room.unread_count || 0) + 1;
      if ((message.mentions || []).includes(state.me.id)) room.mention_count = (room.mention_count || 0) + 1;
    }
    changed('rooms');
  });
}

function stopTypingOf(roomId, userId) {
  const typers = state.typing.get(roomId);
  if (!typers || !typers.has(userId)) return;
  clearTimeout(typers.get(userId));
  typers.delete(userId);
  changed('typing');
}

/**
 * For each `loadRemainingRooms` under way: the rooms removed since it
 * began, and by room the live events heard since for rooms not listed yet.
 */
const listings = new Set();

/**
 * Applies a live event to a room's summary (`apply(room)`), now if the room
 * is listed, else once a page of the room list brings it: the page may have
 * been read before the event. Each `apply` leaves a summary that already
 * has the event as it is.
 */
function withSummary(roomId, apply) {
  const room = state.rooms.get(roomId);
  if (room) return apply(room);
  for (const { heard } of listings) {
    if (!heard.has(roomId)) heard.set(roomId, []);
    heard.get(roomId).push(apply);
  }
}

// `ready` lists at most the server's `limits.ready_rooms` rooms, ordered by
// id; the rest are read in pages after the last one it listed.
async function loadRemainingRooms(listed) {
  let cursor = listed.length ? listed[listed.length - 1].id : undefined;
  // A page read before a `room_removed` must not bring the room back, nor
  // miss what was heard of its rooms before it came.
  const listing = { removed: new Set(), heard: new Map() };
  listings.add(listing);
  try {
    while (cursor) {
      const page = await rest.listRooms({ limit: 1000, cursor });
      for (const room of page.rooms) {
        if (state.rooms.has(room.id) || listing.removed.has(room.id)) continue;
        const summary = { ...room };
        state.rooms.set(room.id, summary);
        for (const apply of listing.heard.get(room.id) || []) apply(summary);
        listing.heard.delete(room.id);
      }
      changed('rooms');
      cursor = page.next_cursor;
    }
  } catch (error) {
    console.warn('rooms beyond the first page not loaded', error.code || error);
  } finally {
    listings.delete(listing);
  }
}

function wire(realtime) {
  realtime.on('state', connectionChanged);
  realtime.on('ready', (ready) => {
    state.me = ready.user;
    rememberUser(ready.user);
    const rooms = new Map();
    for (const room of ready.rooms) {
      const known = state.rooms.get(room.id);
      rooms.set(room.id, { ...room, read_up_to: known ? known.read_up_to : undefined });
    }
    state.rooms = rooms;
    changed('rooms');
    if (state.current && !rooms.has(state.current)) {
      state.current = null;
      changed('timeline');
    }
    if (ready.reconnected && state.current) catchUp(state.current);
    renderHeader();
    if (ready.rooms_truncated) loadRemainingRooms(ready.rooms);
    loadNotificationCount();
  });
  realtime.on('message', ({ message }) => {
    stopTypingOf(message.room_id, message.sender_id);
    whenLoaded(message.room_id, () => addMessages(message.room_id, [message]));
    bump(message.room_id, message);
    if (message.room_id === state.current) requestAnimationFrame(markReadIfSeen);
  });
  realtime.on('pending', (pending) => changed('timeline', pending.room_id));
  realtime.on('message_updated', ({ message }) => {
    whenLoaded(message.room_id, () => addMessages(message.room_id, [message]));
    withSummary(message.room_id, (room) => {
      if (room.last_message && room.last_message.id === message.id) {
        room.last_message = message;
        changed('rooms');
      }
    });
  });
  realtime.on('message_deleted', ({ room_id: roomId, message_id: id }) => {
    whenLoaded(roomId, (line) => {
      const old = line.messages.find((message) => message.id === id);
      if (old) addMessages(roomId, [{ ...old, content: '', attachments: [], deleted: true }]);
    });
    withSummary(roomId, (room) => {
      if (room.last_message && room.last_message.id === id) {
        room.last_message = { ...room.last_message, content: '', deleted: true };
        changed('rooms');
      }
    });
  });
  realtime.on('typing', ({ room_id: roomId, user_id: userId, typing }) => {
    if (userId === state.me.id) return;
    stopTypingOf(roomId, userId);
    if (!typing) return;
    if (!state.typing.has(roomId)) state.typing.set(roomId, new Map());
    state.typing.get(roomId).set(userId, setTimeout(() => stopTypingOf(roomId, userId), TYPING_TTL_MS));
    changed('typing');
  });
  realtime.on('presence', ({ user_id: userId, online, last_seen_at: lastSeen }) => {
    heardPresence(userId, online, lastSeen);
    showPresence(userId, online);
  });
  realtime.on('read', ({ room_id: roomId, user_id: userId, message_id: id }) => {
    if (userId !== state.me.id) return;
    // Read in another tab or device.
    withSummary(roomId, (room) => {
      room.read_up_to = id;
      if (!room.last_message || compareIds(id, room.last_message.id) >= 0) {
        room.unread_count = 0;
        room.mention_count = 0;
        changed('rooms');
      }
    });
  });
  realtime.on('member_joined', ({ room_id: roomId }) => memberCountChanged(roomId, 1));
  realtime.on('member_left', ({ room_id: roomId }) => memberCountChanged(roomId, -1));
  realtime.on('room_added', ({ room }) => {
    const known = state.rooms.get(room.id);
    state.rooms.set(room.id, { ...known, ...room });
    changed('rooms');
  });
  realtime.on('room_removed', ({ room_id: roomId }) => {
    for (const { removed } of listings) removed.add(roomId);
    state.rooms.delete(roomId);
    state.timelines.delete(roomId);
    if (state.current === roomId) {
      state.current = null;
      $('composer').hidden = true;
      $('room-title').textContent = 'No room selected';
      $('room-subtitle').textContent = '';
      changed('timeline');
    }
    changed('rooms');
  });
  realtime.on('notification', ({ notification }) => {
    if (state.heardWhileCounting) state.heardWhileCounting.add(notification.id);
    state.unreadNotifications += 1;
    changed('notifications');
    refreshPanel('notifications');
  });
  realtime.on('notice', ({ content }) => {
    setBanner(['Notice: ', userText(content)], 'info');
    bannerTimer = setTimeout(() => setBanner(null), 8000);
  });
  realtime.on('closed', ({ error }) => {
    if (!state.me) return;
    signOut(error && error.code === 'unauthorized' ? 'Your session ended. Sign in again.' : error ? error.message : 'Disconnected.');
  });
  realtime.on('token_expired', () => {
    // getToken gives up: `closed` follows and signs out.
  });
}

function memberCountChanged(roomId, delta) {
  const room = state.rooms.get(roomId);
  if (room) {
    room.member_count = Math.max(0, (room.member_count || 0) + delta);
    if (roomId === state.current) renderHeader();
  }
  if (roomId === state.current) refreshPanel('members');
}

// ------------------------------------------------------------- keyboard

function onKeyDown(event) {
  if (event.key !== 'Escape') return;
  if (closeSuggestions() || cancelEdit() || cancelDelete() || closePanel() || cancelReply()) {
    event.preventDefault();
    return;
  }
  if (document.body.classList.contains('room-open') && window.matchMedia('(max-width: 760px)').matches) {
    event.preventDefault();
    closeRoomView();
  }
}

// ------------------------------------------------------------- boot

async function boot() {
  $('auth-form').addEventListener('submit', submitAuth);
  $('auth-switch').addEventListener('click', () => setAuthMode(!signingUp));
  $('logout').addEventListener('click', logout);
  $('back').addEventListener('click', closeRoomView);
  document.addEventListener('keydown', onKeyDown);
  onUnauthorized(() => {
    if (state.me) signOut('Your session ended. Sign in again.');
  });
  initSidebar(openRoom);
  initTimeline();
  initComposer();
  initPanels(openRoom);
  on('rooms', renderHeader);
  on('users', () => {
    renderHeader();
    renderTyping();
  });
  on('typing', renderTyping);
  on('notifications', renderNotificationBadge);

  if (!hasToken()) return showAuth();
  try {
    await start(await rest.me());
  } catch (error) {
    if (error.code === 'unauthorized') {
      saveToken(null);
      showAuth();
    } else {
      showAuth(`Cannot reach the server: ${error.message}`);
    }
  }
}

boot();
