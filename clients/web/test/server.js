// A real `chatd serve` for the browser tests: started on a free port with a
// temporary data directory, killed (SIGKILL) or stopped, and restarted on the
// same port and directory. The binary comes from CHATD_BIN, by default the
// debug build `cargo test` leaves in the CI target directory.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHATD_BIN =
  process.env.CHATD_BIN ||
  join(process.env.CARGO_TARGET_DIR || join(homedir(), '.cache/chat-ci-target'), 'debug/chatd');

/** Every test user's password: `register` and the browser's sign-in and sign-up use it. */
export const PASSWORD = 'password123';

/** A port nobody listens on now (the OS's pick, released at once). */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class ChatServer {
  constructor(port, dataDir, env = {}) {
    this.port = port;
    this.dataDir = dataDir;
    this.env = env;
    this.base = `http://127.0.0.1:${port}`;
    this.child = null;
    this.log = [];
  }

  /** Starts a server on a fresh port and data directory, with settings (`CHAT_…`) in `env`. */
  static async start(env = {}) {
    const server = new ChatServer(await freePort(), mkdtempSync(join(tmpdir(), 'chat-web-')), env);
    await server.run();
    return server;
  }

  /** Runs the binary and waits until it answers /healthz. */
  async run() {
    const child = spawn(CHATD_BIN, ['serve', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir], {
      env: {
        PATH: process.env.PATH,
        CHAT_LOG_FORMAT: 'pretty',
        RUST_LOG: 'warn',
        // Tests post history in bulk over REST; the send rate limit has its own tests.
        CHAT_RATES__SEND_PER_SECOND: '1000',
        CHAT_RATES__SEND_BURST: '1000',
        ...this.env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    child.stderr.on('data', (chunk) => {
      this.log.push(chunk.toString());
      if (this.log.length > 500) this.log.shift();
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    this.exited = exited;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) {
        throw new Error(`chatd exited with ${child.exitCode}: ${this.log.join('')}`);
      }
      try {
        const answer = await fetch(`${this.base}/healthz`);
        if (answer.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`chatd did not start: ${this.log.join('')}`);
      await sleep(50);
    }
  }

  /** SIGKILL: no drain, no close frames; the browser sees the socket die. */
  async kill() {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** Stops the server and removes its data directory. */
  async close() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** A REST call as a plain HTTP client would make it. */
  async api(method, path, { token, body } = {}) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const answer = await fetch(`${this.base}/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await answer.text();
    const json = text ? JSON.parse(text) : null;
    if (!answer.ok) throw new Error(`${method} ${path}: ${answer.status} ${text}`);
    return json;
  }

  /** Registers `username` with the password the browser helpers sign in with. */
  register(username) {
    return this.api('POST', '/auth/register', { body: { username, password: PASSWORD } });
  }
}
