// SeenTracker: which messages of each room the client has already handed
// to the app, and where to resume each room after a reconnect.
//
// Live delivery is at most once and `resume` replays what a connection
// missed; replayed and live frames interleave, so the same message can come
// twice. The tracker drops those duplicates by id and keeps, per room, the
// highest id seen: what the next `resume` asks from.
//
// While a room's resume is in flight its resume point is frozen ("held") at
// the id the resume started from: a live message newer than the gap must
// not move it past messages still being replayed, or a second disconnect
// in the middle of the replay would lose them.

import { compareIds, maxId } from "./ids.js";

export class SeenTracker {
  /** @param {number} limit ids remembered per room for de-duplication */
  constructor(limit = 1000) {
    this.limit = limit;
    this.rooms = new Map();
  }

  _room(roomId) {
    let r = this.rooms.get(roomId);
    if (!r) {
      r = { max: undefined, ids: new Set(), floor: undefined, hold: null };
      this.rooms.set(roomId, r);
    }
    return r;
  }

  known(roomId) {
    return this.rooms.has(roomId);
  }

  /** Starts following a room from `fromId` (its newest message the app already has), if not yet followed. */
  track(roomId, fromId) {
    const r = this._room(roomId);
    if (fromId !== undefined && fromId !== null) r.max = maxId(r.max, String(fromId));
  }

  forget(roomId) {
    this.rooms.delete(roomId);
  }

  /** The app has messages of this room up to `messageId` (from REST history, say). */
  markSeen(roomId, messageId) {
    const r = this._room(roomId);
    r.max = maxId(r.max, String(messageId));
  }

  /** Records a message; true if it is new (hand it to the app), false for a duplicate. */
  accept(message) {
    const r = this._room(message.room_id);
    const id = message.id;
    if (r.hold) r.hold.ids.add(id);
    if (r.ids.has(id) || (r.floor !== undefined && compareIds(id, r.floor) <= 0)) return false;
    r.ids.add(id);
    if (r.ids.size > this.limit) {
      // Sets iterate in insertion order: evict the oldest arrival.
      const oldest = r.ids.values().next().value;
      r.ids.delete(oldest);
      r.floor = maxId(r.floor, oldest);
    }
    r.max = maxId(r.max, id);
    return true;
  }

  /** The resume point of every followed room: {room_id: last seen id} ("0": from the start). */
  resumePoints() {
    const out = {};
    for (const [roomId, r] of this.rooms) out[roomId] = r.hold ? r.hold.from : (r.max ?? "0");
    return out;
  }

  /** Highest id seen per room (resume points, held ones included). */
  lastSeen() {
    return this.resumePoints();
  }

  /** Freezes the resume points of these rooms while their resume runs. */
  hold(points) {
    for (const [roomId, from] of Object.entries(points)) this._room(roomId).hold = { from, ids: new Set() };
  }

  /**
   * The last id a resume replayed in a room, given how many it replayed:
   * the replay is the run of messages just after `from`, so it is the n-th
   * smallest id above `from` received since the hold began.
   */
  replayCursor(roomId, replayed) {
    const r = this.rooms.get(roomId);
    if (!r || !r.hold) return undefined;
    if (replayed <= 0) return r.hold.from;
    const ids = [...r.hold.ids].filter((id) => compareIds(id, r.hold.from) > 0).sort(compareIds);
    return ids[Math.min(replayed, ids.length) - 1] ?? r.hold.from;
  }

  /** The room has caught up: its resume point follows the messages again. */
  release(roomId) {
    const r = this.rooms.get(roomId);
    if (r) r.hold = null;
  }
}
