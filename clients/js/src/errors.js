// ChatError: the one error type of the library.
//
// Every failure the library reports, from a REST answer, a WebSocket `error`
// frame or the transport itself, is a ChatError whose `code` the app can
// switch on: the server's closed set of codes (docs/protocol.md, "Errors")
// plus a few of the library's own for failures that never got an answer.

const RETRYABLE = new Set(["rate_limited", "unavailable", "network", "timeout", "disconnected"]);

/** HTTP status → protocol code, for answers whose body is not the error JSON. */
const STATUS_CODES = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "bad_request",
  409: "conflict",
  413: "too_large",
  416: "bad_request",
  429: "rate_limited",
  503: "unavailable",
};

export class ChatError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{status?: number, retryAfterMs?: number, ref?: string, clientId?: string, cause?: unknown}} [init]
   */
  constructor(code, message, init = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "ChatError";
    this.code = code;
    this.status = init.status ?? 0;
    this.retryAfterMs = init.retryAfterMs;
    this.ref = init.ref;
    this.clientId = init.clientId;
  }

  get retryable() {
    return RETRYABLE.has(this.code);
  }

  /** The error an `error` frame of the WebSocket stands for. */
  static fromFrame(frame) {
    return new ChatError(frame.code || "internal", frame.message || "error", {
      retryAfterMs: numberOrUndefined(frame.retry_after_ms),
      ref: frame.ref,
      clientId: frame.client_id,
    });
  }

  /** The code to use for an HTTP status whose body did not name one. */
  static codeForStatus(status) {
    return STATUS_CODES[status] || (status >= 500 ? "internal" : "bad_request");
  }
}

function numberOrUndefined(v) {
  if (typeof v === "bigint") return Number(v);
  return typeof v === "number" ? v : undefined;
}
