// The app's state: who is signed in, the rooms and what is loaded of each,
// the users seen so far. Views read it and re-render on `changed(...)`.

import { compareIds, mergeMessages } from './lib/index.js';

export const state = {
  /** The signed-in user. */
  me: null,
  /** room id → RoomSummary (unread_count and mention_count kept live). */
  rooms: new Map(),
  /** room id → {messages: Message[], hasMore, loading, loaded, deferred: live events held while loading} */
  timelines: new Map(),
  /** user id → User (online kept live from presence frames). */
  users: new Map(),
  /** room id → Map(user id → timer) of who is typing there. */
  typing: new Map(),
  /** The open room, or null. */
  current: null,
  /** Unread notifications count (the bell's badge). */
  unreadNotifications: 0,
  /**
   * While the count is read: the ids of the notifications heard meanwhile.
   * null otherwise, and set to null when the panel marks them read, so
   * that a read begun before the mark is dropped.
   */
  heardWhileCounting: null,
  /** "open" | "reconnecting" | ... from the realtime client. */
  connection: 'idle',
};

const listeners = new Map();

/** Subscribe to a topic: "rooms", "timeline", "typing", "users", "notifications". */
export function on(topic, listener) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(listener);
}

const scheduled = new Map();

/** Tells the views of `topic` to re-render, once per animation frame. */
export function changed(topic, detail) {
  if (scheduled.has(topic)) {
    if (detail !== undefined) scheduled.get(topic).add(detail);
    return;
  }
  const details = new Set(detail === undefined ? [] : [detail]);
  scheduled.set(topic, details);
  requestAnimationFrame(() => {
    scheduled.delete(topic);
    for (const listener of listeners.get(topic) || []) listener(details);
  });
}

export function timeline(roomId) {
  if (!state.timelines.has(roomId)) {
    state.timelines.set(roomId, { messages: [], hasMore: true, loading: false, loaded: false, deferred: [] });
  }
  return state.timelines.get(roomId);
}

/**
 * Applies a live event to a room's timeline: now if it is loaded; after its
 * first page if that is on its way (the page may have been read before the
 * event, so applying it first would let the page undo it); not at all if
 * nothing of the room is loaded (its history is read when it opens).
 */
export function whenLoaded(roomId, apply) {
  const line = state.timelines.get(roomId);
  if (!line) return;
  if (line.loaded) apply(line);
  else if (line.loading) line.deferred.push(apply);
}

/** Merges messages (new, older, edited or deleted) into a room's timeline. */
export function addMessages(roomId, messages) {
  const line = timeline(roomId);
  line.messages = mergeMessages(line.messages, messages);
  changed('timeline', roomId);
}

/** The newest message of a room that is loaded, if any. */
export function newest(roomId) {
  const line = state.timelines.get(roomId);
  return line && line.messages.length ? line.messages[line.messages.length - 1] : undefined;
}

/** Sorts rooms for the list: newest activity first. */
export function sortedRooms() {
  const activity = (room) => (room.last_message ? room.last_message.id : room.id.startsWith('dm:') ? '0' : room.id);
  return [...state.rooms.values()].sort((a, b) => compareIds(activity(b), activity(a)));
}

/** The other user of a DM room id `dm:<lo>:<hi>`. */
export function dmPeer(roomId) {
  const [, lo, hi] = roomId.split(':');
  return state.me && lo === state.me.id ? hi : lo;
}
