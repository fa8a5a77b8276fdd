// RestClient: one method per REST call of docs/protocol.md.
//
// Each method resolves with the answer's JSON body exactly as the protocol
// describes it (undefined for 202 and 204) and rejects with a ChatError.
// fetch and XMLHttpRequest are injectable so that the same code runs in
// browsers, Node 18+ and React Native.

import { ChatError } from "./errors.js";
import { newClientId } from "./ids.js";

const API = "/api/v1";

/** "https://host/" → "https://host"; "" stays "" (same origin). */
function trimBase(url) {
  return String(url ?? "").replace(/\/+$/, "");
}

function seg(v) {
  return encodeURIComponent(String(v));
}

function queryString(query) {
  if (!query) return "";
  const parts = [];
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === "") continue;
    parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  }
  return parts.length ? `?${parts.join("&")}` : "";
}

/** `Retry-After` in seconds (or an HTTP date) → milliseconds. */
function retryAfterHeader(value) {
  if (!value) return undefined;
  const secs = Number(value);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

/** Builds the ChatError for a non-2xx answer from its status, headers and body text. */
export function errorFromResponse(status, bodyText, retryAfter) {
  let code = ChatError.codeForStatus(status);
  let message = `HTTP ${status}`;
  let retryAfterMs = retryAfterHeader(retryAfter);
  try {
    const body = JSON.parse(bodyText);
    if (body && body.error && typeof body.error === "object") {
      if (typeof body.error.code === "string") code = body.error.code;
      if (typeof body.error.message === "string") message = body.error.message;
      if (typeof body.error.retry_after_ms === "number") retryAfterMs = body.error.retry_after_ms;
    }
  } catch {
    // Not the error JSON (a proxy's page, say): the status decides the code.
  }
  return new ChatError(code, message, { status, retryAfterMs });
}

/** Pick out the RequestOptions (signal) from an options/query object. */
function split(opts) {
  if (!opts) return [{}, {}];
  const { signal, ...rest } = opts;
  return [rest, { signal }];
}

export class RestClient {
  constructor(options = {}) {
    this.baseUrl = trimBase(options.baseUrl);
    this.token = options.token ?? null;
    this._fetch = options.fetch ?? (typeof globalThis.fetch === "function" ? globalThis.fetch.bind(globalThis) : null);
    this._XHR =
      options.XMLHttpRequest !== undefined
        ? options.XMLHttpRequest
        : typeof globalThis.XMLHttpRequest === "function"
          ? globalThis.XMLHttpRequest
          : null;
    this.timeoutMs = options.timeoutMs ?? 30000;
    this.onUnauthorized = options.onUnauthorized ?? null;
  }

  setToken(token) {
    this.token = token ?? null;
  }

  _url(path, query) {
    return `${this.baseUrl}${API}${path}${queryString(query)}`;
  }

  _authHeaders(auth) {
    return auth && this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  /**
   * Runs fetch with the client's timeout and the caller's signal; maps a
   * failure without an answer to `network`, `timeout` or `aborted`.
   */
  async _fetchRaw(url, init, signal, timeoutMs = this.timeoutMs) {
    if (!this._fetch) throw new ChatError("network", "no fetch implementation: pass options.fetch");
    if (signal && signal.aborted) throw new ChatError("aborted", "request aborted");
    const controller = new AbortController();
    let timedOut = false;
    const timer = timeoutMs > 0 ? setTimeout(() => ((timedOut = true), controller.abort()), timeoutMs) : null;
    const onAbort = () => controller.abort();
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
    try {
      return await this._fetch(url, { ...init, signal: controller.signal });
    } catch (err) {
      if (timedOut) throw new ChatError("timeout", `no answer within ${timeoutMs} ms`, { cause: err });
      if (signal && signal.aborted) throw new ChatError("aborted", "request aborted", { cause: err });
      throw new ChatError("network", `network error: ${err && err.message ? err.message : err}`, { cause: err });
    } finally {
      if (timer) clearTimeout(timer);
      if (signal) signal.removeEventListener("abort", onAbort);
    }
  }

  async _check(res, auth) {
    if (res.ok) return res;
    const err = errorFromResponse(res.status, await res.text().catch(() => ""), res.headers.get("retry-after"));
    if (res.status === 401 && auth && this.onUnauthorized) this.onUnauthorized(err);
    throw err;
  }

  /** Any call under /api/v1: JSON body in, JSON body out (undefined when the answer has none). */
  async request(method, path, init = {}) {
    const auth = init.auth !== false;
    const headers = { Accept: "application/json", ...this._authHeaders(auth) };
    let body;
    if (init.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(init.body);
    }
    const res = await this._check(
      await this._fetchRaw(this._url(path, init.query), { method, headers, body }, init.signal),
      auth,
    );
    if (res.status === 204 || res.status === 202) return undefined;
    const text = await res.text();
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new ChatError("internal", "the server's answer is not JSON", { status: res.status, cause: err });
    }
  }

  // ------------------------------------------------------------ accounts

  async register(input, options) {
    const res = await this.request("POST", "/auth/register", { body: input, auth: false, ...options });
    this.token = res.token;
    return res;
  }

  async login(username, password, options) {
    const res = await this.request("POST", "/auth/login", { body: { username, password }, auth: false, ...options });
    this.token = res.token;
    return res;
  }

  async logout(opts) {
    const [rest, options] = split(opts);
    await this.request("POST", "/auth/logout", { body: rest.all ? { all: true } : {}, ...options });
    this.token = null;
  }

  me(options) {
    return this.request("GET", "/users/me", options);
  }

  updateProfile(input, options) {
    return this.request("PATCH", "/users/me", { body: input, ...options });
  }

  changePassword(currentPassword, newPassword, options) {
    return this.request("POST", "/users/me/password", {
      body: { current_password: currentPassword, new_password: newPassword },
      ...options,
    });
  }

  // ------------------------------------------------------------ users

  searchUsers(opts) {
    const [query, options] = split(opts);
    return this.request("GET", "/users", { query, ...options });
  }

  getUser(userId, options) {
    return this.request("GET", `/users/${seg(userId)}`, options);
  }

  // ------------------------------------------------------------ rooms

  createRoom(input, options) {
    return this.request("POST", "/rooms", { body: input, ...options });
  }

  listRooms(options) {
    return this.request("GET", "/rooms", options);
  }

  publicRooms(opts) {
    const [query, options] = split(opts);
    return this.request("GET", "/rooms/public", { query, ...options });
  }

  getRoom(roomId, options) {
    return this.request("GET", `/rooms/${seg(roomId)}`, options);
  }

  joinRoom(roomId, options) {
    return this.request("POST", `/rooms/${seg(roomId)}/join`, options);
  }

  leaveRoom(roomId, options) {
    return this.request("POST", `/rooms/${seg(roomId)}/leave`, options);
  }

  listMembers(roomId, opts) {
    const [query, options] = split(opts);
    return this.request("GET", `/rooms/${seg(roomId)}/members`, { query, ...options });
  }

  async allMembers(roomId, options) {
    const out = [];
    let cursor;
    // Bounded: the server caps a room at 10,000 members, 1000 per page.
    for (let page = 0; page < 1000; page++) {
      const res = await this.listMembers(roomId, { limit: 1000, cursor, ...options });
      out.push(...res.members);
      if (!res.next_cursor) break;
      cursor = res.next_cursor;
    }
    return out;
  }

  addMember(roomId, userId, options) {
    return this.request("POST", `/rooms/${seg(roomId)}/members`, { body: { user_id: String(userId) }, ...options });
  }

  removeMember(roomId, userId, options) {
    return this.request("DELETE", `/rooms/${seg(roomId)}/members/${seg(userId)}`, options);
  }

  // ------------------------------------------------------------ messages

  getMessages(roomId, opts) {
    const [query, options] = split(opts);
    return this.request("GET", `/rooms/${seg(roomId)}/messages`, { query, ...options });
  }

  /**
   * A client_id is generated when none is given. A post that got no answer
   * (`network`, `timeout`) or `unavailable` is tried again with the same
   * client_id, `retries` times (default 2): the server stores it once
   * whichever attempts reached it.
   */
  async postMessage(roomId, input, options = {}) {
    const { retries = 2, ...rest } = options;
    const body = typeof input === "string" ? { content: input } : { ...input };
    if (!body.client_id) body.client_id = newClientId();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.request("POST", `/rooms/${seg(roomId)}/messages`, { body, ...rest });
      } catch (err) {
        const again = err instanceof ChatError && ["network", "timeout", "unavailable"].includes(err.code);
        if (!again || attempt >= retries || (rest.signal && rest.signal.aborted)) throw err;
        await new Promise((r) => setTimeout(r, err.retryAfterMs ?? 500 * 2 ** attempt));
      }
    }
  }

  markRead(roomId, messageId, options) {
    return this.request("POST", `/rooms/${seg(roomId)}/read`, { body: { message_id: String(messageId) }, ...options });
  }

  openDm(userId, options) {
    return this.request("POST", "/dms", { body: { user_id: String(userId) }, ...options });
  }

  // ------------------------------------------------------------ files

  fileUrl(fileId) {
    return this._absolute(this._url(`/files/${seg(fileId)}`));
  }

  thumbnailUrl(fileId) {
    return this._absolute(this._url(`/files/${seg(fileId)}/thumbnail`));
  }

  _absolute(url) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(url)) return url;
    const loc = globalThis.location;
    return loc && loc.origin ? `${loc.origin}${url}` : url;
  }

  async fetchFile(fileId, opts = {}) {
    const path = opts.thumbnail ? `/files/${seg(fileId)}/thumbnail` : `/files/${seg(fileId)}`;
    const headers = this._authHeaders(true);
    if (opts.range) headers.Range = opts.range;
    const res = await this._fetchRaw(this._url(path), { method: "GET", headers }, opts.signal, 0);
    return this._check(res, true);
  }

  async downloadFile(fileId, opts) {
    const res = await this.fetchFile(fileId, opts);
    return res.blob();
  }

  /**
   * POST /files. With XMLHttpRequest (browsers, React Native) progress is
   * reported as the bytes go out; with fetch alone (Node) it cannot be, and
   * onProgress is called once when the upload is done. No timeout applies
   * (a large file on a slow link takes long); cancel with options.signal.
   */
  async uploadFile(file, options = {}) {
    const form = new FormData();
    const { part, size } = toPart(file);
    const name = options.name ?? (file && typeof file.name === "string" && file.name ? file.name : "file");
    if (part instanceof Blob) form.append("file", part, name);
    else form.append("file", part); // React Native's {uri, name, type}
    const url = this._url("/files");
    const headers = this._authHeaders(true);
    const text = this._XHR
      ? await this._xhrUpload(url, headers, form, options)
      : await this._fetchUpload(url, headers, form, options, size);
    return JSON.parse(text);
  }

  async _fetchUpload(url, headers, form, options, size) {
    const res = await this._check(await this._fetchRaw(url, { method: "POST", headers, body: form }, options.signal, 0), true);
    const text = await res.text();
    if (options.onProgress) options.onProgress({ loaded: size ?? 0, total: size });
    return text;
  }

  _xhrUpload(url, headers, form, options) {
    const { signal, onProgress } = options;
    return new Promise((resolve, reject) => {
      if (signal && signal.aborted) return reject(new ChatError("aborted", "upload aborted"));
      const xhr = new this._XHR();
      xhr.open("POST", url);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      if (onProgress && xhr.upload) {
        xhr.upload.onprogress = (e) => onProgress({ loaded: e.loaded, total: e.lengthComputable ? e.total : undefined });
      }
      const onAbort = () => xhr.abort();
      if (signal) signal.addEventListener("abort", onAbort, { once: true });
      const done = () => signal && signal.removeEventListener("abort", onAbort);
      xhr.onload = () => {
        done();
        if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr.responseText);
        const err = errorFromResponse(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After"));
        if (xhr.status === 401 && this.onUnauthorized) this.onUnauthorized(err);
        reject(err);
      };
      xhr.onerror = () => (done(), reject(new ChatError("network", "upload failed: network error")));
      xhr.onabort = () => (done(), reject(new ChatError("aborted", "upload aborted")));
      xhr.send(form);
    });
  }

  // ------------------------------------------------------------ notifications

  getNotifications(opts) {
    const [query, options] = split(opts);
    return this.request("GET", "/notifications", { query, ...options });
  }

  markNotificationsRead(upTo, options) {
    return this.request("POST", "/notifications/read", { body: { up_to: String(upTo) }, ...options });
  }

  // ------------------------------------------------------------ admin

  postNotice(content, opts) {
    const [rest, options] = split(opts);
    const body = { content };
    if (rest.room_id) body.room_id = rest.room_id;
    return this.request("POST", "/admin/notice", { body, ...options });
  }

  banUser(userId, opts) {
    const [rest, options] = split(opts);
    return this.request("POST", `/admin/users/${seg(userId)}/ban`, {
      body: rest.reason ? { reason: rest.reason } : {},
      ...options,
    });
  }

  unbanUser(userId, options) {
    return this.request("DELETE", `/admin/users/${seg(userId)}/ban`, options);
  }

  getAudit(opts) {
    const [query, options] = split(opts);
    return this.request("GET", "/admin/audit", { query, ...options });
  }

  // ------------------------------------------------------------ operational

  async health(options) {
    const res = await this._check(await this._fetchRaw(`${this.baseUrl}/healthz`, { method: "GET" }, options && options.signal), false);
    return res.json();
  }

  /** GET /readyz: resolves when the server's dependencies answer; `unavailable` (503) otherwise. */
  async readiness(options) {
    const res = await this._check(await this._fetchRaw(`${this.baseUrl}/readyz`, { method: "GET" }, options && options.signal), false);
    return res.json();
  }
}

/** The multipart part for an Uploadable, and its size when known. */
function toPart(file) {
  if (typeof Blob !== "undefined" && file instanceof Blob) return { part: file, size: file.size };
  if (file instanceof ArrayBuffer || ArrayBuffer.isView(file)) {
    const blob = new Blob([file]);
    return { part: blob, size: blob.size };
  }
  if (file && typeof file === "object" && typeof file.uri === "string") return { part: file, size: undefined };
  throw new TypeError("uploadFile: expected a Blob, bytes or a {uri, name, type} object");
}
