// The room list of a user with more rooms than `ready` lists, in a real
// browser against a real `chatd serve` that lists two: the rest is read in
// pages, and a page read before a room was removed does not bring it back,
// nor hide a message heard before the page came.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { ChatServer } from './server.js';
import { launch, signIn, roomEntry, holdAnswers, frameHeard, keepEvidence } from './browser.js';

let server;
let browser;
let context;

before(async () => {
  server = await ChatServer.start({ CHAT_LIMITS__READY_ROOMS: '2' });
  browser = await launch();
});

afterEach(async (t) => {
  if (!t.passed) await keepEvidence(t.name, server, context ? [context] : []);
});

after(async () => {
  if (context) await context.close().catch(() => {});
  if (browser) await browser.close();
  if (server) await server.close();
});

test('rooms removed while the rest of the list is read stay removed; messages heard meanwhile show', async () => {
  // Ivy's five public rooms, ordered by id as they were created; Hank is in
  // all of them, so `ready` lists the first two and the app pages in the rest.
  const ivy = await server.register('ivy');
  const hank = await server.register('hank');
  const rooms = [];
  for (const name of ['r1', 'r2', 'r3', 'r4', 'r5']) {
    const room = await server.api('POST', '/rooms', { token: ivy.token, body: { name } });
    await server.api('POST', `/rooms/${room.id}/join`, { token: hank.token });
    rooms.push(room);
  }

  // The page after the first two is read at once and answered late.
  let nextPage;
  let news;
  const session = await signIn(browser, server, 'hank', {
    prepare: async (ctx) => {
      nextPage = await holdAnswers(ctx, /\/api\/v1\/rooms\?.*cursor=/);
      news = frameHeard(ctx, /"type":"message".*news in r5/);
    },
  });
  context = session.context;
  const { page } = session;
  await nextPage.read;

  // Hank leaves r3 and r4 (in the page on its way), then r1 (listed): the
  // same user's events keep their order, so once r1 is gone from the list
  // the app has heard the other two removals.
  for (const room of [rooms[2], rooms[3], rooms[0]]) {
    await server.api('POST', `/rooms/${room.id}/leave`, { token: hank.token });
  }
  await roomEntry(page, 'r1').waitFor({ state: 'detached' });
  // A message in r5 (in the page on its way), heard before the page.
  await server.api('POST', `/rooms/${rooms[4].id}/messages`, { token: ivy.token, body: { content: 'news in r5' } });
  await news;
  nextPage.release();
  const r5 = roomEntry(page, 'r5');
  await r5.waitFor();
  assert.equal(await roomEntry(page, 'r2').count(), 1);
  assert.equal(await roomEntry(page, 'r3').count(), 0, 'r3 stays removed');
  assert.equal(await roomEntry(page, 'r4').count(), 0, 'r4 stays removed');
  assert.match(await r5.locator('.room-preview').textContent(), /: news in r5$/, 'the message heard before the page');
  assert.equal(await r5.locator('.badge.unread').textContent(), '1');
  assert.deepEqual(session.errors.map(String), []);
});
