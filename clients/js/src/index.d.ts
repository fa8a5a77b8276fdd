// Type declarations for @chat/client, the JavaScript client library of the
// chat service (docs/client.md). The library itself is plain ES modules in
// this directory; these declarations are written by hand and kept in step
// with it (CI type-checks clients/js/test/types-usage.ts against them).
//
// Wire objects (User, Room, Message, ...) are exactly the JSON objects of
// docs/protocol.md, snake_case field names included. Ids are always decimal
// strings, whichever codec carried them.

// ---------------------------------------------------------------- objects

/** A 64-bit Snowflake id as a decimal string (users, messages, files, ...). */
export type Id = string;
/** An opaque room id: a group room's Snowflake in decimal, or `dm:<lo>:<hi>`. */
export type RoomId = string;

export interface User {
  id: Id;
  username: string;
  display_name: string;
  created_at: number;
  online?: boolean;
  last_seen_at?: number;
}

export type RoomKind = "group" | "dm";
export type Visibility = "public" | "private";
export type Role = "owner" | "admin" | "member";

export interface Room {
  id: RoomId;
  kind: RoomKind;
  name: string;
  visibility: Visibility;
  owner_id?: Id;
  member_count: number;
  created_at: number;
  max_members?: number;
}

export interface RoomSummary extends Room {
  unread_count: number;
  mention_count: number;
  last_message?: Message;
  role: Role;
}

/** A file as the server describes it (`File` in docs/protocol.md). */
export interface FileInfo {
  id: Id;
  name: string;
  size: number;
  content_type: string;
  created_at: number;
  thumbnail_url?: string;
}

export interface Message {
  id: Id;
  room_id: RoomId;
  sender_id: Id;
  content: string;
  mentions: Id[];
  attachments: FileInfo[];
  reply_to?: Id;
  client_id?: string;
  created_at: number;
  edited_at?: number;
  deleted?: true;
}

/** `Notification` in docs/protocol.md (named so to avoid the DOM's Notification). */
export interface ChatNotification {
  id: Id;
  kind: "mention";
  room_id: RoomId;
  message_id: Id;
  sender_id: Id;
  created_at: number;
  read: boolean;
}

export interface Member {
  user: User;
  role: Role;
  online: boolean;
}

export interface AuditEvent {
  id: Id;
  at: number;
  kind: string;
  actor_id?: Id;
  target_id?: Id;
  room_id?: RoomId;
  ip?: string;
  detail?: string;
}

// ---------------------------------------------------------------- errors

/** The server's closed set of error codes. */
export type ServerErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "too_large"
  | "rate_limited"
  | "unavailable"
  | "internal";

/**
 * Codes the library adds for failures that never reached an answer:
 * `network` (fetch/XHR/socket failed), `timeout` (no answer in time),
 * `aborted` (the caller's AbortSignal), `disconnected` (the WebSocket closed
 * with the request in flight), `closed` (the client was closed for good).
 */
export type ClientErrorCode = "network" | "timeout" | "aborted" | "disconnected" | "closed";

export type ErrorCode = ServerErrorCode | ClientErrorCode;

export class ChatError extends Error {
  constructor(
    code: ErrorCode,
    message: string,
    init?: { status?: number; retryAfterMs?: number; ref?: string; clientId?: string; cause?: unknown },
  );
  readonly name: "ChatError";
  readonly code: ErrorCode;
  /** HTTP status for REST answers; 0 for WebSocket errors and failures without an answer. */
  readonly status: number;
  /** From `retry_after_ms` or `Retry-After`, when the server gave one. */
  readonly retryAfterMs: number | undefined;
  /** The WebSocket frame's `ref`, when the error answered one. */
  readonly ref: string | undefined;
  /** The send's `client_id`, when the error answered a send. */
  readonly clientId: string | undefined;
  /** True for `rate_limited`, `unavailable`, `network`, `timeout`, `disconnected`. */
  readonly retryable: boolean;
}

// ---------------------------------------------------------------- REST

/** The subset of XMLHttpRequest the upload path uses. */
export type XMLHttpRequestConstructor = new () => any;

export interface RestClientOptions {
  /**
   * Origin (and optional path prefix) of the server, e.g. "https://chat.example.com".
   * Default: "" (same origin, browsers only).
   */
  baseUrl?: string;
  /** Bearer token to start with (also set by register/login). */
  token?: string | null;
  /** fetch implementation; default globalThis.fetch. */
  fetch?: typeof fetch;
  /** XMLHttpRequest constructor for upload progress; default globalThis.XMLHttpRequest when present. */
  XMLHttpRequest?: XMLHttpRequestConstructor | null;
  /** Per-request timeout in ms (0: none). Default 30000. */
  timeoutMs?: number;
  /** Called with every 401 `unauthorized` answer of an authenticated call (token expired or revoked). */
  onUnauthorized?: (error: ChatError) => void;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface AuthResult {
  token: string;
  user: User;
}

export interface RegisterInput {
  username: string;
  password: string;
  display_name?: string;
}

export interface CreateRoomInput {
  name: string;
  visibility?: Visibility;
  member_ids?: Id[];
  max_members?: number;
}

export interface PageQuery {
  before?: Id;
  after?: Id;
  limit?: number;
}

export interface PostMessageInput {
  content: string;
  client_id?: string;
  reply_to?: Id;
  attachment_ids?: Id[];
}

export interface MessagesPage {
  messages: Message[];
  has_more: boolean;
}

export interface MembersPage {
  members: Member[];
  next_cursor?: string;
}

export interface PublicRoomsPage {
  rooms: Room[];
  next_cursor?: string;
}

export interface NotificationsPage {
  notifications: ChatNotification[];
  has_more: boolean;
}

export interface AuditPage {
  events: AuditEvent[];
  has_more: boolean;
}

export interface UploadProgress {
  loaded: number;
  /** Total bytes of the request body, when known. */
  total: number | undefined;
}

export interface UploadOptions extends RequestOptions {
  /** File name sent in the multipart part (default: the Blob's name, else "file"). */
  name?: string;
  /** Called as bytes go out (XMLHttpRequest); with fetch only once, at the end. */
  onProgress?: (progress: UploadProgress) => void;
}

/**
 * What `uploadFile` accepts: a Blob/File (browser, Node 18+), bytes, or a
 * React Native file descriptor `{uri, name, type}`.
 */
export type Uploadable = Blob | ArrayBuffer | Uint8Array | { uri: string; name: string; type?: string };

export interface FetchFileOptions extends RequestOptions {
  /** The thumbnail instead of the file. */
  thumbnail?: boolean;
  /** A `Range` header value, e.g. "bytes=0-1023". */
  range?: string;
}

/**
 * Every REST call of docs/protocol.md. Each method resolves with the
 * answer's JSON body as the protocol describes it (undefined for 202/204)
 * and rejects with a ChatError.
 */
export class RestClient {
  constructor(options?: RestClientOptions);
  readonly baseUrl: string;
  /** The bearer token in use (null when signed out). */
  token: string | null;
  setToken(token: string | null): void;

  // accounts
  /** POST /auth/register; keeps the new token. */
  register(input: RegisterInput, options?: RequestOptions): Promise<AuthResult>;
  /** POST /auth/login; keeps the new token. */
  login(username: string, password: string, options?: RequestOptions): Promise<AuthResult>;
  /** POST /auth/logout (`all`: every session of the user); forgets the token. */
  logout(opts?: { all?: boolean } & RequestOptions): Promise<void>;
  /** GET /users/me */
  me(options?: RequestOptions): Promise<User>;
  /** PATCH /users/me */
  updateProfile(input: { display_name: string }, options?: RequestOptions): Promise<User>;
  /** POST /users/me/password */
  changePassword(currentPassword: string, newPassword: string, options?: RequestOptions): Promise<void>;

  // users
  /** GET /users?prefix=&limit= */
  searchUsers(query?: { prefix?: string; limit?: number } & RequestOptions): Promise<{ users: User[] }>;
  /** GET /users/{id} */
  getUser(userId: Id, options?: RequestOptions): Promise<User>;

  // rooms
  /** POST /rooms */
  createRoom(input: CreateRoomInput, options?: RequestOptions): Promise<Room>;
  /** GET /rooms */
  /** Every room; with `limit` (1–1000) one page ordered by room id, `next_cursor` naming the next page's cursor. */
  listRooms(query?: { limit?: number; cursor?: string } & RequestOptions): Promise<{ rooms: RoomSummary[]; next_cursor?: string }>;
  /** GET /rooms/public?prefix=&limit=&cursor= (the room directory) */
  publicRooms(query?: { prefix?: string; limit?: number; cursor?: string } & RequestOptions): Promise<PublicRoomsPage>;
  /** GET /rooms/{room_id} */
  getRoom(roomId: RoomId, options?: RequestOptions): Promise<Room>;
  /** POST /rooms/{room_id}/join */
  joinRoom(roomId: RoomId, options?: RequestOptions): Promise<Room>;
  /** POST /rooms/{room_id}/leave */
  leaveRoom(roomId: RoomId, options?: RequestOptions): Promise<void>;
  /** GET /rooms/{room_id}/members?limit=&cursor= */
  listMembers(roomId: RoomId, query?: { limit?: number; cursor?: string } & RequestOptions): Promise<MembersPage>;
  /** Every member, following next_cursor. */
  allMembers(roomId: RoomId, options?: RequestOptions): Promise<Member[]>;
  /** POST /rooms/{room_id}/members */
  addMember(roomId: RoomId, userId: Id, options?: RequestOptions): Promise<void>;
  /** DELETE /rooms/{room_id}/members/{user_id} (kick) */
  removeMember(roomId: RoomId, userId: Id, options?: RequestOptions): Promise<void>;

  // messages
  /** GET /rooms/{room_id}/messages?before=&after=&limit= */
  getMessages(roomId: RoomId, query?: PageQuery & RequestOptions): Promise<MessagesPage>;
  /**
   * POST /rooms/{room_id}/messages; a client_id is generated when none is
   * given, and a post without an answer (`network`, `timeout`) or
   * `unavailable` is tried again with it, `retries` times (default 2).
   */
  postMessage(roomId: RoomId, input: PostMessageInput | string, options?: RequestOptions & { retries?: number }): Promise<Message>;
  /** POST /rooms/{room_id}/read */
  markRead(roomId: RoomId, messageId: Id, options?: RequestOptions): Promise<void>;
  /** POST /dms: the DM room with that user, created if needed. */
  openDm(userId: Id, options?: RequestOptions): Promise<Room>;

  // files
  /** POST /files (multipart), with upload progress where XMLHttpRequest exists. */
  uploadFile(file: Uploadable, options?: UploadOptions): Promise<FileInfo>;
  /** Absolute URL of GET /files/{id} (needs the bearer token: use fetchFile for <img>). */
  fileUrl(fileId: Id): string;
  /** Absolute URL of GET /files/{id}/thumbnail. */
  thumbnailUrl(fileId: Id): string;
  /** GET /files/{id} (or its thumbnail) with the token; rejects with ChatError on an error status. */
  fetchFile(fileId: Id, options?: FetchFileOptions): Promise<Response>;
  /** fetchFile(...).blob() */
  downloadFile(fileId: Id, options?: FetchFileOptions): Promise<Blob>;

  // notifications
  /** GET /notifications?before=&limit= */
  getNotifications(query?: { before?: Id; limit?: number } & RequestOptions): Promise<NotificationsPage>;
  /** POST /notifications/read */
  markNotificationsRead(upTo: Id, options?: RequestOptions): Promise<void>;

  // admin
  /** POST /admin/notice */
  postNotice(content: string, opts?: { room_id?: RoomId } & RequestOptions): Promise<void>;
  /** POST /admin/users/{user_id}/ban */
  banUser(userId: Id, opts?: { reason?: string } & RequestOptions): Promise<void>;
  /** DELETE /admin/users/{user_id}/ban */
  unbanUser(userId: Id, options?: RequestOptions): Promise<void>;
  /** GET /admin/audit?before=&limit=&kind=&user_id= */
  getAudit(query?: { before?: Id; limit?: number; kind?: string; user_id?: Id } & RequestOptions): Promise<AuditPage>;

  // operational
  /** GET /healthz */
  health(options?: RequestOptions): Promise<{ status: string }>;
  /** GET /readyz (rejects with `unavailable` when a dependency does not answer) */
  readiness(options?: RequestOptions): Promise<{ status: string; store?: string }>;

  /** Low-level: any call under /api/v1 (path starting with "/"); JSON body in, JSON out. */
  request<T = unknown>(method: string, path: string, init?: { body?: unknown; query?: Record<string, string | number | boolean | undefined>; auth?: boolean } & RequestOptions): Promise<T>;
}

// ---------------------------------------------------------------- WebSocket frames

export interface ReadyFrame {
  type: "ready";
  session_id: string;
  user: User;
  rooms: RoomSummary[];
  heartbeat_interval_ms: number;
  /** True when the user has more rooms than the server lists in `ready`: read the rest with `listRooms({limit, cursor})`. */
  rooms_truncated?: boolean;
}
export interface MessageFrame { type: "message"; message: Message }
export interface AckFrame { type: "ack"; ref?: string; client_id?: string; message_id: Id; created_at: number }
export interface MentionFrame { type: "mention"; room_id: RoomId; message_id: Id; sender_id: Id; content: string }
export interface NotificationFrame { type: "notification"; notification: ChatNotification }
export interface MessageUpdatedFrame { type: "message_updated"; message: Message }
export interface MessageDeletedFrame { type: "message_deleted"; room_id: RoomId; message_id: Id }
export interface TypingFrame { type: "typing"; room_id: RoomId; user_id: Id; typing: boolean }
export interface PresenceFrame { type: "presence"; user_id: Id; online: boolean; last_seen_at?: number }
export interface ReadFrame { type: "read"; room_id: RoomId; user_id: Id; message_id: Id }
export interface MemberJoinedFrame { type: "member_joined"; room_id: RoomId; user_id: Id }
export interface MemberLeftFrame { type: "member_left"; room_id: RoomId; user_id: Id }
export interface RoomAddedFrame { type: "room_added"; room: RoomSummary }
export interface RoomRemovedFrame { type: "room_removed"; room_id: RoomId }
export interface HistoryFrame { type: "history"; ref?: string; room_id: RoomId; messages: Message[]; has_more: boolean }
export interface ResumedFrame { type: "resumed"; ref?: string; rooms: Record<RoomId, { replayed: number; complete: boolean }> }
export interface NoticeFrame { type: "notice"; content: string; room_id?: RoomId }
export interface ErrorFrame {
  type: "error";
  code: ServerErrorCode;
  message: string;
  ref?: string;
  client_id?: string;
  retry_after_ms?: number;
}
export interface PongFrame { type: "pong"; ref?: string }

export type ServerFrame =
  | ReadyFrame
  | MessageFrame
  | AckFrame
  | MentionFrame
  | NotificationFrame
  | MessageUpdatedFrame
  | MessageDeletedFrame
  | TypingFrame
  | PresenceFrame
  | ReadFrame
  | MemberJoinedFrame
  | MemberLeftFrame
  | RoomAddedFrame
  | RoomRemovedFrame
  | HistoryFrame
  | ResumedFrame
  | NoticeFrame
  | ErrorFrame
  | PongFrame;

export type ClientFrame =
  | { type: "send"; ref?: string; room_id: RoomId; content: string; client_id?: string; reply_to?: Id; attachment_ids?: Id[] }
  | { type: "edit"; ref?: string; room_id: RoomId; message_id: Id; content: string }
  | { type: "delete"; ref?: string; room_id: RoomId; message_id: Id }
  | { type: "typing"; ref?: string; room_id: RoomId; typing: boolean }
  | { type: "read"; ref?: string; room_id: RoomId; message_id: Id }
  | { type: "history"; ref?: string; room_id: RoomId; before?: Id; after?: Id; limit?: number }
  | { type: "resume"; ref?: string; rooms: Record<RoomId, Id> }
  | { type: "join"; ref?: string; room_id: RoomId }
  | { type: "leave"; ref?: string; room_id: RoomId }
  | { type: "ping"; ref?: string };

// ---------------------------------------------------------------- realtime client

/**
 * idle: not started (or close() before connect()); connecting: first attempt;
 * open: `ready` received; reconnecting: lost, waiting or retrying;
 * closed: stopped for good (close(), a final close code, or no new token).
 */
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export type CodecName = "json" | "msgpack";

/** The standard WebSocket constructor shape (browser, React Native, Node 22+, npm `ws`). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => any;

export interface ReconnectOptions {
  /** First backoff ceiling in ms (default 500). */
  initialDelayMs?: number;
  /** Backoff ceiling cap in ms (default 30000). */
  maxDelayMs?: number;
  /** Growth factor of the ceiling per failed attempt (default 2). */
  factor?: number;
  /** Least delay after a 1013 "try again later" close (default 5000). */
  tryAgainLaterMs?: number;
}

export interface RealtimeOptions {
  /** Take baseUrl and token from this REST client (and give it refreshed tokens). */
  rest?: RestClient;
  /** Server origin, as RestClient's; default rest.baseUrl, else the page's origin. */
  baseUrl?: string;
  /** Full WebSocket URL (overrides baseUrl), e.g. "wss://chat.example.com/ws". */
  url?: string;
  /** Token to connect with; default rest.token. */
  token?: string | null;
  /**
   * Asked for a new token when the server closes with 4001 (expired or
   * revoked) or refuses the handshake for it. Return null/undefined to give
   * up (state becomes "closed").
   */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>;
  /** Default "json". */
  codec?: CodecName;
  /** WebSocket constructor; default globalThis.WebSocket (pass npm `ws` on Node < 22). */
  WebSocket?: WebSocketConstructor;
  reconnect?: ReconnectOptions | false;
  /** Timeout of ref'd requests (history, join, leave, read, edit, delete, ping) in ms. Default 15000. */
  requestTimeoutMs?: number;
  /** Interval of the client's `ping` liveness check; default the server's heartbeat_interval_ms. */
  pingIntervalMs?: number;
  /** No frame at all for this long after a ping → the connection is dropped and redialled. Default 10000. */
  pongTimeoutMs?: number;
  /** A dial that has not brought `ready` within this many ms is abandoned and retried. Default 15000. */
  connectTimeoutMs?: number;
  /** Resume rooms after a reconnect (default true). */
  resume?: boolean;
  /** Max sends in flight (sent, not yet acked) at once; the rest wait in the queue. Default 20. */
  maxInFlight?: number;
  /** A send not answered (ack or error) within this many ms is sent again, same client_id. Default 15000. */
  ackTimeoutMs?: number;
}

export type PendingStatus = "queued" | "sending" | "sent" | "failed";

/** An optimistic message: shown by the app until its real Message arrives. */
export interface PendingMessage {
  readonly client_id: string;
  readonly room_id: RoomId;
  readonly content: string;
  readonly reply_to?: Id;
  readonly attachment_ids?: Id[];
  /** Local time the app called send(). */
  readonly local_at: number;
  status: PendingStatus;
  /** Set once acked. */
  message_id?: Id;
  created_at?: number;
  /** Set when failed. */
  error?: ChatError;
  /** Resolves with the ack once the message is durable; rejects with the ChatError when it fails. */
  readonly done: Promise<AckFrame>;
}

export interface SendOptions {
  reply_to?: Id;
  attachment_ids?: Id[];
  /** Default: a fresh random id. */
  client_id?: string;
}

export interface StateChangeEvent {
  state: ConnectionState;
  previous: ConnectionState;
}

export interface DisconnectedEvent {
  code: number;
  reason: string;
  /** Whether the client will dial again on its own. */
  willReconnect: boolean;
  /** Delay before the next attempt, when willReconnect. */
  delayMs?: number;
}

export interface ClosedEvent {
  code: number;
  reason: string;
  /** Why it stopped for good, when not by close(). */
  error?: ChatError;
}

export interface ResyncEvent {
  room_id: RoomId;
  /** Messages replayed or fetched for that room after a reconnect. */
  replayed: number;
}

/**
 * Event name → payload. Server frames are emitted under their `type`
 * (payload: the frame, ids as strings); `message` is de-duplicated by id
 * (a message replayed by resume and also delivered live is emitted once).
 * Library events: state, disconnected, reconnecting, closed, token_expired,
 * pending (an optimistic message changed status), resync (a room caught up
 * after a reconnect), frame (every server frame, before de-duplication).
 */
export interface RealtimeEventMap {
  ready: ReadyFrame & { reconnected: boolean };
  message: MessageFrame;
  ack: AckFrame;
  mention: MentionFrame;
  notification: NotificationFrame;
  message_updated: MessageUpdatedFrame;
  message_deleted: MessageDeletedFrame;
  typing: TypingFrame;
  presence: PresenceFrame;
  read: ReadFrame;
  member_joined: MemberJoinedFrame;
  member_left: MemberLeftFrame;
  room_added: RoomAddedFrame;
  room_removed: RoomRemovedFrame;
  history: HistoryFrame;
  resumed: ResumedFrame;
  notice: NoticeFrame;
  error: ErrorFrame;
  pong: PongFrame;

  state: StateChangeEvent;
  disconnected: DisconnectedEvent;
  reconnecting: { attempt: number; delayMs: number };
  closed: ClosedEvent;
  token_expired: { code: number; reason: string };
  pending: PendingMessage;
  resync: ResyncEvent;
  frame: ServerFrame;
}

export type RealtimeEventName = keyof RealtimeEventMap;

export class RealtimeClient {
  constructor(options: RealtimeOptions);
  readonly state: ConnectionState;
  readonly codec: CodecName;
  /** From the latest `ready`. */
  readonly user: User | null;
  readonly sessionId: string | null;
  readonly heartbeatIntervalMs: number | null;

  /** Subscribe; returns a function that unsubscribes. */
  on<K extends RealtimeEventName>(event: K, listener: (payload: RealtimeEventMap[K]) => void): () => void;
  once<K extends RealtimeEventName>(event: K, listener: (payload: RealtimeEventMap[K]) => void): () => void;
  off<K extends RealtimeEventName>(event: K, listener: (payload: RealtimeEventMap[K]) => void): void;

  /** Dial (and keep dialling); resolves with the first `ready`, rejects if the client closes first. */
  connect(): Promise<ReadyFrame & { reconnected: boolean }>;
  /** Stop for good (state "closed"); queued sends fail with `closed`. */
  close(code?: number, reason?: string): void;
  /** Replace the token (used at the next dial; given to the `rest` client too). With `rest`, a token the app set there is used as well. */
  setToken(token: string | null): void;
  /** Drop the current connection and dial again now (resumes as after any loss). */
  reconnectNow(): void;

  /** Optimistic send: queued while offline, retried on reconnect, reconciled by `ack`. */
  send(roomId: RoomId, content: string, options?: SendOptions): PendingMessage;
  /**
   * Optimistic messages whose real message the app does not have yet, oldest
   * first: queued, sending, failed, or sent (acked, its `message` event not
   * yet here: listed until it comes, at most a few seconds).
   */
  pendingMessages(roomId?: RoomId): PendingMessage[];
  /** Send a failed message again (same client_id). */
  retry(clientId: string): PendingMessage | undefined;
  /** Forget a queued or failed message (it will not be sent). */
  discard(clientId: string): boolean;

  /** Resolves when the `message_updated` for it arrives. */
  edit(roomId: RoomId, messageId: Id, content: string): Promise<MessageUpdatedFrame>;
  /** Resolves when the `message_deleted` for it arrives. */
  delete(roomId: RoomId, messageId: Id): Promise<MessageDeletedFrame>;
  /** Fire and forget (the server never answers typing). */
  typing(roomId: RoomId, typing: boolean): void;
  /** Resolves when the `read` echo for it arrives. */
  read(roomId: RoomId, messageId: Id): Promise<ReadFrame>;
  history(roomId: RoomId, query?: PageQuery): Promise<HistoryFrame>;
  /** Resolves with the room_added frame (or at once with undefined if already a member). */
  join(roomId: RoomId): Promise<RoomAddedFrame | undefined>;
  /** Resolves with the room_removed frame. */
  leave(roomId: RoomId): Promise<RoomRemovedFrame>;
  ping(): Promise<PongFrame>;

  /** Highest message id seen per room (what the next `resume` will send). */
  lastSeen(): Record<RoomId, Id>;
  /** Tell the client the app has seen messages up to `messageId` in a room (e.g. from REST history). */
  markSeen(roomId: RoomId, messageId: Id): void;

  /** Low-level: send any client frame now (throws ChatError `disconnected` when not open). */
  sendFrame(frame: ClientFrame): void;
  /** Low-level: send a frame with a fresh `ref`; resolves with the first reply carrying it (rejects on `error`). */
  request<T extends ServerFrame = ServerFrame>(frame: ClientFrame): Promise<T>;
}

// ---------------------------------------------------------------- codecs and helpers

export interface Codec {
  readonly name: CodecName;
  /** The WebSocket subprotocol, "chat.v1.json" or "chat.v1.msgpack". */
  readonly protocol: string;
  readonly binary: boolean;
  encode(frame: object): string | Uint8Array;
  /** Decodes a frame and turns every id into a decimal string. */
  decode(data: string | ArrayBuffer | Uint8Array): ServerFrame;
}

export const jsonCodec: Codec;
export const msgpackCodec: Codec;
export function codecFor(name: CodecName): Codec;

/**
 * A small, dependency-free MessagePack encoder/decoder (every format of the
 * spec; extension values decode as {ext: type, data: Uint8Array}). Integers
 * beyond 2^53 decode to BigInt; BigInt encodes as uint64/int64.
 */
export const msgpack: {
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array | ArrayBuffer): unknown;
};

/** Compare two decimal ids numerically (-1, 0, 1). */
export function compareIds(a: Id, b: Id): number;
/** Merge messages into an id-sorted list, replacing same-id entries (edits, tombstones) unless the entry held is newer (deleted, or edited later). */
export function mergeMessages(list: readonly Message[], incoming: readonly Message[]): Message[];
/** A fresh random client_id. */
export function newClientId(): string;
/** Time (ms since the Unix epoch) a Snowflake id was minted. */
export function idTime(id: Id): number;

export const VERSION: string;
