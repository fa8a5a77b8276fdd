// Unit tests of the MessagePack encoder/decoder and the codecs' id handling.
// Expected bytes are written out from the MessagePack specification, not
// produced by the encoder under test.

import { test } from "node:test";
import assert from "node:assert/strict";
import { msgpack, msgpackCodec, jsonCodec, codecFor } from "../src/index.js";

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const fromHex = (s) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));

test("the specification's example map", () => {
  const bytes = "82 a7 636f6d70616374 c3 a6 736368656d61 00";
  assert.equal(hex(msgpack.encode({ compact: true, schema: 0 })), bytes.replace(/\s+/g, ""));
  assert.deepEqual(msgpack.decode(fromHex(bytes)), { compact: true, schema: 0 });
});

test("integers take the smallest format, at every boundary", () => {
  const cases = [
    [0, "00"],
    [127, "7f"],
    [128, "cc80"],
    [255, "ccff"],
    [256, "cd0100"],
    [65535, "cdffff"],
    [65536, "ce00010000"],
    [4294967295, "ceffffffff"],
    [4294967296, "cf0000000100000000"],
    [-1, "ff"],
    [-32, "e0"],
    [-33, "d0df"],
    [-128, "d080"],
    [-129, "d1ff7f"],
    [-32768, "d18000"],
    [-32769, "d2ffff7fff"],
    [-2147483648, "d280000000"],
    [-2147483649, "d3ffffffff7fffffff"],
    [Number.MAX_SAFE_INTEGER, "cf001fffffffffffff"],
  ];
  for (const [n, bytes] of cases) {
    assert.equal(hex(msgpack.encode(n)), bytes, `encode ${n}`);
    assert.equal(msgpack.decode(fromHex(bytes)), n, `decode ${bytes}`);
  }
});

test("64-bit integers beyond 2^53 decode as BigInt, exactly", () => {
  assert.equal(msgpack.decode(fromHex("cfffffffffffffffff")), 18446744073709551615n);
  assert.equal(msgpack.decode(fromHex("cf0020000000000000")), 9007199254740992n); // 2^53
  assert.equal(msgpack.decode(fromHex("cf001fffffffffffff")), 9007199254740991); // 2^53 - 1: a number
  assert.equal(msgpack.decode(fromHex("d38000000000000000")), -9223372036854775808n);
  const id = 1234567890123456789n;
  assert.equal(hex(msgpack.encode(id)), "cf112210f47de98115");
  assert.equal(msgpack.decode(msgpack.encode(id)), id);
  assert.equal(hex(msgpack.encode(-9223372036854775808n)), "d38000000000000000");
  assert.throws(() => msgpack.encode(2n ** 64n), RangeError);
});

test("the narrower signed and unsigned formats decode", () => {
  assert.equal(msgpack.decode(fromHex("d0ff")), -1);
  assert.equal(msgpack.decode(fromHex("d1fffe")), -2);
  assert.equal(msgpack.decode(fromHex("d2fffffffd")), -3);
  assert.equal(msgpack.decode(fromHex("d3fffffffffffffffc")), -4);
  assert.equal(msgpack.decode(fromHex("cc05")), 5);
  assert.equal(msgpack.decode(fromHex("cd0005")), 5);
  assert.equal(msgpack.decode(fromHex("ce00000005")), 5);
  assert.equal(msgpack.decode(fromHex("cf0000000000000005")), 5);
});

test("nil, booleans and floats", () => {
  assert.equal(hex(msgpack.encode(null)), "c0");
  assert.equal(hex(msgpack.encode(undefined)), "c0");
  assert.equal(hex(msgpack.encode(false)), "c2");
  assert.equal(hex(msgpack.encode(true)), "c3");
  assert.equal(hex(msgpack.encode(1.5)), "cb3ff8000000000000");
  assert.equal(msgpack.decode(fromHex("ca3fc00000")), 1.5);
  assert.equal(msgpack.decode(fromHex("cb3ff8000000000000")), 1.5);
  assert.equal(msgpack.decode(fromHex("c0")), null);
});

test("strings: fixstr, str8, str16, str32, and UTF-8", () => {
  for (const [len, head] of [
    [0, "a0"],
    [31, "bf"],
    [32, "d920"],
    [255, "d9ff"],
    [256, "da0100"],
    [65536, "db00010000"],
  ]) {
    const s = "x".repeat(len);
    const bytes = msgpack.encode(s);
    assert.equal(hex(bytes.subarray(0, head.length / 2)), head, `header for ${len}`);
    assert.equal(bytes.length, head.length / 2 + len);
    assert.equal(msgpack.decode(bytes), s);
  }
  assert.equal(hex(msgpack.encode("é")), "a2c3a9");
  assert.equal(msgpack.decode(msgpack.encode("héllo 👋 世界")), "héllo 👋 世界");
  assert.throws(() => msgpack.decode(fromHex("a1ff")), TypeError); // not UTF-8
});

test("binary, arrays and maps of every size class", () => {
  assert.equal(hex(msgpack.encode(new Uint8Array([1, 2]))), "c4020102");
  assert.deepEqual(msgpack.decode(fromHex("c50002 0102")), new Uint8Array([1, 2]));
  assert.deepEqual(msgpack.decode(fromHex("c600000002 0102")), new Uint8Array([1, 2]));
  assert.equal(hex(msgpack.encode([1, 2])), "920102");
  const a15 = Array.from({ length: 15 }, (_, i) => i);
  const a16 = Array.from({ length: 16 }, (_, i) => i);
  const a70k = Array.from({ length: 70000 }, () => 1);
  assert.equal(msgpack.encode(a15)[0], 0x9f);
  assert.equal(hex(msgpack.encode(a16).subarray(0, 3)), "dc0010");
  assert.equal(hex(msgpack.encode(a70k).subarray(0, 5)), "dd00011170");
  assert.deepEqual(msgpack.decode(msgpack.encode(a16)), a16);
  assert.deepEqual(msgpack.decode(msgpack.encode(a70k)), a70k);
  const m16 = Object.fromEntries(a16.map((i) => [`k${i}`, i]));
  assert.equal(hex(msgpack.encode(m16).subarray(0, 3)), "de0010");
  assert.deepEqual(msgpack.decode(msgpack.encode(m16)), m16);
  assert.deepEqual(msgpack.decode(fromHex("df00000001 a161 01")), { a: 1 });
  // undefined fields are left out, as JSON.stringify does
  assert.deepEqual(msgpack.decode(msgpack.encode({ a: 1, b: undefined })), { a: 1 });
  // Map keys of any type
  assert.deepEqual(msgpack.decode(msgpack.encode(new Map([["x", [true, null]]]))), { x: [true, null] });
});

test("extension types decode as {ext, data}", () => {
  assert.deepEqual(msgpack.decode(fromHex("d40102")), { ext: 1, data: new Uint8Array([2]) });
  assert.deepEqual(msgpack.decode(fromHex("c702ff0102")), { ext: -1, data: new Uint8Array([1, 2]) });
  assert.equal(msgpack.decode(fromHex("d8" + "05" + "00".repeat(16))).data.length, 16);
});

test("malformed input is refused, never half-decoded", () => {
  assert.throws(() => msgpack.decode(fromHex("cd01")), RangeError); // truncated
  assert.throws(() => msgpack.decode(fromHex("c1")), RangeError); // never used
  assert.throws(() => msgpack.decode(fromHex("0102")), RangeError); // trailing bytes
  assert.throws(() => msgpack.decode(fromHex("dd ffffffff")), RangeError); // a huge array in 5 bytes
  assert.throws(() => msgpack.decode(fromHex("91".repeat(200) + "00")), RangeError); // too deep
  assert.throws(() => msgpack.decode(new Uint8Array(0)), RangeError);
});

test("a __proto__ key is a plain field, as with JSON.parse", () => {
  const v = msgpack.decode(fromHex("81 a9 5f5f70726f746f5f5f 81 a1 78 01"));
  assert.deepEqual(Object.keys(v), ["__proto__"]);
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.equal({}.x, undefined);
});

test("round trip of a realistic frame", () => {
  const frame = {
    type: "send",
    ref: "r1",
    room_id: "dm:1:2",
    content: "hello @bob",
    client_id: "c-1",
    attachment_ids: ["123"],
  };
  assert.deepEqual(msgpack.decode(msgpack.encode(frame)), frame);
});

test("both codecs surface ids as decimal strings, u64 beyond 2^53 included", () => {
  const big = 18446744073709551615n;
  const wire = msgpack.encode({
    type: "message",
    message: {
      id: big,
      room_id: "7312345678901234567",
      sender_id: 42,
      content: "x",
      mentions: [big, 3],
      attachments: [{ id: 9007199254740993n, name: "a", size: 5, content_type: "text/plain", created_at: 1 }],
      reply_to: 77,
      created_at: 1700000000000,
    },
  });
  const frame = msgpackCodec.decode(wire);
  assert.equal(frame.message.id, "18446744073709551615");
  assert.equal(frame.message.sender_id, "42");
  assert.deepEqual(frame.message.mentions, ["18446744073709551615", "3"]);
  assert.equal(frame.message.attachments[0].id, "9007199254740993");
  assert.equal(frame.message.attachments[0].size, 5);
  assert.equal(frame.message.reply_to, "77");
  assert.equal(frame.message.created_at, 1700000000000);
  // ArrayBuffer input too (browsers' binaryType "arraybuffer")
  assert.equal(msgpackCodec.decode(wire.slice().buffer).message.id, "18446744073709551615");

  const json = jsonCodec.decode('{"type":"ack","client_id":"c","message_id":"18446744073709551615","created_at":5}');
  assert.equal(json.message_id, "18446744073709551615");
  assert.equal(json.created_at, 5);
  // A text frame is JSON whichever codec was chosen (the server may fall back to JSON).
  assert.equal(msgpackCodec.decode('{"type":"pong"}').type, "pong");
  assert.equal(codecFor("msgpack").protocol, "chat.v1.msgpack");
  assert.equal(codecFor().protocol, "chat.v1.json");
  assert.throws(() => codecFor("xml"), TypeError);
});

test("the UTF-8 fallback (for engines without TextEncoder/TextDecoder) agrees with them", async () => {
  const { _utf8 } = await import("../src/msgpack.js");
  for (const s of ["", "ascii", "héllo", "世界", "👋 emoji", "\u0000\u007f\u0080\u07ff\u0800\uffff", "\u{10ffff}"]) {
    assert.deepEqual(_utf8.encode(s), new TextEncoder().encode(s), s);
    assert.equal(_utf8.decode(new TextEncoder().encode(s)), s);
  }
  assert.deepEqual(_utf8.encode("\ud800"), new TextEncoder().encode("\ud800")); // lone surrogate → U+FFFD
  for (const bad of ["ff", "c0af", "e08080", "eda080", "f4908080", "c3", "80"]) {
    assert.throws(() => _utf8.decode(fromHex(bad)), TypeError, bad);
    assert.throws(() => new TextDecoder("utf-8", { fatal: true }).decode(fromHex(bad)), TypeError, bad);
  }
});
