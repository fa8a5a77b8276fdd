// A minimal event emitter (no dependency on Node's EventEmitter or the DOM's
// EventTarget, so that it runs the same in browsers, Node and React Native).

export class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  /** Subscribes; returns a function that unsubscribes. */
  on(event, listener) {
    if (typeof listener !== "function") throw new TypeError("listener must be a function");
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  once(event, listener) {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  off(event, listener) {
    const set = this._listeners.get(event);
    if (set) set.delete(listener);
  }

  /**
   * Calls every listener. A listener that throws does not stop the others
   * nor the client's own bookkeeping: its error is reported asynchronously
   * (reportError in browsers, an uncaught exception elsewhere), as the DOM
   * does for event listeners.
   */
  emit(event, payload) {
    const set = this._listeners.get(event);
    if (!set || set.size === 0) return;
    for (const listener of [...set]) {
      try {
        listener(payload);
      } catch (err) {
        if (typeof globalThis.reportError === "function") globalThis.reportError(err);
        else setTimeout(() => { throw err; }, 0);
      }
    }
  }
}
