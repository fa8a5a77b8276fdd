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

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

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
  u64(v) {
    this.ensure(8);
    this.view.setBigUint64(this.pos, v);
    this.pos += 8;
  }
  i64(v) {
    this.ensure(8);
    this.view.setBigInt64(this.pos, v);
    this.pos += 8;
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
  const b = textEncoder.encode(s);
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
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  i64() {
    this.need(8);
    const v = this.view.getBigInt64(this.pos);
    this.pos += 8;
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
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
    const s = textDecoder.decode(this.buf.subarray(this.pos, this.pos + n));
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
