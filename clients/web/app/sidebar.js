// The room list: each room with its last message, unread and mention
// badges, and for DMs the other user's presence dot.

import { $, h, clear, shortTime, initials, hue, icon, userText } from './dom.js';
import { state, on, sortedRooms, dmPeer } from './store.js';
import { displayName, roomName, user } from './session.js';

let openRoom = () => {};

export function initSidebar(open) {
  openRoom = open;
  on('rooms', render);
  on('users', render);
}

/** An avatar circle for a user (or a room), with an optional presence dot. */
export function avatar(id, name, { presence } = {}) {
  const element = h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(name));
  element.style.setProperty('--hue', String(hue(id)));
  if (presence !== undefined) {
    element.append(h('span', { class: presence ? 'presence online' : 'presence' }));
  }
  return element;
}

function preview(room) {
  const last = room.last_message;
  if (!last) return room.kind === 'dm' ? 'Direct message' : room.visibility === 'private' ? 'Private room' : 'Public room';
  const who = last.sender_id === state.me.id ? 'You' : userText(displayName(last.sender_id));
  const text = last.deleted ? 'message deleted' : last.content ? userText(last.content) : last.attachments.length ? 'attachment' : '';
  return [who, ': ', text];
}

function render() {
  const list = $('room-list');
  const rooms = sortedRooms();
  clear(list);
  $('room-list-empty').hidden = rooms.length > 0;
  for (const room of rooms) {
    const dm = room.id.startsWith('dm:');
    const peer = dm ? dmPeer(room.id) : null;
    const peerUser = peer ? user(peer) : null;
    const name = roomName(room);
    const unread = room.unread_count || 0;
    const mentions = room.mention_count || 0;
    const label = [name, unread ? `${unread} unread` : '', mentions ? `${mentions} mentions` : '']
      .filter(Boolean)
      .join(', ');
    const button = h(
      'button',
      {
        type: 'button',
        class: 'room',
        'aria-current': room.id === state.current ? 'page' : false,
        'aria-label': label,
        onclick: () => openRoom(room.id),
      },
      dm
        ? avatar(peer, name, { presence: Boolean(peerUser && peerUser.online) })
        : h('span', { class: 'room-icon', 'aria-hidden': 'true' }, room.visibility === 'private' ? icon('lock') : '#'),
      h(
        'span',
        { class: 'room-text' },
        h(
          'span',
          { class: 'room-line' },
          h('span', { class: 'room-name' }, name),
          room.last_message ? h('span', { class: 'room-time muted' }, shortTime(room.last_message.created_at)) : null,
        ),
        h(
          'span',
          { class: 'room-line' },
          h('span', { class: 'room-preview muted' }, preview(room)),
          mentions ? h('span', { class: 'badge mention', title: 'Mentions' }, `@${mentions}`) : null,
          unread ? h('span', { class: 'badge unread', title: 'Unread' }, String(unread)) : null,
        ),
      ),
    );
    list.append(h('li', { dataset: { roomId: room.id }, class: unread ? 'has-unread' : '' }, button));
  }
}
