// Headless Chromium for the browser tests: Debian's `chromium` driven by
// playwright-core (no browser download), pages served from the server's own
// http://127.0.0.1 origin.

import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PASSWORD } from './server.js';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const ARTIFACTS = process.env.CHAT_CI_ARTIFACTS || '/var/cache/chat-ci/artifacts';
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/**
 * A user in a browser context of their own: signs up on the app and waits
 * for the room list. Collects page errors and dialogs, which tests check.
 * `options.prepare(context)`, if given, runs before the app loads (to route
 * its requests, say).
 */
export async function signUp(browser, server, username, options = {}) {
  return enter(browser, server, username, { ...options, signUp: true });
}

/** The same for a user who exists (registered with PASSWORD): signs in. */
export async function signIn(browser, server, username, options = {}) {
  return enter(browser, server, username, { ...options, signUp: false });
}

async function enter(browser, server, username, { viewport = DESKTOP, signUp, prepare }) {
  const context = await browser.newContext({ viewport });
  if (prepare) await prepare(context);
  const page = await context.newPage();
  const errors = [];
  const dialogs = [];
  page.on('pageerror', (error) => errors.push(error));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(new Error(message.text()));
  });
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  try {
    await page.goto(server.base + '/');
    if (signUp) await page.locator('#auth-switch').click();
    await page.locator('#auth-username').fill(username);
    if (signUp) await page.locator('#auth-display').fill(username[0].toUpperCase() + username.slice(1));
    await page.locator('#auth-password').fill(PASSWORD);
    await page.locator('#auth-submit').click();
    await page.locator('#app').waitFor({ state: 'visible' });
    await page.locator('#banner').waitFor({ state: 'hidden' });
  } catch (error) {
    error.message += `\npage errors: ${errors.map(String).join('; ')}\nserver log: ${server.log.join('')}`;
    throw error;
  }
  return { username, context, page, errors, dialogs };
}

/** A screenshot of `page` as ARTIFACTS/`folder`/`name`.png; answers its path. */
export async function screenshot(page, name, folder = 'screenshots') {
  const dir = join(ARTIFACTS, folder);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/**
 * After a failed test, what it leaves to read: a screenshot of each page of
 * `contexts` and the server's log, in ARTIFACTS/failures/, and the log's
 * last lines on stderr (so CI's own output shows them).
 */
export async function keepEvidence(testName, server, contexts) {
  const dir = join(ARTIFACTS, 'failures');
  mkdirSync(dir, { recursive: true });
  const slug = testName.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
  const log = server.log.join('');
  writeFileSync(join(dir, `${slug}.server.log`), log);
  let shot = 0;
  for (const context of contexts) {
    for (const page of context.pages()) {
      shot += 1;
      await screenshot(page, `${slug}-${shot}`, 'failures').catch(() => {});
    }
  }
  const tail = log.split('\n').slice(-40).join('\n');
  console.error(`'${testName}' failed; evidence in ${dir}/${slug}.*; the server's log, last lines:\n${tail}`);
}

/** The room list's entry for a room named `name`. */
export function roomEntry(page, name) {
  return page.locator('#room-list li').filter({ has: page.locator('.room-name', { hasText: name }) });
}

/** Matches a text that is exactly `text`. */
function exactly(text) {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}

/** The stored messages' contents that are exactly `text`. */
export function messages(page, text) {
  return page.locator('#messages article.message:not(.pending) .content').filter({ hasText: exactly(text) });
}

/**
 * The stored message whose content is exactly `text`, located by its id so
 * that the locator holds across re-renders. Waits for it: a message just
 * sent is shown pending, without an id, until the server acknowledges it.
 */
export async function storedMessage(page, text) {
  const article = page
    .locator('#messages article.message[data-id]')
    .filter({ has: page.locator('.content', { hasText: exactly(text) }) });
  await article.waitFor();
  const id = await article.getAttribute('data-id');
  return page.locator(`#messages article[data-id="${id}"]`);
}

/**
 * Holds back the answers to requests matching `pattern` on `target` (a page
 * or a browser context): each request reaches the server at once, but its
 * answer reaches the app only after `release()`. `read` settles once the
 * server has answered the first of them.
 */
export async function holdAnswers(target, pattern) {
  let answered;
  const read = new Promise((resolve) => (answered = resolve));
  let release;
  const released = new Promise((resolve) => (release = resolve));
  await target.route(pattern, async (route) => {
    const response = await route.fetch();
    answered();
    await released;
    await route.fulfill({ response }).catch(() => {});
  });
  return { read, release };
}

/**
 * Settles once a page of `context` receives a WebSocket frame whose payload
 * matches `pattern`: proof that the app has heard it. Call it before the
 * page opens its WebSocket (in sign-in's `prepare`).
 */
export function frameHeard(context, pattern) {
  return new Promise((resolve) => {
    context.on('page', (page) =>
      page.on('websocket', (ws) =>
        ws.on('framereceived', ({ payload }) => {
          if (pattern.test(String(payload))) resolve();
        }),
      ),
    );
  });
}

export async function send(page, text) {
  const input = page.locator('#composer-input');
  await input.fill(text);
  await input.press('Enter');
}
