// The open room's messages: day separators, senders, replies, mentions
// highlighted, attachments (images as previews), edited and deleted
// markers, the sender's own optimistic messages until they are stored,
// older history loaded on scroll-up, and the read position kept.

import { $, h, clear, time, dayKey, dayLabel, fileSize, icon, userText } from './dom.js';
import { state, on, changed, timeline, addMessages, newest } from './store.js';
import { rest, realtime, displayName, user } from './session.js';
import { avatar } from './sidebar.js';
import { startReply } from './composer.js';
import { compareIds } from './lib/index.js';

const PAGE = 50;
/** Within this many pixels of the bottom counts as "at the bottom". */
const NEAR_BOTTOM = 80;

/** file id (+ "t" for thumbnails) → Promise of a blob: URL, fetched with the token. */
const blobUrls = new Map();

let editing = null;
/** The message whose Delete was pressed once (the second press deletes). */
let confirmingDelete = null;
/** Set when a room is opened: show its end until its history is in. */
let stickToBottom = false;

/** The open room changed: start at its newest messages. */
export function roomOpened() {
  editing = null;
  confirmingDelete = null;
  stickToBottom = true;
  anchor = null;
}

export function initTimeline() {
  on('timeline', (rooms) => {
    if (state.current && (rooms.size === 0 || rooms.has(state.current))) render();
  });
  on('users', () => state.current && render());
  const list = $('messages');
  list.addEventListener('scroll', () => {
    if (list.scrollTop < NEAR_BOTTOM) loadOlder();
    markReadIfSeen();
  });
  document.addEventListener('visibilitychange', markReadIfSeen);
  window.addEventListener('focus', markReadIfSeen);
}

/** Loads the newest page of a room the first time it is opened. */
export async function loadRoom(roomId) {
  const line = timeline(roomId);
  if (line.loaded || line.loading) return render();
  line.loading = true;
  render();
  try {
    const page = await rest.getMessages(roomId, { limit: PAGE });
    line.loaded = true;
    line.hasMore = page.has_more;
    remember(roomId, page.messages);
    for (const apply of line.deferred) apply(line);
  } catch (error) {
    console.warn('history not loaded', error.code);
  } finally {
    line.deferred = [];
    line.loading = false;
    changed('timeline', roomId);
  }
}

/** After a reconnect the library resumes live rooms; this catches up the open one too. */
export async function catchUp(roomId) {
  const line = timeline(roomId);
  const last = newest(roomId);
  if (!line.loaded || !last) return;
  try {
    for (let after = last.id; ; ) {
      const page = await rest.getMessages(roomId, { after, limit: 100 });
      remember(roomId, page.messages);
      if (!page.has_more || page.messages.length === 0) break;
      after = page.messages[page.messages.length - 1].id;
    }
  } catch (error) {
    console.warn('catch-up failed', error.code);
  }
}

function remember(roomId, messages) {
  addMessages(roomId, messages);
  const last = messages[messages.length - 1];
  if (last && realtime) realtime.markSeen(roomId, last.id);
}

async function loadOlder() {
  const roomId = state.current;
  if (!roomId) return;
  const line = timeline(roomId);
  if (!line.loaded || line.loading || !line.hasMore || line.messages.length === 0) return;
  line.loading = true;
  try {
    const page = await rest.getMessages(roomId, { before: line.messages[0].id, limit: PAGE });
    line.hasMore = page.has_more;
    keepScrollPosition(() => addMessages(roomId, page.messages));
  } catch (error) {
    console.warn('older history not loaded', error.code);
  } finally {
    line.loading = false;
  }
}

/** Runs `change` and keeps the messages in view where they were when older ones are put above. */
let anchor = null;
function keepScrollPosition(change) {
  const list = $('messages');
  anchor = { height: list.scrollHeight, top: list.scrollTop };
  change();
}

/** Whether the user sees the end of the open room. */
function atBottom() {
  const list = $('messages');
  return list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_BOTTOM;
}

/** Stores the read position when the newest message is in view of a visible page. */
export function markReadIfSeen() {
  const roomId = state.current;
  const room = roomId && state.rooms.get(roomId);
  if (!room || document.visibilityState !== 'visible' || !atBottom()) return;
  const last = newest(roomId);
  if (!last) return;
  if (room.read_up_to && compareIds(room.read_up_to, last.id) >= 0) return;
  room.read_up_to = last.id;
  if (room.unread_count || room.mention_count) {
    room.unread_count = 0;
    room.mention_count = 0;
    changed('rooms');
  }
  rest.markRead(roomId, last.id).catch((error) => console.warn('read position not stored', error.code));
}

function render() {
  const roomId = state.current;
  const list = $('messages');
  const wasAtBottom = !anchor && (stickToBottom || atBottom());
  const previous = { height: list.scrollHeight, top: list.scrollTop };
  clear(list);
  if (!roomId) {
    list.append(h('p', { class: 'empty' }, 'Pick a room on the left, or start one.'));
    return;
  }
  const line = timeline(roomId);
  if (line.loaded) stickToBottom = false;
  if (line.loaded && !line.hasMore) {
    list.append(h('p', { class: 'history-start muted' }, 'This is the beginning of the conversation.'));
  } else if (line.loading) {
    list.append(h('p', { class: 'history-start muted' }, 'Loading…'));
  }
  const byId = new Map(line.messages.map((message) => [message.id, message]));
  let lastDay = null;
  let lastSender = null;
  let lastAt = 0;
  for (const message of line.messages) {
    const day = dayKey(message.created_at);
    if (day !== lastDay) {
      list.append(h('div', { class: 'day', role: 'separator' }, h('span', {}, dayLabel(message.created_at))));
      lastDay = day;
      lastSender = null;
    }
    const continued = lastSender === message.sender_id && message.created_at - lastAt < 5 * 60_000 && !message.reply_to;
    list.append(messageRow(message, byId, continued));
    lastSender = message.sender_id;
    lastAt = message.created_at;
  }
  const stored = new Set(line.messages.map((message) => message.client_id).filter(Boolean));
  for (const pending of realtime ? realtime.pendingMessages(roomId) : []) {
    if (!stored.has(pending.client_id)) list.append(pendingRow(pending));
  }
  if (line.loaded && line.messages.length === 0) {
    list.append(h('p', { class: 'empty' }, 'No messages yet. Say hello!'));
  }
  if (anchor) {
    list.scrollTop = anchor.top + (list.scrollHeight - anchor.height);
    anchor = null;
  } else if (wasAtBottom) {
    list.scrollTop = list.scrollHeight;
  } else {
    list.scrollTop = previous.top;
  }
  markReadIfSeen();
}

/** Content as text, with `@username` of resolved mentions highlighted. */
function contentNodes(message) {
  const mentioned = new Map();
  for (const id of message.mentions || []) {
    const known = id === state.me.id ? state.me : user(id);
    if (known) mentioned.set(known.username.toLowerCase(), id);
  }
  const nodes = [];
  let rest_ = 0;
  const text = message.content;
  for (const match of text.matchAll(/@([A-Za-z0-9_.-]+)/g)) {
    const id = mentioned.get(match[1].toLowerCase());
    if (!id) continue;
    nodes.push(text.slice(rest_, match.index));
    nodes.push(h('span', { class: id === state.me.id ? 'mention mention-me' : 'mention' }, match[0]));
    rest_ = match.index + match[0].length;
  }
  nodes.push(text.slice(rest_));
  return nodes;
}

function messageRow(message, byId, continued) {
  const mine = message.sender_id === state.me.id;
  const mentionsMe = (message.mentions || []).includes(state.me.id);
  const name = displayName(message.sender_id);
  const classes = ['message', continued ? 'continued' : '', mine ? 'mine' : '', mentionsMe ? 'mentions-me' : '', message.deleted ? 'deleted' : '']
    .filter(Boolean)
    .join(' ');
  const body = h('div', { class: 'message-body' });
  if (!continued) {
    body.append(
      h(
        'div',
        { class: 'message-meta' },
        h('span', { class: 'sender' }, name),
        h('time', { datetime: new Date(message.created_at).toISOString(), class: 'muted' }, time(message.created_at)),
      ),
    );
  }
  if (message.reply_to) {
    const original = byId.get(message.reply_to);
    body.append(
      h(
        'div',
        { class: 'reply-quote' },
        h('span', { class: 'sender' }, original ? displayName(original.sender_id) : 'Earlier message'),
        ' ',
        original ? (original.deleted ? 'deleted message' : userText(original.content)) : '',
      ),
    );
  }
  if (message.deleted) {
    body.append(h('p', { class: 'content muted' }, 'This message was deleted.'));
  } else if (editing === message.id) {
    body.append(editForm(message));
  } else {
    body.append(
      h('p', { class: 'content', dir: 'auto' }, userText(contentNodes(message)), message.edited_at ? h('span', { class: 'edited muted', title: `edited ${time(message.edited_at)}` }, ' (edited)') : null),
    );
    if (message.attachments && message.attachments.length) {
      body.append(h('div', { class: 'attachments' }, message.attachments.map(attachment)));
    }
  }
  const actions = message.deleted
    ? null
    : h(
        'div',
        { class: 'message-actions' },
        h('button', { type: 'button', class: 'small', onclick: () => startReply(message) , 'aria-label': `Reply to ${name}` }, 'Reply'),
        mine ? h('button', { type: 'button', class: 'small', onclick: () => startEdit(message.id) }, 'Edit') : null,
        mine
          ? h(
              'button',
              { type: 'button', class: 'small danger', onclick: () => remove(message) },
              confirmingDelete === message.id ? 'Delete for everyone?' : 'Delete',
            )
          : null,
      );
  return h(
    'article',
    { class: classes, dataset: { id: message.id, sender: message.sender_id } },
    continued ? h('span', { class: 'avatar-space', 'aria-hidden': 'true' }, time(message.created_at)) : avatar(message.sender_id, name),
    body,
    actions,
  );
}

function pendingRow(pending) {
  const failed = pending.status === 'failed';
  return h(
    'article',
    { class: `message mine pending${failed ? ' failed' : ''}`, dataset: { clientId: pending.client_id } },
    avatar(state.me.id, displayName(state.me.id)),
    h(
      'div',
      { class: 'message-body' },
      h('div', { class: 'message-meta' }, h('span', { class: 'sender' }, displayName(state.me.id)), h('span', { class: 'muted' }, failed ? 'not sent' : 'sending…')),
      h('p', { class: 'content', dir: 'auto' }, userText(pending.content)),
      failed
        ? h(
            'div',
            { class: 'pending-actions' },
            h('span', { class: 'form-error' }, pending.error ? pending.error.message : 'failed'),
            h('button', { type: 'button', class: 'small', onclick: () => realtime.retry(pending.client_id) }, 'Retry'),
            h('button', { type: 'button', class: 'small', onclick: () => { realtime.discard(pending.client_id); changed('timeline', pending.room_id); } }, 'Discard'),
          )
        : null,
    ),
  );
}

/** An attachment: an image preview (the thumbnail when there is one) or a download button. */
function attachment(file) {
  const isImage = file.content_type.startsWith('image/');
  if (isImage) {
    const image = h('img', { class: 'attachment-image', alt: file.name, loading: 'lazy' });
    blobUrl(file.id, Boolean(file.thumbnail_url)).then((url) => { image.src = url; }, () => image.classList.add('broken'));
    return h('button', { type: 'button', class: 'attachment image', 'aria-label': `Open ${file.name}`, onclick: () => openFile(file) }, image);
  }
  return h(
    'button',
    { type: 'button', class: 'attachment file', onclick: () => openFile(file) },
    h('span', { class: 'file-icon' }, icon('file')),
    h('span', { class: 'file-name' }, file.name),
    h('span', { class: 'muted' }, fileSize(file.size)),
  );
}

function blobUrl(fileId, thumbnail) {
  const key = `${fileId}${thumbnail ? 't' : ''}`;
  if (!blobUrls.has(key)) {
    const url = rest.downloadFile(fileId, { thumbnail }).then((blob) => URL.createObjectURL(blob));
    url.catch(() => blobUrls.delete(key));
    blobUrls.set(key, url);
  }
  return blobUrls.get(key);
}

/** Files need the token, so they are fetched and handed to the browser as blobs. */
async function openFile(file) {
  try {
    const url = await blobUrl(file.id, false);
    const link = h('a', { href: url, download: file.name, rel: 'noopener' });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    alertError(error);
  }
}

function alertError(error) {
  const banner = $('banner');
  banner.textContent = error.message || String(error);
  banner.className = 'banner error';
  banner.hidden = false;
  setTimeout(() => { banner.hidden = true; }, 4000);
}

function startEdit(id) {
  editing = id;
  render();
  const field = document.querySelector(`.message[data-id="${id}"] textarea`);
  if (field) {
    field.focus();
    field.setSelectionRange(field.value.length, field.value.length);
  }
}

export function cancelEdit() {
  if (editing === null) return false;
  const id = editing;
  editing = null;
  render();
  const row = document.querySelector(`.message[data-id="${id}"] .message-actions button`);
  if (row) row.focus();
  return true;
}

function editForm(message) {
  const field = h('textarea', { class: 'edit-field', rows: 2, maxlength: 4000, dir: 'auto', 'aria-label': 'Edit message' });
  field.value = message.content;
  const save = async () => {
    const content = field.value.trim();
    if (!content || content === message.content) return cancelEdit();
    try {
      await realtime.edit(message.room_id, message.id, content);
      editing = null;
      render();
    } catch (error) {
      alertError(error);
    }
  };
  field.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      save();
    } else if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation();
      cancelEdit();
    }
  });
  return h(
    'div',
    { class: 'edit' },
    field,
    h('div', { class: 'edit-buttons' },
      h('button', { type: 'button', class: 'small primary', onclick: save }, 'Save'),
      h('button', { type: 'button', class: 'small', onclick: cancelEdit }, 'Cancel'),
      h('span', { class: 'muted hint' }, 'Enter to save, Esc to cancel')),
  );
}

/** Delete asks once, in place: the first press turns the button into a question. */
async function remove(message) {
  if (confirmingDelete !== message.id) {
    confirmingDelete = message.id;
    render();
    const button = document.querySelector(`.message[data-id="${message.id}"] .message-actions .danger`);
    if (button) button.focus();
    return;
  }
  confirmingDelete = null;
  try {
    await realtime.delete(message.room_id, message.id);
  } catch (error) {
    alertError(error);
  }
}

/** Esc: forget a pending delete question. */
export function cancelDelete() {
  if (confirmingDelete === null) return false;
  confirmingDelete = null;
  render();
  return true;
}
