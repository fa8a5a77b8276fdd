// The web app in a real browser against a real `chatd serve`: two users
// chatting, reload, the server killed and restarted, user content as text,
// and screenshots at desktop and phone width.

import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { ChatServer } from './server.js';
import { launch, signUp, signIn, screenshot, roomEntry, messages, storedMessage, holdAnswers, frameHeard, send, keepEvidence, DESKTOP, PHONE } from './browser.js';
import { gradientPng } from './png.js';

let server;
let browser;
const contexts = [];

before(async () => {
  server = await ChatServer.start();
  browser = await launch();
});

// The contexts a test opened, for the evidence of a failure.
let firstOfTest = 0;
beforeEach(() => {
  firstOfTest = contexts.length;
});
afterEach(async (t) => {
  if (!t.passed) await keepEvidence(t.name, server, contexts.slice(firstOfTest));
});

after(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  if (browser) await browser.close();
  if (server) await server.close();
});

async function user(name, options) {
  const session = await signUp(browser, server, name, options);
  contexts.push(session.context);
  return session;
}

async function existingUser(name, options) {
  const session = await signIn(browser, server, name, options);
  contexts.push(session.context);
  return session;
}

/** Joins the public room `name` from the directory and waits until it is open. */
async function joinFromDirectory(page, name) {
  await page.locator('#open-directory').click();
  await page.getByRole('button', { name: `Join ${name}` }).click();
  await page.locator('#room-title', { hasText: name }).waitFor();
}

async function createRoom(page, name, visibility = 'public') {
  await page.locator('#open-create').click();
  await page.locator('#new-room-name').fill(name);
  await page.locator('#new-room-visibility').selectOption(visibility);
  await page.locator('#panel button[type=submit]').click();
  await page.locator('#room-title', { hasText: name }).waitFor();
}

test('two users: directory, messages both ways, DM, mention, typing, unread', async () => {
  const alice = await user('alice');
  const bob = await user('bob');

  await createRoom(alice.page, 'general');

  // Bob finds the room in the directory and joins it.
  await bob.page.locator('#open-directory').click();
  await bob.page.locator('#panel-body input[type=search]').fill('gen');
  await bob.page.getByRole('button', { name: 'Join general' }).click();
  await bob.page.locator('#room-title', { hasText: 'general' }).waitFor();
  assert.equal(await bob.page.locator('#panel').isHidden(), true, 'the panel closes after joining');

  // Messages both ways.
  await send(alice.page, 'hello bob');
  await messages(bob.page, 'hello bob').waitFor();
  await send(bob.page, 'hi alice');
  await messages(alice.page, 'hi alice').waitFor();

  // Typing shown, then cleared when Bob empties the composer. Writing "hi
  // alice" sent `typing: true` already, and the server drops more than one
  // per 2 s per room: wait that out.
  await bob.page.waitForTimeout(2100);
  await bob.page.locator('#composer-input').pressSequentially('I am wri');
  await alice.page.locator('#typing', { hasText: 'Bob is typing' }).waitFor();
  await bob.page.locator('#composer-input').fill('');
  await bob.page.locator('#composer-input').dispatchEvent('input');
  await alice.page.waitForFunction(() => document.getElementById('typing').textContent === '');

  // An @mention: autocomplete in Alice's composer, highlighted for Bob, a notification.
  const input = alice.page.locator('#composer-input');
  await input.fill('look here ');
  await input.pressSequentially('@b');
  await alice.page.locator('#mention-list li', { hasText: '@bob' }).waitFor();
  // Chosen from the list drawn for "@b" while the lookup for "@bo" is
  // still on its way (held back here): the whole "@bo" is completed.
  const slowLookup = /\/users\?.*prefix=bo/;
  await alice.page.route(slowLookup, async (route) => {
    await new Promise((resolve) => setTimeout(resolve, 500));
    await route.continue().catch(() => {});
  });
  await input.pressSequentially('o');
  await input.press('Enter');
  assert.equal(await input.inputValue(), 'look here @bob ');
  await alice.page.unroute(slowLookup);
  await input.pressSequentially('please');
  await input.press('Enter');
  const mention = bob.page.locator('#messages article.mentions-me .mention-me', { hasText: '@bob' });
  await mention.waitFor();
  await bob.page.locator('#notifications-badge', { hasText: '1' }).waitFor();
  await bob.page.locator('#open-notifications').click();
  await bob.page.locator('#panel-body li', { hasText: 'Alice mentioned you' }).waitFor();
  await bob.page.keyboard.press('Escape');
  await bob.page.locator('#panel').waitFor({ state: 'hidden' });
  await bob.page.locator('#notifications-badge').waitFor({ state: 'hidden' });

  // A DM from Bob, found by user search; unread on Alice's side until she opens it.
  await bob.page.locator('#open-dm').click();
  await bob.page.locator('#panel-body input[type=search]').fill('ali');
  await bob.page.getByRole('button', { name: 'Message Alice' }).click();
  await bob.page.locator('#room-title', { hasText: 'Alice' }).waitFor();
  await send(bob.page, 'just between us');
  const dm = roomEntry(alice.page, 'Bob');
  await dm.locator('.badge.unread', { hasText: '1' }).waitFor();

  // Unread rising in "general" for Bob while he is in the DM, cleared on reading.
  await send(alice.page, 'one');
  await send(alice.page, 'two');
  const general = roomEntry(bob.page, 'general');
  await general.locator('.badge.unread', { hasText: '2' }).waitFor();
  await general.locator('button').click();
  await messages(bob.page, 'two').waitFor();
  await general.locator('.badge.unread').waitFor({ state: 'detached' });

  await dm.locator('button').click();
  await messages(alice.page, 'just between us').waitFor();
  await dm.locator('.badge.unread').waitFor({ state: 'detached' });
  await send(alice.page, 'sure');
  await roomEntry(bob.page, 'Alice').locator('.badge.unread', { hasText: '1' }).waitFor();

  // Reply, edit and delete by Alice, seen by Bob.
  await alice.page.locator('#room-list .room-name', { hasText: 'general' }).click();
  const hiAlice = alice.page.locator('#messages article.message', { has: alice.page.locator('.content', { hasText: 'hi alice' }) });
  await hiAlice.hover();
  await hiAlice.getByRole('button', { name: 'Reply to Bob' }).click();
  await alice.page.locator('#reply-preview', { hasText: 'Replying to Bob' }).waitFor();
  await send(alice.page, 'welcome!');
  await bob.page.locator('#messages article.message', { hasText: 'welcome!' }).locator('.reply-quote', { hasText: 'hi alice' }).waitFor();
  const one = await storedMessage(alice.page, 'one');
  await one.hover();
  await one.getByRole('button', { name: 'Edit' }).click();
  await one.locator('textarea').fill('one, edited');
  await one.locator('textarea').press('Enter');
  await bob.page.locator('#messages article.message .content', { hasText: 'one, edited' }).locator('.edited').waitFor();
  await send(alice.page, 'oops, wrong room');
  await messages(bob.page, 'oops, wrong room').waitFor();
  const oops = await storedMessage(alice.page, 'oops, wrong room');
  await oops.hover();
  await oops.getByRole('button', { name: 'Delete' }).click();
  await oops.getByRole('button', { name: 'Delete for everyone?' }).click();
  await bob.page.locator('#messages article.message.deleted', { hasText: 'This message was deleted.' }).waitFor();
  await messages(bob.page, 'oops, wrong room').waitFor({ state: 'detached' });

  // An image attachment: upload progress on Alice's side, a preview on Bob's.
  await alice.page.locator('#file-input').setInputFiles({ name: 'sunset.png', mimeType: 'image/png', buffer: gradientPng(480, 300) });
  await alice.page.locator('#attachments-pending .pending-attachment.done', { hasText: 'sunset.png' }).waitFor();
  await send(alice.page, 'a picture');
  const picture = bob.page.locator('#messages article.message', { hasText: 'a picture' }).locator('img.attachment-image');
  await picture.waitFor();
  await bob.page.waitForFunction(() => {
    const image = document.querySelector('#messages img.attachment-image');
    return image && image.src.startsWith('blob:') && image.complete && image.naturalWidth > 0;
  });

  // The read position is stored: a fresh load shows no unread for Bob.
  await bob.page.reload();
  await roomEntry(bob.page, 'general').waitFor();
  assert.equal(await roomEntry(bob.page, 'general').locator('.badge.unread').count(), 0);

  // Screenshots of a conversation, desktop then phone width.
  await bob.page.locator('#room-list .room-name', { hasText: 'general' }).click();
  await messages(bob.page, 'a picture').waitFor();
  await bob.page.mouse.move(0, 0);
  await screenshot(bob.page, 'chat-desktop');
  await bob.page.setViewportSize(PHONE);
  await screenshot(bob.page, 'chat-phone');
  await bob.page.locator('#back').click();
  await screenshot(bob.page, 'rooms-phone');
  await bob.page.setViewportSize(DESKTOP);

  for (const session of [alice, bob]) {
    assert.deepEqual(session.errors.map(String), [], `${session.username}: no page errors`);
    assert.deepEqual(session.dialogs, []);
  }
});

test('user content is text: markup in a message opens no dialog', async () => {
  const mallory = await user('mallory');
  const victim = await user('victim');
  await createRoom(mallory.page, 'xss');
  await joinFromDirectory(victim.page, 'xss');

  const payload = '<img src=x onerror=alert(1)>';
  await send(mallory.page, payload);
  const shown = messages(victim.page, payload);
  await shown.waitFor();
  assert.equal(await shown.textContent(), payload);
  assert.equal(await victim.page.locator('#messages img[src=x]').count(), 0, 'no element made from it');
  // The room list's preview shows it as text too.
  assert.equal(await roomEntry(victim.page, 'xss').locator('.room-preview img').count(), 0);
  await victim.page.waitForTimeout(500);
  assert.deepEqual(victim.dialogs, [], 'no dialog opened');
  assert.deepEqual(mallory.dialogs, [], 'no dialog opened');
});

/** The computed direction of the element `locator` finds: 'ltr' or 'rtl'. */
function direction(locator) {
  return locator.evaluate((element) => getComputedStyle(element).direction);
}

/** Whether the first `first` of the element's text is laid out left of its last `last`. */
function laidOutBefore(locator, first, last) {
  return locator.evaluate(
    (element, [first, last]) => {
      const text = element.firstChild;
      const left = (index) => {
        const range = document.createRange();
        range.setStart(text, index);
        range.setEnd(text, index + 1);
        return range.getBoundingClientRect().left;
      };
      return left(text.data.indexOf(first)) < left(text.data.lastIndexOf(last));
    },
    [first, last],
  );
}

test('text runs in its own direction and cannot reorder what is beside it', async () => {
  const writer = await user('rania');
  const reader = await user('yusuf');
  await createRoom(writer.page, 'bidi');
  await joinFromDirectory(reader.page, 'bidi');

  // An Arabic message is laid out right to left (its "!" on its left), a
  // Latin one left to right, in the same timeline; so is it as it is typed.
  const arabic = 'مرحبا بالجميع!';
  await writer.page.locator('#composer-input').fill(arabic);
  assert.equal(await direction(writer.page.locator('#composer-input')), 'rtl');
  await send(writer.page, arabic);
  await messages(reader.page, arabic).waitFor();
  assert.equal(await direction(messages(reader.page, arabic)), 'rtl');
  await send(writer.page, 'hello all!');
  await messages(reader.page, 'hello all!').waitFor();
  assert.equal(await direction(messages(reader.page, 'hello all!')), 'ltr');

  // An override (U+202E) left open in a message ends with the message: the
  // app's own "(edited)" beside it still reads left to right.
  const open = 'safe \u202Etxet';
  await send(writer.page, open);
  const sent = await storedMessage(writer.page, open);
  await sent.hover();
  await sent.getByRole('button', { name: 'Edit' }).click();
  await sent.locator('textarea').fill(`${open}!`);
  await sent.locator('textarea').press('Enter');
  const shown = reader.page.locator('#messages article.message .content', { hasText: 'safe' });
  const edited = shown.locator('.edited');
  await edited.waitFor();
  assert.equal(await edited.textContent(), ' (edited)');
  assert.ok(await laidOutBefore(edited, 'e', 'd'), '"(edited)" is not reversed by the message before it');
  // The message itself is shown as written, override included.
  assert.equal(await shown.locator('.user-text').textContent(), `${open}!`);
  await screenshot(reader.page, 'bidi-desktop');
  assert.deepEqual(reader.errors.map(String), []);
});

test('files chosen together go up a few at a time, and all of them are sent', async () => {
  const ivan = await user('ivan');
  await createRoom(ivan.page, 'photos');
  // Slow uploads: each is held a while on its way, counting how many are
  // on their way at once (the server streams at most 4 of a user's).
  let onTheirWay = 0;
  let most = 0;
  await ivan.page.route('**/api/v1/files', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    onTheirWay += 1;
    most = Math.max(most, onTheirWay);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const response = await route.fetch();
    onTheirWay -= 1;
    await route.fulfill({ response }).catch(() => {});
  });
  const files = Array.from({ length: 8 }, (_, i) => ({
    name: `note-${i}.txt`,
    mimeType: 'text/plain',
    buffer: Buffer.from(`note number ${i}`),
  }));
  await ivan.page.locator('#file-input').setInputFiles(files);
  const pending = ivan.page.locator('#attachments-pending .pending-attachment');
  await pending.filter({ hasText: 'waiting' }).first().waitFor();
  await ivan.page.waitForFunction(
    () => document.querySelectorAll('#attachments-pending .pending-attachment.done').length === 8,
  );
  assert.equal(most, 3, 'three uploads on their way at most, and three at once');
  await send(ivan.page, 'eight notes');
  const sent = ivan.page.locator('#messages article.message', { hasText: 'eight notes' });
  await sent.locator('.attachment.file').nth(7).waitFor();
  assert.equal(await sent.locator('.attachment.file').count(), 8);
  assert.deepEqual(ivan.errors.map(String), []);
});

test('a message heard while the room\'s history is on its way is shown', async () => {
  const frank = await user('frank');
  const grace = await user('grace');
  await createRoom(frank.page, 'busy');
  // Grace's first page of the room is read at once but answered late, so a
  // message sent meanwhile reaches her live before the page that lacks it.
  const history = /\/api\/v1\/rooms\/[^/?]+\/messages/;
  const firstPage = await holdAnswers(grace.page, history);
  await grace.page.locator('#open-directory').click();
  await grace.page.getByRole('button', { name: 'Join busy' }).click();
  await firstPage.read;
  await send(frank.page, 'while you were loading');
  await roomEntry(grace.page, 'busy').locator('.room-preview', { hasText: 'while you were loading' }).waitFor();
  firstPage.release();
  await messages(grace.page, 'while you were loading').waitFor();
  await grace.page.unroute(history);
});

test('a mention heard while the bell\'s count is read is counted', async () => {
  const oscar = await server.register('oscar');
  const nora = await server.register('nora');
  const room = await server.api('POST', '/rooms', { token: oscar.token, body: { name: 'bells' } });
  await server.api('POST', `/rooms/${room.id}/join`, { token: nora.token });
  // The count is read at once on sign-in but answered late, so a mention
  // made meanwhile is heard live before a page that lacks it arrives.
  const unread = /\/api\/v1\/notifications\?/;
  let count;
  const { page } = await existingUser('nora', {
    prepare: async (context) => {
      count = await holdAnswers(context, unread);
    },
  });
  await count.read;
  await server.api('POST', `/rooms/${room.id}/messages`, { token: oscar.token, body: { content: 'look @nora' } });
  const badge = page.locator('#notifications-badge');
  await badge.filter({ hasText: /^1$/ }).waitFor();
  const answered = page.waitForResponse(unread);
  count.release();
  await answered;
  await page.waitForTimeout(500);
  assert.equal(await badge.isVisible(), true, 'the mention still counts once the page is in');
  assert.equal(await badge.textContent(), '1');
});

test('mentions made while the connection was down reach the bell', async () => {
  const paul = await server.register('paul');
  const quinn = await server.register('quinn');
  const room = await server.api('POST', '/rooms', { token: paul.token, body: { name: 'away' } });
  await server.api('POST', `/rooms/${room.id}/join`, { token: quinn.token });
  // Quinn's WebSockets pass through a gate: open, they reach the server;
  // shut, they are closed at once, as if the server could not be reached.
  let open = true;
  const upstream = [];
  let refused;
  const firstRefusal = new Promise((resolve) => (refused = resolve));
  const { page } = await existingUser('quinn', {
    prepare: (context) =>
      context.routeWebSocket(/\/ws/, (ws) => {
        if (open) return upstream.push(ws.connectToServer());
        refused();
        ws.close({ code: 1011, reason: 'gate shut' });
      }),
  });
  await roomEntry(page, 'away').waitFor();

  open = false;
  for (const ws of upstream) ws.close();
  await firstRefusal;
  await page.locator('#banner', { hasText: 'Reconnecting' }).waitFor();
  await server.api('POST', `/rooms/${room.id}/messages`, { token: paul.token, body: { content: 'while you were out @quinn' } });
  open = true;
  await page.locator('#banner', { hasText: 'Back online' }).waitFor();
  await roomEntry(page, 'away').locator('.room-preview', { hasText: 'while you were out' }).waitFor();
  await page.locator('#notifications-badge').filter({ hasText: /^1$/ }).waitFor();
});

test('a presence change heard while a user is read wins over the older answer', async () => {
  const rita = await server.register('rita');
  const samAccount = await server.register('sam');
  await server.api('POST', '/dms', { token: rita.token, body: { user_id: samAccount.user.id } });
  const sam = await existingUser('sam');
  // Rita's app reads Sam (her DM's peer) at once, answered late: the answer
  // says online. Sam leaves meanwhile, and Rita hears it live.
  let samRead;
  let offline;
  const { page } = await existingUser('rita', {
    prepare: async (context) => {
      samRead = await holdAnswers(context, /\/api\/v1\/users\/\d+$/);
      offline = frameHeard(context, /"type":"presence".*"online":false/);
    },
  });
  await samRead.read;
  await sam.context.close();
  await offline;
  samRead.release();
  const dm = roomEntry(page, 'sam');
  await dm.waitFor();
  await page.waitForTimeout(500);
  assert.equal(await dm.locator('.presence').count(), 1, 'a presence dot');
  assert.equal(await dm.locator('.presence.online').count(), 0, 'Sam shown offline');
});

test('reload restores rooms and history; a killed and restarted server is caught up without duplicates', async () => {
  const carol = await user('carol');
  await createRoom(carol.page, 'durable');
  for (const text of ['first', 'second', 'third']) {
    await send(carol.page, text);
    await messages(carol.page, text).waitFor();
  }

  await carol.page.reload();
  await carol.page.locator('#room-title', { hasText: 'durable' }).waitFor();
  for (const text of ['first', 'second', 'third']) await messages(carol.page, text).waitFor();
  assert.equal(await roomEntry(carol.page, 'durable').count(), 1);

  // A REST client in the same room.
  const dave = await server.register('dave');
  const roomId = await carol.page.locator('#room-list li', { hasText: 'durable' }).getAttribute('data-room-id');
  await server.api('POST', `/rooms/${roomId}/join`, { token: dave.token });

  await server.kill();
  await carol.page.locator('#banner', { hasText: 'Reconnecting' }).waitFor();
  // Written while the server is down: queued, shown as pending.
  await send(carol.page, 'typed offline');
  await carol.page.locator('#messages article.pending', { hasText: 'typed offline' }).waitFor();

  await server.run();
  for (const text of ['while away 1', 'while away 2']) {
    await server.api('POST', `/rooms/${roomId}/messages`, { token: dave.token, body: { content: text } });
  }
  await carol.page.locator('#banner', { hasText: 'Back online' }).waitFor();
  for (const text of ['while away 1', 'while away 2', 'typed offline']) await messages(carol.page, text).waitFor();
  await carol.page.locator('#messages article.pending').waitFor({ state: 'detached' });

  const texts = await carol.page.locator('#messages article.message .content').allTextContents();
  const expected = ['first', 'second', 'third', 'typed offline', 'while away 1', 'while away 2'];
  for (const text of expected) {
    assert.equal(texts.filter((shown) => shown === text).length, 1, `"${text}" shown once in ${JSON.stringify(texts)}`);
  }
  const stored = await server.api('GET', `/rooms/${roomId}/messages`, { token: dave.token });
  assert.deepEqual(
    stored.messages.map((message) => message.content).sort(),
    [...expected].sort(),
    'the server stored each message once',
  );
  assert.deepEqual(carol.errors.map(String).filter((error) => !/ERR_CONNECTION_REFUSED|WebSocket/.test(error)), []);
});

test('sign in, older history on scroll-up, sign out', async () => {
  const erin = await server.register('erin');
  const room = await server.api('POST', '/rooms', { token: erin.token, body: { name: 'archive' } });
  const count = 70;
  for (let n = 1; n <= count; n++) {
    await server.api('POST', `/rooms/${room.id}/messages`, { token: erin.token, body: { content: `archived ${n}` } });
  }

  const session = await existingUser('erin');
  const { page } = session;
  await roomEntry(page, 'archive').locator('button').click();
  await messages(page, `archived ${count}`).waitFor();
  assert.equal(await messages(page, 'archived 1').count(), 0, 'only the newest page at first');
  await page.locator('.history-start', { hasText: 'beginning' }).waitFor({ state: 'detached' });

  // Scrolling up loads the rest, keeping what was on screen in place.
  await page.locator('#messages').evaluate((list) => { list.scrollTop = 0; });
  await messages(page, 'archived 1').waitFor();
  await page.locator('.history-start', { hasText: 'beginning' }).waitFor();
  const texts = await page.locator('#messages article.message .content').allTextContents();
  assert.deepEqual(texts, Array.from({ length: count }, (_, n) => `archived ${n + 1}`));
  assert.equal(await page.locator('#messages .day').count(), 1, 'one day separator: all sent today');

  // Sign out: back to the form, the token gone from the tab and revoked.
  const token = await page.evaluate(() => sessionStorage.getItem('chat.token'));
  assert.ok(token);
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.locator('#auth-form').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await page.reload();
  await page.locator('#auth-form').waitFor();
  assert.equal(await page.locator('#app').isHidden(), true);
  await screenshot(page, 'sign-in-desktop');
  assert.deepEqual(session.errors.map(String), []);
  await assert.rejects(server.api('GET', '/users/me', { token }), /401/);
});

test('a private room: members added from the members panel, presence shown; panels at phone width', async () => {
  const owner = await user('olivia');
  const guest = await user('gus', { viewport: PHONE });
  await screenshot(guest.page, 'rooms-empty-phone');
  await createRoom(owner.page, 'secret', 'private');

  // Not in the directory.
  await guest.page.locator('#open-directory').click();
  await guest.page.locator('#panel-body li.empty', { hasText: 'No public rooms match' }).or(guest.page.locator('#panel-body li[data-room-id]')).first().waitFor();
  assert.equal(await guest.page.locator('#panel-body li', { hasText: 'secret' }).count(), 0);
  await screenshot(guest.page, 'directory-phone');
  await guest.page.keyboard.press('Escape');

  // The owner adds Gus; the room appears in his list at once.
  await owner.page.locator('#open-members').click();
  await owner.page.locator('#panel-body li', { hasText: '(you)' }).waitFor();
  await owner.page.getByLabel('Find a user to add').fill('gu');
  await owner.page.getByRole('button', { name: 'Add gus' }).click();
  const gusRow = owner.page.locator('#panel-body .panel-list[aria-label=Members] li', { hasText: '@gus' });
  await gusRow.waitFor();
  // Gus is online (his page is connected): a green dot.
  await gusRow.locator('.presence.online').waitFor();
  await screenshot(owner.page, 'members-desktop');
  await roomEntry(guest.page, 'secret').waitFor();

  await send(owner.page, 'welcome to the secret room');
  await roomEntry(guest.page, 'secret').locator('.badge.unread', { hasText: '1' }).waitFor();
  await roomEntry(guest.page, 'secret').locator('button').click();
  await messages(guest.page, 'welcome to the secret room').waitFor();
  await roomEntry(owner.page, 'secret').waitFor();

  // Gus goes away: the owner sees him offline.
  await guest.context.close();
  await gusRow.locator('.presence:not(.online)').waitFor();
  assert.deepEqual(owner.errors.map(String), []);
});
