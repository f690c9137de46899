// Helpers for the WebSocket tests: a small Hrana-over-WebSocket connection on top of the `ws`
// package (JSON text frames or hand-made protobuf binary frames), a minimal protobuf encoder and
// decoder for the few messages the tests build by hand, and raw-socket tools (an upgrade over
// `net`, a frame encoder, a reader for the server's frames) for frames `ws` refuses to send.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';

import WebSocket from 'ws';

export { WebSocket };

export const wsUrl = (server) => `ws://${server.host}:${server.port}`;

/** Rejects with a clear message when `promise` takes longer than `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------------------------------------------
// Protobuf, just enough for hand-made hrana3-protobuf messages.

function varint(value) {
  let n = BigInt(value);
  if (n < 0n) n += 1n << 64n; // int32/int64 negatives are 10-byte two's complement varints
  const out = [];
  do {
    let byte = Number(n & 0x7fn);
    n >>= 7n;
    if (n !== 0n) byte |= 0x80;
    out.push(byte);
  } while (n !== 0n);
  return Buffer.from(out);
}

/** A varint field (wire type 0). */
export const pbVarint = (field, value) => Buffer.concat([varint((field << 3) | 0), varint(value)]);
/** A length-delimited field (wire type 2): a nested message (array of fields), string or bytes. */
export function pbBytes(field, content) {
  const bytes = Array.isArray(content) ? Buffer.concat(content)
    : typeof content === 'string' ? Buffer.from(content, 'utf8') : Buffer.from(content);
  return Buffer.concat([varint((field << 3) | 2), varint(bytes.length), bytes]);
}

/** Decodes one protobuf message into [{ field, wire, value }] (value: bigint or Buffer). */
export function pbDecode(buf) {
  const fields = [];
  let pos = 0;
  const readVarint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const byte = buf[pos++];
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = readVarint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    let value;
    if (wire === 0) value = readVarint();
    else if (wire === 1) { value = buf.subarray(pos, pos + 8); pos += 8; }
    else if (wire === 5) { value = buf.subarray(pos, pos + 4); pos += 4; }
    else if (wire === 2) {
      const len = Number(readVarint());
      value = buf.subarray(pos, pos + len);
      pos += len;
    } else throw new Error(`unsupported wire type ${wire}`);
    if (pos > buf.length) throw new Error('truncated field');
    fields.push({ field, wire, value });
  }
  return fields;
}

/** The first occurrence of `field` in a decoded message. */
export const pbGet = (fields, field) => fields.find((f) => f.field === field);

/** Request field numbers inside RequestMsg (2..13) and ResponseOkMsg, in the Hrana 3 schema. */
export const PB_REQUEST_TYPES = ['open_stream', 'close_stream', 'execute', 'batch', 'open_cursor',
  'close_cursor', 'fetch_cursor', 'sequence', 'describe', 'store_sql', 'close_sql', 'get_autocommit'];

/** ClientMsg builders for hrana3-protobuf. */
export const pbClient = {
  hello: () => pbBytes(1, []),
  request: (requestId, type, body) =>
    pbBytes(2, [pbVarint(1, requestId), pbBytes(PB_REQUEST_TYPES.indexOf(type) + 2, body)]),
  openStream: (requestId, streamId) => pbClient.request(requestId, 'open_stream', [pbVarint(1, streamId)]),
  execute: (requestId, streamId, sql) =>
    pbClient.request(requestId, 'execute', [pbVarint(1, streamId), pbBytes(2, [pbBytes(1, sql)])]),
};

/** "hello" or the request type of an encoded protobuf ClientMsg. */
export function pbClientMsgType(buf) {
  const [top] = pbDecode(buf);
  if (top.field === 1) return 'hello';
  if (top.field !== 2) return `unknown ClientMsg field ${top.field}`;
  const req = pbDecode(top.value).find((f) => f.field >= 2);
  return PB_REQUEST_TYPES[req.field - 2] ?? `unknown request field ${req.field}`;
}

/**
 * Decodes a protobuf ServerMsg into { type, requestId?, response?, error? } where `response` is the
 * decoded fields of the response body and `error` is { message, code }.
 */
export function pbServerMsg(buf) {
  const [top] = pbDecode(buf);
  const types = { 1: 'hello_ok', 2: 'hello_error', 3: 'response_ok', 4: 'response_error' };
  const out = { type: types[top.field] ?? `unknown ServerMsg field ${top.field}` };
  const inner = pbDecode(top.value);
  const errorOf = (f) => {
    const e = pbDecode(f.value);
    return { message: pbGet(e, 1)?.value.toString('utf8'), code: pbGet(e, 2)?.value.toString('utf8') };
  };
  if (out.type === 'hello_error') out.error = errorOf(pbGet(inner, 1));
  if (out.type === 'response_ok') {
    out.requestId = Number(pbGet(inner, 1)?.value ?? 0n);
    const resp = inner.find((f) => f.field >= 2);
    out.responseType = PB_REQUEST_TYPES[resp.field - 2];
    out.response = pbDecode(resp.value);
  }
  if (out.type === 'response_error') {
    out.requestId = Number(pbGet(inner, 1)?.value ?? 0n);
    out.error = errorOf(pbGet(inner, 2));
  }
  return out;
}

/** The integer (zigzag sint64) in row 0, column 0 of a protobuf ExecuteResp. */
export function pbFirstInteger(executeResp) {
  const result = pbDecode(pbGet(executeResp, 1).value);
  const row = pbDecode(pbGet(result, 2).value);
  const value = pbDecode(pbGet(row, 1).value);
  const zigzag = pbGet(value, 2).value;
  return (zigzag >> 1n) ^ -(zigzag & 1n);
}

// ------------------------------------------------------------------------------------------------
// A Hrana connection over the `ws` package.

/** JSON helpers for Hrana requests. */
export const stmt = (sql, args = []) => ({ sql, args, named_args: [], want_rows: true });
export const integer = (n) => ({ type: 'integer', value: String(n) });

export class HranaConn {
  /**
   * Connects to `url` offering `protocols` (null or undefined: no Sec-WebSocket-Protocol header).
   * Rejects when the upgrade fails; the error then has `statusCode` and `body`.
   */
  static connect(url, protocols, { timeoutMs = 5000 } = {}) {
    const ws = protocols == null
      ? new WebSocket(url, { perMessageDeflate: false })
      : new WebSocket(url, protocols, { perMessageDeflate: false });
    const conn = new HranaConn(ws);
    const opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve(conn));
      ws.once('unexpected-response', (req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => { body += chunk; });
        res.on('end', () => {
          const err = new Error(`upgrade refused with HTTP ${res.statusCode}: ${body}`);
          err.statusCode = res.statusCode;
          err.headers = res.headers;
          err.body = body;
          reject(err);
          req.destroy();
        });
      });
      ws.once('error', reject);
    });
    return withTimeout(opened, timeoutMs, `WebSocket upgrade of ${url}`);
  }

  constructor(ws) {
    this.ws = ws;
    this.nextRequestId = 1;
    this.pending = new Map(); // request_id -> { resolve, reject }
    this.unmatched = []; // messages no pending request claimed (hello_ok, hello_error, ...)
    this.waiters = [];
    this.received = []; // every message: { binary, data }
    this.error = null;
    ws.on('error', (err) => { this.error = err; });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        const info = { code, reason: reason.toString('utf8') };
        for (const { reject } of this.pending.values()) {
          reject(new Error(`connection closed (${code} ${info.reason}) before the response`));
        }
        this.pending.clear();
        for (const w of this.waiters) w.reject(new Error(`connection closed (${code} ${info.reason})`));
        this.waiters = [];
        resolve(info);
      });
    });
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
  }

  get protocol() {
    return this.ws.protocol;
  }

  #onMessage(data, isBinary) {
    this.received.push({ binary: isBinary, data });
    let msg;
    if (isBinary) {
      msg = pbServerMsg(data);
      msg.binary = true;
    } else {
      msg = JSON.parse(data.toString('utf8'));
      if (msg.request_id !== undefined) msg.requestId = msg.request_id;
    }
    const waiter = msg.requestId !== undefined ? this.pending.get(msg.requestId) : undefined;
    if (waiter) {
      this.pending.delete(msg.requestId);
      waiter.resolve(msg);
    } else if (this.waiters.length > 0) {
      this.waiters.shift().resolve(msg);
    } else {
      this.unmatched.push(msg);
    }
  }

  /** Sends a JSON message in a text frame. */
  send(obj) {
    this.ws.send(JSON.stringify(obj));
  }

  /** Sends raw bytes or text; `binary` picks the frame type. */
  sendRaw(data, binary) {
    this.ws.send(data, { binary });
  }

  /** The next message that is not the response to a request sent with request(). */
  next(timeoutMs = 5000) {
    if (this.unmatched.length > 0) return Promise.resolve(this.unmatched.shift());
    const p = new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    return withTimeout(p, timeoutMs, 'the next message from the server');
  }

  /** Sends hello and expects hello_ok. */
  async hello(jwt = null) {
    this.send({ type: 'hello', jwt });
    const msg = await this.next();
    assert.equal(msg.type, 'hello_ok', `hello answered with ${JSON.stringify(msg)}`);
  }

  /** Registers a request id so its response resolves the returned promise (even if it never comes). */
  expect(requestId) {
    return new Promise((resolve, reject) => this.pending.set(requestId, { resolve, reject }));
  }

  /** Sends a JSON request; resolves to the response_ok / response_error message. */
  request(request, requestId = this.nextRequestId++) {
    const p = this.expect(requestId);
    this.send({ type: 'request', request_id: requestId, request });
    return p;
  }

  /** Sends a request and returns the `response` of its response_ok (fails on response_error). */
  async ok(request) {
    const msg = await withTimeout(this.request(request), 10_000, `the response to ${request.type}`);
    assert.equal(msg.type, 'response_ok', `${request.type} failed: ${JSON.stringify(msg)}`);
    assert.equal(msg.response.type, request.type);
    return msg.response;
  }

  /** Resolves to { code, reason } once the server has closed the connection (fails after `ms`). */
  waitClose(ms = 5000) {
    return withTimeout(this.closed, ms, 'the server closing the connection');
  }

  close() {
    this.ws.close();
  }

  terminate() {
    this.ws.terminate();
  }
}

/** Asserts that `conn` gets closed by the server with exactly `code`; returns the reason. */
export async function assertClosedWith(conn, code, what) {
  const { code: got, reason } = await conn.waitClose();
  assert.equal(got, code, `${what}: closed with ${got} (${JSON.stringify(reason)}), expected ${code}`);
  return reason;
}

/** A fresh hrana2 connection: hello, open_stream, SELECT 6 * 7 must be 42; then a clean close. */
export async function assertServes(server) {
  const conn = await HranaConn.connect(wsUrl(server), ['hrana2']);
  try {
    await conn.hello();
    await conn.ok({ type: 'open_stream', stream_id: 1 });
    const resp = await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('SELECT 6 * 7') });
    assert.deepEqual(resp.result.rows, [[integer(42)]]);
    await conn.ok({ type: 'close_stream', stream_id: 1 });
  } finally {
    conn.close();
  }
  const { code } = await conn.waitClose();
  assert.equal(code, 1000, 'a client-initiated close must be answered with 1000');
}

// ------------------------------------------------------------------------------------------------
// Raw sockets: an upgrade by hand, client frames by hand, and a reader for the server's frames.

export const OPCODE = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 };

/**
 * One client frame. `length` overrides the announced payload length (to announce more bytes than
 * follow); `mask: false` sends it unmasked (forbidden for clients).
 */
export function encodeFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, length } = {}) {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
  const len = length ?? data.length;
  const header = [(fin ? 0x80 : 0) | opcode];
  const maskBit = mask ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (len < 126) {
    header.push(maskBit | len);
  } else if (len < 65536) {
    header.push(maskBit | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(len);
  } else {
    header.push(maskBit | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(BigInt(len));
  }
  if (!mask) return Buffer.concat([Buffer.from(header), ext, data]);
  const key = crypto.randomBytes(4);
  const masked = Buffer.from(data);
  for (let i = 0; i < masked.length; i++) masked[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(header), ext, key, masked]);
}

/** A Hrana JSON message as one masked text frame. */
export const textFrame = (obj) => encodeFrame(OPCODE.text, typeof obj === 'string' ? obj : JSON.stringify(obj));

/**
 * Opens a TCP connection and performs the WebSocket upgrade by hand. Resolves to
 * { socket, status, headers, frames } where `frames` reads the server's frames after the handshake.
 */
export function rawUpgrade(server, { protocols = 'hrana2', path = '/' } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const socket = net.connect(server.port, server.host);
    const key = crypto.randomBytes(16).toString('base64');
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${server.host}:${server.port}\r\nUpgrade: websocket\r\n` +
                   `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
                   (protocols ? `Sec-WebSocket-Protocol: ${protocols}\r\n` : '') + '\r\n');
    });
    let buffered = Buffer.alloc(0);
    const onData = (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.off('error', reject);
      const [statusLine, ...lines] = buffered.subarray(0, end).toString('latin1').split('\r\n');
      const headers = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      const status = Number(statusLine.split(' ')[1]);
      const frames = new FrameReader(socket, buffered.subarray(end + 4));
      resolve({ socket, status, headers, frames });
    };
    socket.on('data', onData);
  }), 5000, 'a raw WebSocket upgrade');
}

/** Reads the (unmasked) frames a server sends on a raw socket. */
export class FrameReader {
  constructor(socket, initial) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.ended = false;
    this.closedPromise = new Promise((resolve) => socket.once('close', () => {
      this.ended = true;
      this.#wake();
      resolve();
    }));
    socket.on('error', () => {}); // a reset shows up as 'close'
    socket.on('data', (chunk) => this.#push(chunk));
    if (initial.length > 0) this.#push(initial);
  }

  #push(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) break;
      let len = b[1] & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      if (b[1] & 0x80) offset += 4; // servers must not mask, but skip a key if one is there
      if (b.length < offset + len) break;
      this.frames.push({ fin: (b[0] & 0x80) !== 0, opcode: b[0] & 0x0f, payload: b.subarray(offset, offset + len) });
      this.buffer = b.subarray(offset + len);
    }
    this.#wake();
  }

  #wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Waits until `predicate(frames)` holds or the socket is closed; returns the frames. */
  async until(predicate, ms, what) {
    const check = async () => {
      while (!predicate(this.frames) && !this.ended) {
        await new Promise((resolve) => this.waiters.push(resolve));
      }
      return this.frames;
    };
    return withTimeout(check(), ms, what);
  }

  /** The server's close frame: resolves to { code, reason } (fails if none arrives within `ms`). */
  async closeFrame(ms = 5000) {
    const frames = await this.until((fs) => fs.some((f) => f.opcode === OPCODE.close), ms, 'a close frame');
    const close = frames.find((f) => f.opcode === OPCODE.close);
    assert.ok(close, `the connection ended without a close frame; frames: ${frames.map((f) => f.opcode)}`);
    return {
      code: close.payload.length >= 2 ? close.payload.readUInt16BE(0) : null,
      reason: close.payload.subarray(2).toString('utf8'),
    };
  }

  /** The JSON messages of the text frames received so far. */
  jsonMessages() {
    return this.frames.filter((f) => f.opcode === OPCODE.text).map((f) => JSON.parse(f.payload.toString('utf8')));
  }

  /** Resolves once the server has closed the TCP connection (fails after `ms`). */
  waitEnd(ms = 5000) {
    return withTimeout(this.closedPromise, ms, 'the server closing the TCP connection');
  }
}

/** The server's resident set size in MiB, from /proc/<pid>/status. */
export async function rssMiB(pid) {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  assert.ok(match, `no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}
