// @chat/client: the JavaScript client library of the chat service.
// Plain ES modules without dependencies: import this file from a browser
// (no bundler needed), Node 18+ or React Native. Types: index.d.ts.
// Guide: docs/client.md.

export { ChatError } from "./errors.js";
export { RestClient } from "./rest.js";
export { RealtimeClient } from "./realtime.js";
export { jsonCodec, msgpackCodec, codecFor } from "./codec.js";
export { compareIds, mergeMessages, newClientId, idTime } from "./ids.js";
import * as msgpack from "./msgpack.js";
export { msgpack };

export const VERSION = "0.1.0";
