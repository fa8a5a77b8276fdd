// The two WebSocket codecs of the protocol: `chat.v1.json` (text frames) and
// `chat.v1.msgpack` (binary frames, the same objects as MessagePack maps).
//
// Both decode to the same frame objects with ids as decimal strings, so the
// rest of the library and the app never see which one was used. Decoding
// goes by the frame's kind (text → JSON, binary → MessagePack), as the
// server's does, so a server that fell back to JSON is still understood.

import * as msgpack from "./msgpack.js";
import { normalizeIds } from "./ids.js";


function decodeAny(data) {
  if (typeof data === "string") return normalizeIds(JSON.parse(data));
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    const bytes =
      data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return normalizeIds(msgpack.decode(bytes));
  }
  throw new TypeError("frame is neither text nor binary");
}

/** Client frames carry ids as decimal strings; the server reads them in both codecs. */
export const jsonCodec = Object.freeze({
  name: "json",
  protocol: "chat.v1.json",
  binary: false,
  encode: (frame) => JSON.stringify(frame),
  decode: decodeAny,
});

export const msgpackCodec = Object.freeze({
  name: "msgpack",
  protocol: "chat.v1.msgpack",
  binary: true,
  encode: (frame) => msgpack.encode(frame),
  decode: decodeAny,
});

export function codecFor(name) {
  if (name === undefined || name === "json") return jsonCodec;
  if (name === "msgpack") return msgpackCodec;
  throw new TypeError(`unknown codec ${JSON.stringify(name)} (use "json" or "msgpack")`);
}

export { msgpack };
