// The message composer: Enter sends (Shift+Enter for a new line), typing
// notices, @mention autocomplete (`GET /users?prefix=`), reply-to, and
// attachments uploaded as they are chosen (a few at a time) with progress
// and image previews.

import { $, h, clear, fileSize, icon, userText } from './dom.js';
import { state, changed } from './store.js';
import { rest, realtime, displayName } from './session.js';

/** Stop telling the room we type after this long without a key. */
const TYPING_IDLE_MS = 4000;
/** Repeat `typing: true` while typing (the server drops more than one per 2 s). */
const TYPING_REPEAT_MS = 2500;
/**
 * Uploads sent at once. A gateway streams only a few of one user's uploads
 * at a time (`files.concurrent_uploads_per_user`, 4 by default) and refuses
 * one that waits there too long, so on a slow link the rest wait here.
 */
const UPLOADS_AT_ONCE = 3;

let replyTo = null;
/**
 * Uploads of the message being written: {key, file, status ('waiting',
 * 'uploading', 'done' or 'failed'), progress, info, preview, error}.
 */
let uploads = [];
let uploadCount = 0;
/** Uploads on their way to the server, including those of a message given up. */
let uploadsInFlight = 0;
let typingSentAt = 0;
let typingRoom = null;
let idleTimer = null;
/** The autocomplete: {start, end, users, active} or null. */
let suggest = null;
let suggestSeq = 0;

export function initComposer() {
  const form = $('composer');
  const input = $('composer-input');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  input.addEventListener('keydown', onKeyDown);
  input.addEventListener('input', () => {
    autosize();
    typing();
    autocomplete();
  });
  input.addEventListener('blur', () => setTimeout(closeSuggestions, 150));
  $('reply-cancel').addEventListener('click', cancelReply);
  $('file-input').addEventListener('change', (event) => {
    for (const file of event.target.files) upload(file);
    event.target.value = '';
  });
}

/** The open room changed: drop what belonged to the previous one. */
export function resetComposer() {
  stopTyping();
  cancelReply();
  for (const item of uploads) if (item.preview) URL.revokeObjectURL(item.preview);
  uploads = [];
  renderUploads();
  closeSuggestions();
  $('composer-input').value = '';
  autosize();
}

function autosize() {
  const input = $('composer-input');
  // Empty (or not laid out yet, when scrollHeight is 0): the stylesheet's one row.
  if (!input.value) {
    input.style.height = '';
    return;
  }
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

function onKeyDown(event) {
  if (suggest && suggest.users.length) {
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const step = event.key === 'ArrowDown' ? 1 : -1;
      suggest.active = (suggest.active + step + suggest.users.length) % suggest.users.length;
      renderSuggestions();
      return;
    }
    if (event.key === 'Enter' || event.key === 'Tab') {
      event.preventDefault();
      choose(suggest.users[suggest.active]);
      return;
    }
  }
  if (event.key === 'Escape' && suggest) {
    event.preventDefault();
    event.stopPropagation();
    closeSuggestions();
    return;
  }
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
}

function send() {
  const roomId = state.current;
  if (!roomId || !realtime) return;
  const input = $('composer-input');
  if (uploads.some((item) => item.status === 'waiting' || item.status === 'uploading')) {
    showComposerError('Wait for the uploads to finish.');
    return;
  }
  const files = uploads.filter((item) => item.status === 'done');
  let content = input.value.trim();
  if (!content && files.length === 0) return;
  if (!content) content = files.map((item) => item.info.name).join(', ');
  const options = {};
  if (replyTo) options.reply_to = replyTo.id;
  if (files.length) options.attachment_ids = files.map((item) => item.info.id);
  const pending = realtime.send(roomId, content, options);
  pending.done.catch(() => changed('timeline', roomId));
  changed('timeline', roomId);
  input.value = '';
  autosize();
  stopTyping();
  cancelReply();
  for (const item of uploads) if (item.preview) URL.revokeObjectURL(item.preview);
  uploads = [];
  renderUploads();
  showComposerError('');
  const list = $('messages');
  requestAnimationFrame(() => { list.scrollTop = list.scrollHeight; });
}

function showComposerError(text) {
  const input = $('composer-input');
  input.setCustomValidity(text);
  if (text) input.reportValidity();
}

// ------------------------------------------------------------- typing

function typing() {
  const roomId = state.current;
  if (!roomId || !realtime || realtime.state !== 'open') return;
  if ($('composer-input').value.trim() === '') return stopTyping();
  const now = Date.now();
  if (typingRoom !== roomId || now - typingSentAt > TYPING_REPEAT_MS) {
    realtime.typing(roomId, true);
    typingSentAt = now;
    typingRoom = roomId;
  }
  clearTimeout(idleTimer);
  idleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(idleTimer);
  if (typingRoom && realtime && realtime.state === 'open') realtime.typing(typingRoom, false);
  typingRoom = null;
  typingSentAt = 0;
}

// ------------------------------------------------------------- reply

/** Shows the reply bar above the composer for `message`. */
export function startReply(message) {
  replyTo = message;
  $('reply-text').replaceChildren('Replying to ', userText(displayName(message.sender_id)), ': ', userText(message.content));
  $('reply-preview').hidden = false;
  $('composer-input').focus();
}

export function cancelReply() {
  const had = replyTo !== null;
  replyTo = null;
  $('reply-preview').hidden = true;
  $('reply-text').textContent = '';
  return had;
}

// ------------------------------------------------------------- mentions

/** The `@prefix` right before the caret, if any. */
function mentionAtCaret() {
  const input = $('composer-input');
  const before = input.value.slice(0, input.selectionStart);
  const match = /(^|\s)@([A-Za-z0-9_.-]{0,32})$/.exec(before);
  if (!match) return null;
  return { start: before.length - match[2].length - 1, end: input.selectionStart, prefix: match[2] };
}

async function autocomplete() {
  const at = mentionAtCaret();
  if (!at) return closeSuggestions();
  const seq = ++suggestSeq;
  try {
    const { users } = await rest.searchUsers({ prefix: at.prefix, limit: 8 });
    if (seq !== suggestSeq) return;
    const others = users.filter((user) => user.id !== state.me.id);
    suggest = others.length ? { ...at, users: others, active: 0 } : null;
    renderSuggestions();
  } catch {
    closeSuggestions();
  }
}

function choose(user) {
  const input = $('composer-input');
  const text = `@${user.username} `;
  // The `@prefix` as it is now: the list on screen may be the answer for
  // an earlier, shorter one while the lookup for what was typed since is
  // on its way, and replacing only that would leave the rest behind.
  const at = mentionAtCaret() ?? suggest;
  input.setRangeText(text, at.start, at.end, 'end');
  closeSuggestions();
  input.focus();
}

export function closeSuggestions() {
  const had = suggest !== null;
  suggest = null;
  suggestSeq++;
  renderSuggestions();
  return had;
}

function renderSuggestions() {
  const list = $('mention-list');
  const input = $('composer-input');
  clear(list);
  if (!suggest || suggest.users.length === 0) {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    return;
  }
  suggest.users.forEach((user, index) => {
    const id = `mention-option-${index}`;
    list.append(
      h(
        'li',
        {
          id,
          role: 'option',
          class: index === suggest.active ? 'active' : '',
          'aria-selected': index === suggest.active ? 'true' : 'false',
          onmousedown: (event) => {
            event.preventDefault();
            choose(user);
          },
        },
        h('strong', {}, user.display_name || user.username),
        h('span', { class: 'muted' }, ` @${user.username}`),
      ),
    );
  });
  list.hidden = false;
  input.setAttribute('aria-expanded', 'true');
  input.setAttribute('aria-activedescendant', `mention-option-${suggest.active}`);
}

// ------------------------------------------------------------- attachments

function upload(file) {
  uploads.push({
    key: ++uploadCount,
    file,
    status: 'waiting',
    progress: 0,
    info: null,
    error: null,
    preview: file.type.startsWith('image/') ? URL.createObjectURL(file) : null,
  });
  startUploads();
  renderUploads();
}

/** Starts waiting uploads while fewer than UPLOADS_AT_ONCE are on their way. */
function startUploads() {
  for (const item of uploads) {
    if (uploadsInFlight >= UPLOADS_AT_ONCE) return;
    if (item.status === 'waiting') startUpload(item);
  }
}

function startUpload(item) {
  item.status = 'uploading';
  uploadsInFlight += 1;
  const settled = () => {
    uploadsInFlight -= 1;
    startUploads();
  };
  rest
    .uploadFile(item.file, {
      name: item.file.name,
      onProgress: ({ loaded, total }) => {
        item.progress = total ? loaded / total : 0;
        renderUploads();
      },
    })
    .then(
      (info) => {
        item.status = 'done';
        item.progress = 1;
        item.info = info;
        settled();
        renderUploads();
      },
      (error) => {
        item.status = 'failed';
        item.error = error;
        settled();
        renderUploads();
      },
    );
}

/** The line under a pending attachment's name. */
function attachmentNote(item) {
  if (item.status === 'failed') return (item.error && item.error.message) || 'upload failed';
  if (item.status === 'waiting') return `${fileSize(item.file.size)} · waiting`;
  return fileSize(item.file.size);
}

function renderUploads() {
  const list = $('attachments-pending');
  clear(list);
  for (const item of uploads) {
    const progress = h('progress', { max: 1, 'aria-label': `Uploading ${item.file.name}` });
    progress.value = item.progress;
    list.append(
      h(
        'li',
        { class: `pending-attachment ${item.status}` },
        item.preview ? h('img', { src: item.preview, alt: '' }) : h('span', { class: 'file-icon' }, icon('file')),
        h(
          'span',
          { class: 'pending-attachment-text' },
          h('span', { class: 'file-name' }, item.file.name),
          h('span', { class: 'muted' }, attachmentNote(item)),
          item.status === 'uploading' ? progress : null,
        ),
        h('button', {
          type: 'button',
          class: 'icon-button small',
          'aria-label': `Remove ${item.file.name}`,
          onclick: () => {
            uploads = uploads.filter((other) => other !== item);
            if (item.preview) URL.revokeObjectURL(item.preview);
            renderUploads();
          },
        }, '×'),
      ),
    );
  }
}
