// A small MessagePack encoder and decoder (https://msgpack.org/spec).
//
// Why write one: the library is plain ES modules served to browsers as they
// are, without a bundler or a node_modules folder, so it may not import npm
// packages; and it must run unchanged in Node and React Native. The subset a
// chat frame needs (maps, arrays, strings, integers, booleans, nil) is small,
// and the decoder reads every format of the spec anyway so that a server
// update cannot trip it.
//
// Integers: the server sends ids as uint64. A decoded integer that fits in a
// JavaScript number exactly (|n| <= 2^53 - 1) is a number, anything larger
// a BigInt (codec.js then turns ids into decimal strings). BigInt values
// encode as the smallest integer format that holds them.

const MAX_DEPTH = 100;

// TextEncoder/TextDecoder where the platform has them (browsers, Node, recent
// React Native); a strict UTF-8 fallback otherwise.
const encodeUtf8 =
  typeof TextEncoder === "function" ? ((enc) => (s) => enc.encode(s))(new TextEncoder()) : utf8Encode;
const decodeUtf8 =
  typeof TextDecoder === "function" ? ((dec) => (b) => dec.decode(b))(new TextDecoder("utf-8", { fatal: true })) : utf8Decode;

function utf8Encode(s) {
  const out = [];
  for (const ch of s) {
    let c = ch.codePointAt(0);
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // a lone surrogate, as TextEncoder does
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

function utf8Decode(b) {
  let s = "";
  for (let i = 0; i < b.length; ) {
    const c = b[i++];
    let cp, n;
    if (c < 0x80) (cp = c), (n = 0);
    else if (c >= 0xc2 && c < 0xe0) (cp = c & 31), (n = 1);
    else if (c >= 0xe0 && c < 0xf0) (cp = c & 15), (n = 2);
    else if (c >= 0xf0 && c < 0xf5) (cp = c & 7), (n = 3);
    else throw new TypeError("msgpack: invalid UTF-8");
    if (i + n > b.length) throw new TypeError("msgpack: invalid UTF-8");
    for (let k = 0; k < n; k++) {
      const d = b[i++];
      if ((d & 0xc0) !== 0x80) throw new TypeError("msgpack: invalid UTF-8");
      cp = (cp << 6) | (d & 63);
    }
    if ((n === 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n === 3 && (cp < 0x10000 || cp > 0x10ffff))) {
      throw new TypeError("msgpack: invalid UTF-8");
    }
    s += String.fromCodePoint(cp);
  }
  return s;
}

export const _utf8 = { encode: utf8Encode, decode: utf8Decode }; // for the tests

// ------------------------------------------------------------------ encode

class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }

  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v) {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  u16(v) {
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }
  u32(v) {
    this.ensure(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }
  /** v: a BigInt in 0..2^64-1 (i64 passes a negative one as its two's complement). */
  u64(v) {
    this.ensure(8);
    this.view.setUint32(this.pos, Number((v >> 32n) & 0xffffffffn));
    this.view.setUint32(this.pos + 4, Number(v & 0xffffffffn));
    this.pos += 8;
  }
  i64(v) {
    this.u64(BigInt.asUintN(64, v));
  }
  f64(v) {
    this.ensure(8);
    this.view.setFloat64(this.pos, v);
    this.pos += 8;
  }
  bytes(b) {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

function writeInt(w, n) {
  if (n >= 0) {
    if (n < 0x80) w.u8(n);
    else if (n < 0x100) (w.u8(0xcc), w.u8(n));
    else if (n < 0x10000) (w.u8(0xcd), w.u16(n));
    else if (n < 0x100000000) (w.u8(0xce), w.u32(n));
    else (w.u8(0xcf), w.u64(BigInt(n)));
  } else {
    if (n >= -32) w.u8(n & 0xff);
    else if (n >= -0x80) (w.u8(0xd0), w.u8(n & 0xff));
    else if (n >= -0x8000) (w.u8(0xd1), w.u16(n & 0xffff));
    else if (n >= -0x80000000) (w.u8(0xd2), w.u32(n >>> 0));
    else (w.u8(0xd3), w.i64(BigInt(n)));
  }
}

function writeBigInt(w, n) {
  if (n >= -(2n ** 53n) && n <= 2n ** 53n) return writeInt(w, Number(n));
  if (n > 0n) {
    if (n >= 2n ** 64n) throw new RangeError("msgpack: integer over 64 bits");
    w.u8(0xcf);
    w.u64(n);
  } else {
    if (n < -(2n ** 63n)) throw new RangeError("msgpack: integer under -2^63");
    w.u8(0xd3);
    w.i64(n);
  }
}

function writeStr(w, s) {
  const b = encodeUtf8(s);
  const n = b.length;
  if (n < 32) w.u8(0xa0 | n);
  else if (n < 0x100) (w.u8(0xd9), w.u8(n));
  else if (n < 0x10000) (w.u8(0xda), w.u16(n));
  else (w.u8(0xdb), w.u32(n));
  w.bytes(b);
}

function writeBin(w, b) {
  const n = b.length;
  if (n < 0x100) (w.u8(0xc4), w.u8(n));
  else if (n < 0x10000) (w.u8(0xc5), w.u16(n));
  else (w.u8(0xc6), w.u32(n));
  w.bytes(b);
}

function writeArrayHeader(w, n) {
  if (n < 16) w.u8(0x90 | n);
  else if (n < 0x10000) (w.u8(0xdc), w.u16(n));
  else (w.u8(0xdd), w.u32(n));
}

function writeMapHeader(w, n) {
  if (n < 16) w.u8(0x80 | n);
  else if (n < 0x10000) (w.u8(0xde), w.u16(n));
  else (w.u8(0xdf), w.u32(n));
}

function writeValue(w, v, depth) {
  if (depth > MAX_DEPTH) throw new RangeError("msgpack: nesting too deep");
  if (v === null || v === undefined) return w.u8(0xc0);
  switch (typeof v) {
    case "boolean":
      return w.u8(v ? 0xc3 : 0xc2);
    case "number":
      if (Number.isSafeInteger(v)) return writeInt(w, v);
      w.u8(0xcb);
      return w.f64(v);
    case "bigint":
      return writeBigInt(w, v);
    case "string":
      return writeStr(w, v);
    case "object":
      break;
    default:
      throw new TypeError(`msgpack: cannot encode a ${typeof v}`);
  }
  if (v instanceof Uint8Array) return writeBin(w, v);
  if (v instanceof ArrayBuffer) return writeBin(w, new Uint8Array(v));
  if (Array.isArray(v)) {
    writeArrayHeader(w, v.length);
    for (const item of v) writeValue(w, item, depth + 1);
    return;
  }
  if (v instanceof Map) {
    writeMapHeader(w, v.size);
    for (const [k, item] of v) {
      writeValue(w, k, depth + 1);
      writeValue(w, item, depth + 1);
    }
    return;
  }
  // A plain object: fields whose value is undefined are left out, as JSON.stringify does.
  const keys = Object.keys(v).filter((k) => v[k] !== undefined);
  writeMapHeader(w, keys.length);
  for (const k of keys) {
    writeStr(w, k);
    writeValue(w, v[k], depth + 1);
  }
}

/** Encodes a value as MessagePack bytes. */
export function encode(value) {
  const w = new Writer();
  writeValue(w, value, 0);
  return w.buf.slice(0, w.pos);
}

// ------------------------------------------------------------------ decode

class Reader {
  constructor(bytes) {
    this.buf = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  need(n) {
    if (this.pos + n > this.buf.length) throw new RangeError("msgpack: truncated input");
  }
  u8() {
    this.need(1);
    return this.buf[this.pos++];
  }
  u16() {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  u32() {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  i8() {
    this.need(1);
    return this.view.getInt8(this.pos++);
  }
  i16() {
    this.need(2);
    const v = this.view.getInt16(this.pos);
    this.pos += 2;
    return v;
  }
  i32() {
    this.need(4);
    const v = this.view.getInt32(this.pos);
    this.pos += 4;
    return v;
  }
  u64() {
    this.need(8);
    const hi = this.view.getUint32(this.pos);
    const lo = this.view.getUint32(this.pos + 4);
    this.pos += 8;
    // Below 2^53 (hi < 2^21) the number is exact; above, a BigInt.
    return hi < 0x200000 ? hi * 0x100000000 + lo : (BigInt(hi) << 32n) | BigInt(lo);
  }
  i64() {
    this.need(8);
    const hi = this.view.getInt32(this.pos);
    const lo = this.view.getUint32(this.pos + 4);
    this.pos += 8;
    if (hi >= -0x200000 && hi < 0x200000) {
      const v = hi * 0x100000000 + lo;
      if (Number.isSafeInteger(v)) return v;
    }
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  f32() {
    this.need(4);
    const v = this.view.getFloat32(this.pos);
    this.pos += 4;
    return v;
  }
  f64() {
    this.need(8);
    const v = this.view.getFloat64(this.pos);
    this.pos += 8;
    return v;
  }
  bytes(n) {
    this.need(n);
    const b = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  str(n) {
    this.need(n);
    const s = decodeUtf8(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }
}

function readArray(r, n, depth) {
  // Every element takes at least one byte: a huge length in a short input is refused early.
  r.need(n);
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = readValue(r, depth + 1);
  return out;
}

function readMap(r, n, depth) {
  r.need(n * 2);
  const out = {};
  for (let i = 0; i < n; i++) {
    const k = readValue(r, depth + 1);
    const key = typeof k === "string" ? k : String(k);
    const v = readValue(r, depth + 1);
    // defineProperty so that a "__proto__" key is a plain field, as with JSON.parse.
    Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function readExt(r, n) {
  const type = r.i8();
  return { ext: type, data: r.bytes(n) };
}

function readValue(r, depth) {
  if (depth > MAX_DEPTH) throw new RangeError("msgpack: nesting too deep");
  const b = r.u8();
  if (b < 0x80) return b;
  if (b < 0x90) return readMap(r, b & 0x0f, depth);
  if (b < 0xa0) return readArray(r, b & 0x0f, depth);
  if (b < 0xc0) return r.str(b & 0x1f);
  if (b >= 0xe0) return b - 0x100;
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
      return r.bytes(r.u8());
    case 0xc5:
      return r.bytes(r.u16());
    case 0xc6:
      return r.bytes(r.u32());
    case 0xc7:
      return readExt(r, r.u8());
    case 0xc8:
      return readExt(r, r.u16());
    case 0xc9:
      return readExt(r, r.u32());
    case 0xca:
      return r.f32();
    case 0xcb:
      return r.f64();
    case 0xcc:
      return r.u8();
    case 0xcd:
      return r.u16();
    case 0xce:
      return r.u32();
    case 0xcf:
      return r.u64();
    case 0xd0:
      return r.i8();
    case 0xd1:
      return r.i16();
    case 0xd2:
      return r.i32();
    case 0xd3:
      return r.i64();
    case 0xd4:
      return readExt(r, 1);
    case 0xd5:
      return readExt(r, 2);
    case 0xd6:
      return readExt(r, 4);
    case 0xd7:
      return readExt(r, 8);
    case 0xd8:
      return readExt(r, 16);
    case 0xd9:
      return r.str(r.u8());
    case 0xda:
      return r.str(r.u16());
    case 0xdb:
      return r.str(r.u32());
    case 0xdc:
      return readArray(r, r.u16(), depth);
    case 0xdd:
      return readArray(r, r.u32(), depth);
    case 0xde:
      return readMap(r, r.u16(), depth);
    case 0xdf:
      return readMap(r, r.u32(), depth);
    default: // 0xc1 is never used
      throw new RangeError(`msgpack: invalid byte 0x${b.toString(16)}`);
  }
}

/** Decodes one MessagePack value; trailing bytes are an error. */
export function decode(bytes) {
  const input = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const r = new Reader(input);
  const value = readValue(r, 0);
  if (r.pos !== input.length) throw new RangeError("msgpack: trailing bytes after the value");
  return value;
}
