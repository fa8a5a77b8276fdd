// Reconnect delays: exponential backoff with full jitter.
//
// "Full jitter" (a uniformly random delay between 0 and the current ceiling)
// spreads the reconnects of many clients that lost the same server, so that
// a restarted server is not hit by all of them in the same instant.

export class Backoff {
  constructor(options = {}) {
    this.initialDelayMs = options.initialDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 30000;
    this.factor = options.factor ?? 2;
    this.tryAgainLaterMs = options.tryAgainLaterMs ?? 5000;
    this.random = options.random ?? Math.random;
    this.attempt = 0;
  }

  /** The ceiling for the current attempt. */
  ceiling() {
    return Math.min(this.maxDelayMs, this.initialDelayMs * this.factor ** this.attempt);
  }

  /** The delay before the next attempt; each call raises the ceiling. */
  next() {
    const delay = Math.floor(this.random() * this.ceiling());
    this.attempt++;
    return delay;
  }

  /** After 1013 "try again later": at least tryAgainLaterMs, plus jitter. */
  nextLater() {
    return this.tryAgainLaterMs + this.next();
  }

  /** A connection got through: start again from the first ceiling. */
  reset() {
    this.attempt = 0;
  }
}
