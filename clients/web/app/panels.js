// The side panel: room directory, new room, new direct message (user
// search), members (presence, DM, add member) and notifications. One panel
// at a time; Esc or the close button closes it and gives focus back.

import { $, h, clear, shortTime } from './dom.js';
import { state, changed } from './store.js';
import { rest, rememberUser, presenceMark, displayName, roomName } from './session.js';
import { avatar } from './sidebar.js';

let openRoom = () => {};
let opener = null;
let current = null;
/** Bumped at every render: an async render that finds it moved on stops. */
let generation = 0;

export function initPanels(open) {
  openRoom = open;
  $('panel-close').addEventListener('click', closePanel);
  $('open-directory').addEventListener('click', () => show('directory'));
  $('open-create').addEventListener('click', () => show('create'));
  $('open-dm').addEventListener('click', () => show('dm'));
  $('open-members').addEventListener('click', () => show('members'));
  $('open-notifications').addEventListener('click', () => show('notifications'));
}

const PANELS = {
  directory: { title: 'Browse rooms', render: directory },
  create: { title: 'New room', render: createRoom },
  dm: { title: 'New message', render: newDm },
  members: { title: 'Members', render: members },
  notifications: { title: 'Notifications', render: notifications },
};

/** Opens a panel by name. */
export function show(name) {
  const panel = PANELS[name];
  opener = document.activeElement;
  current = name;
  $('panel-title').textContent = panel.title;
  $('panel').hidden = false;
  document.body.classList.add('panel-open');
  const body = clear($('panel-body'));
  generation++;
  panel.render(body);
  const first = body.querySelector('input, button, [tabindex]');
  (first || $('panel-close')).focus();
}

/** Closes the open panel; answers whether one was open. */
export function closePanel() {
  if ($('panel').hidden) return false;
  $('panel').hidden = true;
  current = null;
  generation++;
  document.body.classList.remove('panel-open');
  if (opener && document.contains(opener)) opener.focus();
  opener = null;
  return true;
}

/**
 * A `presence` frame: the dots and words of that user in the open panel.
 * (Not a refetch: the frame can come before the server's member list says
 * the same.)
 */
export function showPresence(userId, online) {
  for (const row of $('panel-body').querySelectorAll(`li[data-user-id="${CSS.escape(userId)}"]`)) {
    const dot = row.querySelector('.presence');
    if (dot) dot.classList.toggle('online', online);
    const status = row.querySelector('.member-status');
    if (status) status.textContent = online ? 'online' : 'offline';
  }
}

/** Re-renders the open panel if it shows `name`. */
export function refreshPanel(name) {
  if (current !== name) return;
  generation++;
  PANELS[name].render(clear($('panel-body')));
}

function errorLine() {
  return h('p', { class: 'form-error', role: 'alert', hidden: true });
}

function showError(line, error) {
  line.textContent = error ? error.message || String(error) : '';
  line.hidden = !error;
}

/** A search field that calls `search(text)` as the user types (debounced). */
function searchField(label, placeholder, search) {
  const id = `panel-search-${Math.random().toString(36).slice(2)}`;
  const input = h('input', { id, type: 'search', placeholder, autocomplete: 'off', spellcheck: 'false' });
  let timer = null;
  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => search(input.value.trim()), 150);
  });
  return [h('label', { for: id, class: 'visually-hidden' }, label), input];
}

// ------------------------------------------------------------- directory

function directory(body) {
  const list = h('ul', { class: 'panel-list', 'aria-label': 'Public rooms' });
  const error = errorLine();
  const search = async (prefix) => {
    try {
      const page = await rest.publicRooms({ prefix, limit: 50 });
      clear(list);
      if (page.rooms.length === 0) list.append(h('li', { class: 'empty' }, 'No public rooms match.'));
      for (const room of page.rooms) {
        const member = state.rooms.has(room.id);
        list.append(
          h(
            'li',
            { class: 'panel-item', dataset: { roomId: room.id } },
            h('span', { class: 'room-icon', 'aria-hidden': 'true' }, '#'),
            h('span', { class: 'panel-item-text' }, h('strong', {}, room.name), h('span', { class: 'muted' }, `${room.member_count} member${room.member_count === 1 ? '' : 's'}`)),
            h(
              'button',
              {
                type: 'button',
                class: member ? 'small' : 'small primary',
                'aria-label': `${member ? 'Open' : 'Join'} ${room.name}`,
                onclick: async () => {
                  try {
                    if (!member) await join(room);
                    closePanel();
                    openRoom(room.id);
                  } catch (failure) {
                    showError(error, failure);
                  }
                },
              },
              member ? 'Open' : 'Join',
            ),
          ),
        );
      }
    } catch (failure) {
      showError(error, failure);
    }
  };
  body.append(...searchField('Search public rooms', 'Search rooms', search), error, list);
  search('');
}

async function join(room) {
  const joined = await rest.joinRoom(room.id);
  addRoom(joined);
}

/** Adds a room the user just got into (the `room_added` frame may come later). */
function addRoom(room) {
  if (!state.rooms.has(room.id)) {
    state.rooms.set(room.id, { unread_count: 0, mention_count: 0, role: 'member', ...room });
    changed('rooms');
  }
}

// ------------------------------------------------------------- create

function createRoom(body) {
  const error = errorLine();
  const name = h('input', { id: 'new-room-name', required: true, maxlength: 100, autocomplete: 'off', dir: 'auto' });
  const visibility = h(
    'select',
    { id: 'new-room-visibility' },
    h('option', { value: 'public' }, 'Public: anyone can find and join it'),
    h('option', { value: 'private' }, 'Private: members are added by its owner'),
  );
  const form = h(
    'form',
    {
      class: 'panel-form',
      onsubmit: async (event) => {
        event.preventDefault();
        if (!name.value.trim()) return showError(error, new Error('Give the room a name.'));
        try {
          const room = await rest.createRoom({ name: name.value.trim(), visibility: visibility.value });
          addRoom({ ...room, role: 'owner' });
          closePanel();
          openRoom(room.id);
        } catch (failure) {
          showError(error, failure);
        }
      },
    },
    h('label', { for: 'new-room-name' }, 'Name'),
    name,
    h('label', { for: 'new-room-visibility' }, 'Who can join'),
    visibility,
    error,
    h('button', { type: 'submit', class: 'primary' }, 'Create room'),
  );
  body.append(form);
}

// ------------------------------------------------------------- users and DMs

/** A user search whose results each get `action(user)` buttons. */
function userSearch(body, label, actions) {
  const list = h('ul', { class: 'panel-list', 'aria-label': 'Users' });
  const error = errorLine();
  const search = async (prefix) => {
    showError(error, null);
    if (!prefix) return clear(list);
    try {
      const asked = presenceMark();
      const { users } = await rest.searchUsers({ prefix, limit: 20 });
      clear(list);
      const others = users.filter((user) => user.id !== state.me.id);
      if (others.length === 0) list.append(h('li', { class: 'empty' }, 'Nobody by that name.'));
      for (const user of others) {
        rememberUser(user, asked);
        list.append(
          h(
            'li',
            { class: 'panel-item', dataset: { userId: user.id } },
            avatar(user.id, user.display_name || user.username, { presence: Boolean(state.users.get(user.id)?.online) }),
            h('span', { class: 'panel-item-text' }, h('strong', {}, user.display_name || user.username), h('span', { class: 'muted' }, `@${user.username}`)),
            actions(user, error),
          ),
        );
      }
    } catch (failure) {
      showError(error, failure);
    }
  };
  body.append(...searchField(label, 'Search by username', search), error, list);
}

/** Opens (creating if needed) the DM with a user. */
export async function openDm(user) {
  const room = await rest.openDm(user.id);
  addRoom(room);
  closePanel();
  openRoom(room.id);
}

function dmButton(user, error) {
  return h(
    'button',
    {
      type: 'button',
      class: 'small primary',
      'aria-label': `Message ${user.display_name || user.username}`,
      onclick: () => openDm(user).catch((failure) => showError(error, failure)),
    },
    'Message',
  );
}

function newDm(body) {
  userSearch(body, 'Find a user', dmButton);
}

// ------------------------------------------------------------- members

async function members(body) {
  const roomId = state.current;
  const room = roomId && state.rooms.get(roomId);
  if (!room) return;
  const list = h('ul', { class: 'panel-list', 'aria-label': 'Members' });
  const error = errorLine();
  body.append(h('p', { class: 'muted' }, roomName(room)), error, list);
  const mine = generation;
  try {
    const asked = presenceMark();
    const all = await rest.allMembers(roomId);
    if (mine !== generation) return;
    // A presence frame heard while the pages were read is newer than them.
    for (const member of all) member.online = rememberUser({ ...member.user, online: member.online }, asked).online;
    all.sort((a, b) => Number(b.online) - Number(a.online));
    for (const member of all) {
      const me = member.user.id === state.me.id;
      list.append(
        h(
          'li',
          { class: 'panel-item', dataset: { userId: member.user.id } },
          avatar(member.user.id, member.user.display_name || member.user.username, { presence: member.online }),
          h(
            'span',
            { class: 'panel-item-text' },
            h('strong', {}, me ? `${displayName(member.user.id)} (you)` : member.user.display_name || member.user.username),
            h(
              'span',
              { class: 'muted' },
              `@${member.user.username}${member.role !== 'member' ? ` · ${member.role}` : ''} · `,
              h('span', { class: 'member-status' }, member.online ? 'online' : 'offline'),
            ),
          ),
          me ? null : dmButton(member.user, error),
        ),
      );
    }
  } catch (failure) {
    showError(error, failure);
  }
  if (mine !== generation) return;
  if (room.kind !== 'dm' && !roomId.startsWith('dm:')) {
    const add = h('div', { class: 'panel-section' }, h('h3', {}, 'Add people'));
    userSearch(add, 'Find a user to add', (user, addError) =>
      h(
        'button',
        {
          type: 'button',
          class: 'small',
          'aria-label': `Add ${user.username}`,
          onclick: async () => {
            try {
              await rest.addMember(roomId, user.id);
              refreshPanel('members');
            } catch (failure) {
              showError(addError, failure);
            }
          },
        },
        'Add',
      ),
    );
    body.append(add);
  }
}

// ------------------------------------------------------------- notifications

async function notifications(body) {
  const list = h('ul', { class: 'panel-list', 'aria-label': 'Notifications' });
  const error = errorLine();
  body.append(error, list);
  const mine = generation;
  try {
    const page = await rest.getNotifications({ limit: 50 });
    if (mine !== generation) return;
    if (page.notifications.length === 0) list.append(h('li', { class: 'empty' }, 'Nothing yet. Mentions of you show up here.'));
    for (const notification of page.notifications) {
      const room = state.rooms.get(notification.room_id);
      list.append(
        h(
          'li',
          { class: `panel-item notification${notification.read ? '' : ' unread'}` },
          avatar(notification.sender_id, displayName(notification.sender_id)),
          h(
            'button',
            {
              type: 'button',
              class: 'link panel-item-text',
              onclick: () => {
                closePanel();
                openRoom(notification.room_id);
              },
            },
            h('strong', {}, `${displayName(notification.sender_id)} mentioned you`),
            h('span', { class: 'muted' }, `${room ? roomName(room) : 'a room'} · ${shortTime(notification.created_at)}`),
          ),
        ),
      );
    }
    const newestId = page.notifications[0] && page.notifications[0].id;
    if (newestId && page.notifications.some((notification) => !notification.read)) {
      await rest.markNotificationsRead(newestId);
    }
    state.unreadNotifications = 0;
    state.heardWhileCounting = null;
    changed('notifications');
  } catch (failure) {
    showError(error, failure);
  }
}
