// Starts a real `chatd serve` for the tests: on a free port of 127.0.0.1
// and a temporary data directory, both kept across stop/start so that a
// test can kill the server and bring it back as it was.
//
// The binary is $CHATD_BIN, else the debug build of the CI's target dir
// (${CARGO_TARGET_DIR:-$HOME/.cache/chat-ci-target}/debug/chatd).

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, homedir } from "node:os";
import { join } from "node:path";

export const JWT_SECRET = "js-client-test-secret-0123456789abcdef";

/** Rates high enough for tests that post in bulk (rate limits have their own tests). */
export const UNTHROTTLED = {
  CHAT_RATES__SEND_PER_SECOND: "100000",
  CHAT_RATES__SEND_BURST: "100000",
  CHAT_RATES__ACTIONS_PER_SECOND: "100000",
  CHAT_RATES__ACTION_BURST: "100000",
};

export function chatdBin() {
  if (process.env.CHATD_BIN) return process.env.CHATD_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(homedir(), ".cache", "chat-ci-target");
  return join(target, "debug", "chatd");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export class ChatServer {
  constructor(env = {}) {
    this.env = env;
    this.dataDir = mkdtempSync(join(tmpdir(), "chat-js-test-"));
    this.port = 0;
    this.proc = null;
    this.log = [];
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts (or restarts) chatd on the same port and data directory. */
  async start() {
    const bin = chatdBin();
    if (!existsSync(bin)) throw new Error(`chatd binary not found at ${bin}: build it (cargo build) or set CHATD_BIN`);
    if (!this.port) this.port = await freePort();
    // The old process may still hold the port for a moment after a kill.
    for (let attempt = 0; ; attempt++) {
      try {
        await this._spawn(bin);
        return this;
      } catch (err) {
        if (attempt >= 20 || !/address|in use|bind/i.test(String(err.message))) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  _spawn(bin) {
    return new Promise((resolve, reject) => {
      const proc = spawn(bin, ["serve"], {
        env: {
          PATH: process.env.PATH ?? "",
          CHAT_LISTEN: `127.0.0.1:${this.port}`,
          CHAT_DATA_DIR: this.dataDir,
          CHAT_JWT_SECRET: JWT_SECRET,
          CHAT_LOG_FORMAT: "pretty",
          RUST_LOG: "info",
          ...this.env,
        },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let buffered = "";
      let settled = false;
      const timer = setTimeout(() => fail(new Error(`chatd did not start within 60 s:\n${this.log.join("\n")}`)), 60000);
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        proc.kill("SIGKILL");
        reject(err);
      };
      proc.stderr.setEncoding("utf8");
      proc.stderr.on("data", (chunk) => {
        buffered += chunk;
        let nl;
        while ((nl = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          this.log.push(line);
          if (this.log.length > 5000) this.log.shift();
          if (!settled && line.includes("listening on http://")) {
            settled = true;
            clearTimeout(timer);
            this.proc = proc;
            resolve();
          }
        }
      });
      proc.on("exit", (code, signal) => {
        if (!settled) fail(new Error(`chatd exited (${code ?? signal}) before listening:\n${this.log.slice(-20).join("\n")}`));
      });
    });
  }

  /** Sends a signal and waits for the process to exit. */
  async stop(signal = "SIGTERM") {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise((resolve) => {
      proc.once("exit", resolve);
      proc.kill(signal);
    });
  }

  /** SIGKILL: no goodbye to anyone, as in a crash. */
  kill() {
    return this.stop("SIGKILL");
  }

  /** Stops the server and removes its data directory. */
  async dispose() {
    await this.stop("SIGKILL");
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Starts a fresh server; use in before() and dispose() in after(). */
export async function startServer(env = {}) {
  return new ChatServer(env).start();
}
