// Hrana over WebSocket with hostile, broken and demanding clients: subprotocol negotiation,
// malformed and truncated frames (raw `net` sockets, since the `ws` package only sends valid
// ones), undecodable and out-of-order messages, protocol-version rules, oversized messages,
// heavy pipelining, a client that never reads its replies, and clients that vanish in the middle
// of a transaction.
//
// Close codes (RFC 6455 and the Hrana spec as sqld implements it): 1002 WebSocket protocol
// violation, 1003 wrong frame type for the subprotocol, 1007 a message that does not decode (bad
// JSON/protobuf, unknown message or request type, missing fields, invalid UTF-8), 1008 any other
// Hrana protocol error (request before hello, unknown stream, duplicate id, request above the
// negotiated version), 1009 a message over --max-body-size.
//
// After every test a fresh client must still get a correct answer from the same server.

import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';

import { sleep, useServer } from './server.mjs';
import {
  HranaConn, OPCODE, assertClosedWith, assertServes, encodeFrame, integer, pbClient, pbFirstInteger,
  rawUpgrade, rssMiB, stmt, textFrame, withTimeout, wsUrl,
} from './ws-helpers.mjs';

/** A fresh connection that has said hello (default subprotocol hrana2; null: no subprotocol header). */
async function helloConn(server, protocols = ['hrana2']) {
  const conn = await HranaConn.connect(wsUrl(server), protocols);
  if (conn.protocol === 'hrana3-protobuf') {
    conn.sendRaw(pbClient.hello(), true);
    const msg = await conn.next();
    assert.equal(msg.type, 'hello_ok');
  } else {
    await conn.hello();
  }
  return conn;
}

/** A raw socket that has completed the upgrade (101) and the hello exchange. */
async function rawHello(server, protocols = 'hrana2') {
  const raw = await rawUpgrade(server, { protocols });
  assert.equal(raw.status, 101);
  raw.socket.setNoDelay(true);
  raw.socket.write(textFrame({ type: 'hello', jwt: null }));
  await raw.frames.until((fs) => fs.length >= 1, 5000, 'hello_ok');
  assert.deepEqual(raw.frames.jsonMessages()[0], { type: 'hello_ok' });
  return raw;
}

const selectRequest = (requestId, sql, streamId = 1) =>
  ({ type: 'request', request_id: requestId, request: { type: 'execute', stream_id: streamId, stmt: stmt(sql) } });

describe('Hrana over WebSocket: hostile and broken clients', () => {
  const server = useServer();

  afterEach(async () => {
    assert.ok(server.isRunning(), `the server died\n${server.logs()}`);
    await assertServes(server);
  });

  describe('subprotocol negotiation', () => {
    const cases = [
      [['hrana3-protobuf', 'hrana3', 'hrana2', 'hrana1'], 'hrana3-protobuf'],
      [['hrana1', 'hrana2', 'hrana3'], 'hrana3'], // the server's preference, not the client's order
      [['hrana2', 'hrana1'], 'hrana2'], // what @libsql/client offers
      [['hrana1'], 'hrana1'],
      [['x-unknown', 'hrana2'], 'hrana2'],
      [['hrana3', 'hrana3-protobuf'], 'hrana3-protobuf'],
    ];
    for (const [offered, chosen] of cases) {
      test(`offering ${offered.join(', ')} negotiates ${chosen}`, async () => {
        const conn = await helloConn(server, offered);
        try {
          assert.equal(conn.protocol, chosen);
        } finally {
          conn.close();
        }
      });
    }

    test('the Sec-WebSocket-Protocol answer of a raw handshake names the chosen subprotocol', async () => {
      const raw = await rawUpgrade(server, { protocols: 'hrana2, hrana3-protobuf,hrana1' });
      try {
        assert.equal(raw.status, 101);
        assert.equal(raw.headers['sec-websocket-protocol'], 'hrana3-protobuf');
      } finally {
        raw.socket.destroy();
      }
    });

    test('no Sec-WebSocket-Protocol header means hrana1, and none is echoed', async () => {
      const raw = await rawUpgrade(server, { protocols: null });
      try {
        assert.equal(raw.status, 101);
        assert.equal(raw.headers['sec-websocket-protocol'], undefined);
      } finally {
        raw.socket.destroy();
      }
      const conn = await HranaConn.connect(wsUrl(server), null);
      try {
        assert.equal(conn.protocol, '');
        await conn.hello();
        await conn.ok({ type: 'open_stream', stream_id: 1 });
        const resp = await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('SELECT 1') });
        assert.deepEqual(resp.result.rows, [[integer(1)]]);
      } finally {
        conn.close();
      }
    });

    test('only unknown subprotocols: the upgrade is refused with HTTP 400', async () => {
      await assert.rejects(HranaConn.connect(wsUrl(server), ['hrana4', 'graphql-ws']), (err) => {
        assert.equal(err.statusCode, 400, err.message);
        return true;
      });
      const raw = await rawUpgrade(server, { protocols: 'chat, superchat' });
      try {
        assert.equal(raw.status, 400);
        assert.equal(raw.headers.upgrade, undefined, 'a refused upgrade must not announce Upgrade');
      } finally {
        raw.socket.destroy();
      }
    });
  });

  describe('undecodable messages and wrong frame types', () => {
    test('text that is not JSON, after hello, closes with 1007', async () => {
      const conn = await helloConn(server);
      conn.sendRaw('this is {not json', false);
      await assertClosedWith(conn, 1007, 'garbage text');
    });

    test('JSON that is not a message object closes with 1007', async () => {
      for (const text of ['[1, 2, 3]', '42', '"hello"', 'null', '{}']) {
        const conn = await helloConn(server);
        conn.sendRaw(text, false);
        await assertClosedWith(conn, 1007, text);
      }
    });

    test('an unknown message type closes with 1007', async () => {
      const conn = await helloConn(server);
      conn.send({ type: 'goodbye' });
      await assertClosedWith(conn, 1007, 'message type "goodbye"');
    });

    test('an unknown request type closes with 1007', async () => {
      const conn = await helloConn(server);
      conn.send({ type: 'request', request_id: 1, request: { type: 'drop_database', stream_id: 1 } });
      await assertClosedWith(conn, 1007, 'request type "drop_database"');
    });

    test('a request without its required fields closes with 1007', async () => {
      const conn = await helloConn(server);
      await conn.ok({ type: 'open_stream', stream_id: 1 });
      conn.send({ type: 'request', request_id: 2, request: { type: 'execute', stream_id: 1 } }); // no stmt
      await assertClosedWith(conn, 1007, 'execute without stmt');
    });

    test('a binary frame on a JSON subprotocol closes with 1003', async () => {
      for (const protocol of ['hrana2', 'hrana3', 'hrana1']) {
        const conn = await helloConn(server, [protocol]);
        conn.sendRaw(Buffer.from(JSON.stringify({ type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } })), true);
        await assertClosedWith(conn, 1003, `binary frame on ${protocol}`);
      }
    });

    test('a text frame on hrana3-protobuf closes with 1003', async () => {
      const conn = await helloConn(server, ['hrana3-protobuf']);
      conn.sendRaw(JSON.stringify({ type: 'hello', jwt: null }), false);
      await assertClosedWith(conn, 1003, 'text frame on hrana3-protobuf');
    });

    test('bytes that are not protobuf on hrana3-protobuf close with 1007', async () => {
      const conn = await helloConn(server, ['hrana3-protobuf']);
      conn.sendRaw(Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]), true); // length far past the end
      await assertClosedWith(conn, 1007, 'truncated protobuf');
    });

    test('hrana3-protobuf works with hand-made messages (sanity check of the encoder used above)', async () => {
      const conn = await helloConn(server, ['hrana3-protobuf']);
      try {
        conn.sendRaw(pbClient.openStream(1, 1), true);
        conn.sendRaw(pbClient.execute(2, 1, 'SELECT -5 * 7'), true);
        const open = await conn.next();
        assert.deepEqual([open.type, open.requestId, open.responseType], ['response_ok', 1, 'open_stream']);
        const exec = await conn.next();
        assert.deepEqual([exec.type, exec.requestId, exec.responseType], ['response_ok', 2, 'execute']);
        assert.equal(pbFirstInteger(exec.response), -35n);
      } finally {
        conn.close();
      }
    });

    test('invalid UTF-8 in a text frame closes with 1007', async () => {
      const raw = await rawHello(server);
      // "SELECT '\xff\xfe'" inside otherwise valid JSON
      const json = Buffer.concat([
        Buffer.from('{"type":"request","request_id":1,"request":{"type":"open_stream","stream_id":1'),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('}}'),
      ]);
      raw.socket.write(encodeFrame(OPCODE.text, json));
      const { code } = await raw.frames.closeFrame();
      assert.equal(code, 1007);
      raw.socket.destroy();
    });
  });

  describe('requests out of place', () => {
    test('a request before hello closes with 1008', async () => {
      const conn = await HranaConn.connect(wsUrl(server), ['hrana2']);
      conn.send({ type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } });
      await assertClosedWith(conn, 1008, 'request before hello');
    });

    test('a protobuf request before hello closes with 1008', async () => {
      const conn = await HranaConn.connect(wsUrl(server), ['hrana3-protobuf']);
      conn.sendRaw(pbClient.openStream(1, 1), true);
      await assertClosedWith(conn, 1008, 'protobuf request before hello');
    });

    test('a request on a stream that was never opened closes with 1008', async () => {
      const conn = await helloConn(server);
      await conn.ok({ type: 'open_stream', stream_id: 1 });
      conn.send(selectRequest(2, 'SELECT 1', 7));
      await assertClosedWith(conn, 1008, 'execute on stream 7');
    });

    test('a request on a closed stream closes with 1008', async () => {
      const conn = await helloConn(server);
      await conn.ok({ type: 'open_stream', stream_id: 3 });
      await conn.ok({ type: 'close_stream', stream_id: 3 });
      conn.send({ type: 'request', request_id: 9, request: { type: 'batch', stream_id: 3, batch: { steps: [{ stmt: stmt('SELECT 1') }] } } });
      await assertClosedWith(conn, 1008, 'batch on a closed stream');
    });

    test('opening a stream id that is already open closes with 1008, after answering what came before', async () => {
      const conn = await helloConn(server);
      const first = conn.request({ type: 'open_stream', stream_id: 5 });
      const second = conn.request({ type: 'open_stream', stream_id: 5 });
      second.catch(() => {});
      assert.equal((await first).type, 'response_ok');
      await assertClosedWith(conn, 1008, 'duplicate open_stream');
      await assert.rejects(second, /connection closed/);
    });

    test('storing an sql id twice closes with 1008', async () => {
      const conn = await helloConn(server);
      await conn.ok({ type: 'store_sql', sql_id: 1, sql: 'SELECT 1' });
      conn.send({ type: 'request', request_id: 50, request: { type: 'store_sql', sql_id: 1, sql: 'SELECT 2' } });
      await assertClosedWith(conn, 1008, 'duplicate store_sql');
    });

    test('executing an sql id that was never stored closes with 1008', async () => {
      const conn = await helloConn(server);
      await conn.ok({ type: 'open_stream', stream_id: 1 });
      conn.send({ type: 'request', request_id: 2, request: { type: 'execute', stream_id: 1, stmt: { sql_id: 42, args: [], named_args: [], want_rows: true } } });
      await assertClosedWith(conn, 1008, 'unknown sql_id');
    });

    test('fetching from a cursor that is not open closes with 1008', async () => {
      const conn = await helloConn(server, ['hrana3']);
      conn.send({ type: 'request', request_id: 1, request: { type: 'fetch_cursor', cursor_id: 4, max_count: 10 } });
      await assertClosedWith(conn, 1008, 'fetch_cursor on an unknown cursor');
    });

    test('a failing statement is a response_error and the connection stays usable', async () => {
      const conn = await helloConn(server);
      try {
        await conn.ok({ type: 'open_stream', stream_id: 1 });
        const bad = await conn.request({ type: 'execute', stream_id: 1, stmt: stmt('SELECT * FROM no_such_table') });
        assert.equal(bad.type, 'response_error');
        assert.match(bad.error.message, /no such table/);
        const syntax = await conn.request({ type: 'execute', stream_id: 1, stmt: stmt('SELEC 1') });
        assert.equal(syntax.type, 'response_error');
        const good = await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('SELECT 2') });
        assert.deepEqual(good.result.rows, [[integer(2)]]);
      } finally {
        conn.close();
      }
    });
  });

  describe('limits', () => {
    test('a batch with more steps than --max-batch-steps is a response_error, as on HTTP, and the connection stays usable', async () => {
      const conn = await helloConn(server, ['hrana3']);
      try {
        await conn.ok({ type: 'open_stream', stream_id: 1 });
        const steps = Array.from({ length: 10001 }, () => ({ stmt: stmt('SELECT 1') }));
        const big = await conn.request({ type: 'batch', stream_id: 1, batch: { steps } });
        assert.equal(big.type, 'response_error');
        assert.match(big.error.message, /Too many steps in one batch \(the limit is 10000\)/);
        // A cursor answers its open, and the error is its only entry: clients fetch right
        // behind the open without waiting for it.
        await conn.ok({ type: 'open_cursor', stream_id: 1, cursor_id: 1, batch: { steps } });
        const fetched = await conn.ok({ type: 'fetch_cursor', cursor_id: 1, max_count: 100 });
        assert.equal(fetched.entries?.length, 1, JSON.stringify(fetched));
        assert.equal(fetched.entries[0].type, 'error');
        assert.match(fetched.entries[0].error.message, /Too many steps in one batch/);
        assert.equal(fetched.done, true);
        await conn.ok({ type: 'close_cursor', cursor_id: 1 });
        // Such cursors count against the connection's 32 until closed.
        for (let c = 10; c < 42; c++) await conn.ok({ type: 'open_cursor', stream_id: 1, cursor_id: c, batch: { steps } });
        const exhausted = await conn.request({ type: 'open_cursor', stream_id: 1, cursor_id: 42, batch: { steps } });
        assert.equal(exhausted.type, 'response_error');
        assert.equal(exhausted.error.code, 'CURSORS_EXHAUSTED');
        for (let c = 10; c < 42; c++) await conn.ok({ type: 'close_cursor', cursor_id: c });
        const good = await conn.ok({ type: 'batch', stream_id: 1, batch: { steps: steps.slice(0, 10000) } });
        assert.equal(good.result.step_results.length, 10000);
      } finally {
        conn.close();
      }
    });
  });

  describe('protocol versions', () => {
    test('get_autocommit on hrana2 closes with 1008', async () => {
      const conn = await helloConn(server, ['hrana2']);
      await conn.ok({ type: 'open_stream', stream_id: 1 });
      conn.send({ type: 'request', request_id: 2, request: { type: 'get_autocommit', stream_id: 1 } });
      await assertClosedWith(conn, 1008, 'get_autocommit on hrana2');
    });

    test('open_cursor on hrana2 closes with 1008', async () => {
      const conn = await helloConn(server, ['hrana2']);
      await conn.ok({ type: 'open_stream', stream_id: 1 });
      conn.send({ type: 'request', request_id: 2, request: { type: 'open_cursor', stream_id: 1, cursor_id: 1, batch: { steps: [{ stmt: stmt('SELECT 1') }] } } });
      await assertClosedWith(conn, 1008, 'open_cursor on hrana2');
    });

    test('an is_autocommit batch condition on hrana2 closes with 1008', async () => {
      const conn = await helloConn(server, ['hrana2']);
      await conn.ok({ type: 'open_stream', stream_id: 1 });
      conn.send({
        type: 'request', request_id: 2,
        request: { type: 'batch', stream_id: 1, batch: { steps: [{ condition: { type: 'is_autocommit' }, stmt: stmt('SELECT 1') }] } },
      });
      await assertClosedWith(conn, 1008, 'is_autocommit condition on hrana2');
    });

    test('the same is_autocommit condition works on hrana3', async () => {
      const conn = await helloConn(server, ['hrana3']);
      try {
        await conn.ok({ type: 'open_stream', stream_id: 1 });
        const resp = await conn.ok({
          type: 'batch', stream_id: 1,
          batch: { steps: [{ condition: { type: 'is_autocommit' }, stmt: stmt('SELECT 1') }] },
        });
        assert.deepEqual(resp.result.step_results[0].rows, [[integer(1)]]);
        assert.deepEqual(await conn.ok({ type: 'get_autocommit', stream_id: 1 }), { type: 'get_autocommit', is_autocommit: true });
      } finally {
        conn.close();
      }
    });

    for (const type of ['describe', 'sequence', 'store_sql']) {
      test(`${type} on hrana1 closes with 1008`, async () => {
        const conn = await helloConn(server, ['hrana1']);
        await conn.ok({ type: 'open_stream', stream_id: 1 });
        const request = type === 'store_sql' ? { type, sql_id: 1, sql: 'SELECT 1' } : { type, stream_id: 1, sql: 'SELECT 1' };
        conn.send({ type: 'request', request_id: 2, request });
        await assertClosedWith(conn, 1008, `${type} on hrana1`);
      });
    }

    for (const protocol of ['hrana2', 'hrana3']) {
      test(`a second hello on ${protocol} is answered and the connection keeps its streams`, async () => {
        const conn = await helloConn(server, [protocol]);
        const table = `rehello_${protocol}`;
        try {
          await conn.ok({ type: 'open_stream', stream_id: 1 });
          await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt(`CREATE TABLE ${table} (a)`) });
          await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('BEGIN') });
          await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt(`INSERT INTO ${table} VALUES (1)`) });
          await conn.hello('another.jwt.token');
          await conn.hello(null);
          // Still the same stream, inside the same transaction.
          const inside = await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt(`SELECT count(*) FROM ${table}`) });
          assert.deepEqual(inside.result.rows, [[integer(1)]]);
          await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('ROLLBACK') });
          const after = await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt(`SELECT count(*) FROM ${table}`) });
          assert.deepEqual(after.result.rows, [[integer(0)]]);
        } finally {
          conn.close();
        }
      });
    }

    test('a second hello on hrana1 closes with 1008', async () => {
      const conn = await helloConn(server, ['hrana1']);
      conn.send({ type: 'hello', jwt: null });
      await assertClosedWith(conn, 1008, 're-hello on hrana1');
    });

    test('a second hello without any subprotocol (hrana1) closes with 1008', async () => {
      const conn = await helloConn(server, null);
      assert.equal(conn.protocol, '');
      conn.send({ type: 'hello', jwt: null });
      await assertClosedWith(conn, 1008, 're-hello without a subprotocol');
    });
  });

  describe('broken frames on raw sockets', () => {
    test('half a frame, then the client closes: the server drops the connection', async () => {
      const raw = await rawHello(server);
      const frame = textFrame(selectRequest(1, 'SELECT 1'));
      raw.socket.write(frame.subarray(0, Math.floor(frame.length / 2)));
      await sleep(50);
      raw.socket.end(); // half-close: the server reads EOF in the middle of a frame
      await raw.frames.waitEnd(3000);
      assert.equal(raw.frames.jsonMessages().length, 1, 'nothing but hello_ok may have been answered');
    });

    test('half a frame, then the client resets the connection', async () => {
      const raw = await rawHello(server);
      const frame = textFrame(selectRequest(1, 'SELECT 1'));
      raw.socket.write(frame.subarray(0, 5));
      await sleep(50);
      raw.socket.resetAndDestroy();
    });

    test('a frame header announcing more bytes than follow: the server waits, serves others, and finishes the frame when the rest arrives', async () => {
      const raw = await rawHello(server);
      try {
        raw.socket.write(textFrame({ type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } }));
        const frame = textFrame(selectRequest(2, 'SELECT 40 + 2'));
        raw.socket.write(frame.subarray(0, frame.length - 10));
        await raw.frames.until((fs) => fs.length >= 2, 5000, 'open_stream response');
        await sleep(300);
        assert.equal(raw.frames.frames.length, 2, 'the server answered a frame it has not fully received');
        await assertServes(server); // other connections are not held up by the incomplete frame
        raw.socket.write(frame.subarray(frame.length - 10));
        await raw.frames.until((fs) => fs.length >= 3, 5000, 'execute response');
        const [, , exec] = raw.frames.jsonMessages();
        assert.equal(exec.type, 'response_ok');
        assert.equal(exec.request_id, 2);
        assert.deepEqual(exec.response.result.rows, [[integer(42)]]);
      } finally {
        raw.socket.destroy();
      }
    });

    test('a frame header announcing more bytes than follow, then EOF: the server drops the connection', async () => {
      const raw = await rawHello(server);
      raw.socket.write(encodeFrame(OPCODE.text, '{"type":"request"', { length: 1000 }));
      await sleep(50);
      raw.socket.end();
      await raw.frames.waitEnd(3000);
      assert.equal(raw.frames.frames.length, 1);
    });

    test('a message delivered one byte at a time is answered', async () => {
      const raw = await rawHello(server);
      try {
        const bytes = Buffer.concat([
          textFrame({ type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } }),
          textFrame(selectRequest(2, "SELECT 'byte by byte'")),
        ]);
        for (const byte of bytes) {
          raw.socket.write(Buffer.from([byte]));
          await new Promise((resolve) => setImmediate(resolve));
        }
        await raw.frames.until((fs) => fs.length >= 3, 5000, 'both responses');
        const [, open, exec] = raw.frames.jsonMessages();
        assert.equal(open.type, 'response_ok');
        assert.deepEqual(exec.response.result.rows, [[{ type: 'text', value: 'byte by byte' }]]);
      } finally {
        raw.socket.destroy();
      }
    });

    test('a fragmented message with a ping between its fragments is answered, and so is the ping', async () => {
      const raw = await rawHello(server);
      try {
        raw.socket.write(textFrame({ type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } }));
        const json = Buffer.from(JSON.stringify(selectRequest(2, "SELECT 'in three parts'")));
        const third = Math.floor(json.length / 3);
        raw.socket.write(encodeFrame(OPCODE.text, json.subarray(0, third), { fin: false }));
        raw.socket.write(encodeFrame(OPCODE.ping, 'are you there'));
        raw.socket.write(encodeFrame(OPCODE.continuation, json.subarray(third, 2 * third), { fin: false }));
        raw.socket.write(encodeFrame(OPCODE.continuation, json.subarray(2 * third)));
        await raw.frames.until((fs) => fs.filter((f) => f.opcode === OPCODE.text).length >= 3, 5000, 'the response');
        const pong = raw.frames.frames.find((f) => f.opcode === OPCODE.pong);
        assert.ok(pong, 'no pong');
        assert.equal(pong.payload.toString(), 'are you there');
        const exec = raw.frames.jsonMessages()[2];
        assert.deepEqual(exec.response.result.rows, [[{ type: 'text', value: 'in three parts' }]]);
      } finally {
        raw.socket.destroy();
      }
    });

    test('an unmasked client frame closes with 1002', async () => {
      const raw = await rawHello(server);
      raw.socket.write(encodeFrame(OPCODE.text, JSON.stringify(selectRequest(1, 'SELECT 1')), { mask: false }));
      const { code } = await raw.frames.closeFrame();
      assert.equal(code, 1002);
      raw.socket.destroy();
    });

    test('a continuation frame that continues nothing closes with 1002', async () => {
      const raw = await rawHello(server);
      raw.socket.write(encodeFrame(OPCODE.continuation, '{"type":"hello"}'));
      const { code } = await raw.frames.closeFrame();
      assert.equal(code, 1002);
      raw.socket.destroy();
    });

    test('a reserved opcode closes with 1002', async () => {
      const raw = await rawHello(server);
      raw.socket.write(encodeFrame(3, 'x'));
      const { code } = await raw.frames.closeFrame();
      assert.equal(code, 1002);
      raw.socket.destroy();
    });

    test('a frame announcing 1 GiB is refused from its header with 1009', async () => {
      const raw = await rawHello(server);
      raw.socket.write(encodeFrame(OPCODE.text, '{"type":', { length: 1 << 30 }));
      const { code } = await raw.frames.closeFrame();
      assert.equal(code, 1009);
      raw.socket.destroy();
    });
  });

  describe('streams are database connections', () => {
    // A stream is one SQLite connection for its whole life (as in sqld), so connection-local
    // state such as a TEMP table belongs to it: its later requests see it, other streams don't,
    // and it does not outlive the stream.
    test('a TEMP table created on a stream is seen by its later requests and by no other stream', async () => {
      const conn = await helloConn(server);
      try {
        await conn.ok({ type: 'open_stream', stream_id: 1 });
        await conn.ok({ type: 'open_stream', stream_id: 2 });
        await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('CREATE TEMP TABLE scratch (a)') });
        await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('INSERT INTO scratch VALUES (1), (2)') });
        const own = await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('SELECT count(*) FROM scratch') });
        assert.deepEqual(own.result.rows, [[integer(2)]]);
        const other = await conn.ok({ type: 'execute', stream_id: 2, stmt: stmt("SELECT count(*) FROM temp.sqlite_master WHERE name = 'scratch'") });
        assert.deepEqual(other.result.rows, [[integer(0)]], 'another stream sees the TEMP table');
        // The same name on the other stream is a different table.
        await conn.ok({ type: 'execute', stream_id: 2, stmt: stmt('CREATE TEMP TABLE scratch (b)') });
      } finally {
        conn.close();
      }
    });

    test('a TEMP table does not outlive its stream', async () => {
      const first = await helloConn(server);
      try {
        await first.ok({ type: 'open_stream', stream_id: 1 });
        // Inside a transaction, so this does not depend on how autocommit DDL is run (see above).
        await first.ok({ type: 'execute', stream_id: 1, stmt: stmt('BEGIN') });
        await first.ok({ type: 'execute', stream_id: 1, stmt: stmt('CREATE TEMP TABLE left_behind (a)') });
        await first.ok({ type: 'execute', stream_id: 1, stmt: stmt('INSERT INTO left_behind VALUES (1)') });
        await first.ok({ type: 'execute', stream_id: 1, stmt: stmt('COMMIT') });
        const seen = await first.ok({ type: 'execute', stream_id: 1, stmt: stmt('SELECT count(*) FROM left_behind') });
        assert.deepEqual(seen.result.rows, [[integer(1)]]);
        await first.ok({ type: 'close_stream', stream_id: 1 });
      } finally {
        first.close();
      }
      const second = await helloConn(server);
      try {
        for (let s = 1; s <= 8; s++) {
          await second.ok({ type: 'open_stream', stream_id: s });
          const r = await second.ok({ type: 'execute', stream_id: s, stmt: stmt("SELECT count(*) FROM temp.sqlite_master WHERE name = 'left_behind'") });
          assert.deepEqual(r.result.rows, [[integer(0)]], `stream ${s} of a later connection sees a closed stream's TEMP table`);
        }
      } finally {
        second.close();
      }
    });
  });

  describe('pipelining', () => {
    test('many requests on several streams of one connection, sent at once, are answered by request_id', async () => {
      const conn = await helloConn(server, ['hrana3']);
      try {
        const STREAMS = 5;
        const PER_STREAM = 100;
        // Request ids are arbitrary int32 values chosen by the client, here scattered and signed.
        let nextId = -1_000_000;
        const takeId = () => (nextId += 7919);
        const expectations = [];
        const sendChecked = (request, check) => {
          const id = takeId();
          expectations.push({ id, request, response: conn.request(request, id), check });
        };
        for (let s = 1; s <= STREAMS; s++) {
          sendChecked({ type: 'open_stream', stream_id: s }, () => {});
          sendChecked({ type: 'execute', stream_id: s, stmt: stmt(`CREATE TABLE pipe_${s} (seq)`) }, () => {});
        }
        for (let i = 0; i < PER_STREAM; i++) {
          for (let s = 1; s <= STREAMS; s++) {
            sendChecked({ type: 'execute', stream_id: s, stmt: stmt(`INSERT INTO pipe_${s} VALUES (?)`, [integer(i)]) },
                        (resp) => assert.equal(resp.result.affected_row_count, 1));
            // Requests on one stream run in order: this SELECT sees exactly the inserts before it.
            sendChecked({ type: 'execute', stream_id: s, stmt: stmt(`SELECT ? * 1000 + ?, (SELECT count(*) FROM pipe_${s})`, [integer(s), integer(i)]) },
                        (resp) => assert.deepEqual(resp.result.rows, [[integer(s * 1000 + i), integer(i + 1)]]));
          }
        }
        for (let s = 1; s <= STREAMS; s++) {
          sendChecked({ type: 'execute', stream_id: s, stmt: stmt(`SELECT group_concat(seq) FROM (SELECT seq FROM pipe_${s} ORDER BY rowid)`) },
                      (resp) => assert.deepEqual(resp.result.rows, [[
                        { type: 'text', value: Array.from({ length: PER_STREAM }, (_, i) => i).join(',') }]]));
          sendChecked({ type: 'close_stream', stream_id: s }, () => {});
        }
        const responses = await withTimeout(Promise.all(expectations.map((e) => e.response)), 20_000, 'all responses');
        assert.equal(responses.length, STREAMS * (2 * PER_STREAM + 4));
        responses.forEach((resp, i) => {
          const { id, request, check } = expectations[i];
          assert.equal(resp.request_id, id);
          assert.equal(resp.type, 'response_ok', `${request.type} failed: ${JSON.stringify(resp.error)}`);
          assert.equal(resp.response.type, request.type);
          check(resp.response);
        });
        assert.deepEqual(conn.unmatched, [], 'responses nobody asked for');
      } finally {
        conn.close();
      }
    });

    test('requests pipelined right behind hello, before its answer, are served', async () => {
      const conn = await HranaConn.connect(wsUrl(server), ['hrana2']);
      try {
        conn.send({ type: 'hello', jwt: null });
        const open = conn.request({ type: 'open_stream', stream_id: 1 });
        const exec = conn.request({ type: 'execute', stream_id: 1, stmt: stmt('SELECT 7') });
        assert.equal((await conn.next()).type, 'hello_ok');
        assert.equal((await open).type, 'response_ok');
        assert.deepEqual((await exec).response.result.rows, [[integer(7)]]);
      } finally {
        conn.close();
      }
    });
  });

  describe('clients that go away or stop reading', () => {
    /** Inserts with a fresh connection; resolves to the elapsed milliseconds. */
    async function timedInsert(value) {
      const conn = await helloConn(server);
      try {
        await conn.ok({ type: 'open_stream', stream_id: 1 });
        const start = Date.now();
        await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('INSERT INTO gone VALUES (?)', [{ type: 'text', value }]) });
        return Date.now() - start;
      } finally {
        conn.close();
      }
    }

    async function countGone(value) {
      const conn = await helloConn(server);
      try {
        await conn.ok({ type: 'open_stream', stream_id: 1 });
        const resp = await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('SELECT count(*) FROM gone WHERE v = ?', [{ type: 'text', value }]) });
        return Number(resp.result.rows[0][0].value);
      } finally {
        conn.close();
      }
    }

    /** A connection holding an open write transaction (BEGIN IMMEDIATE + an INSERT of `value`). */
    async function writerInTransaction(value) {
      const conn = await helloConn(server);
      await conn.ok({ type: 'open_stream', stream_id: 1 });
      await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('BEGIN IMMEDIATE') });
      await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('INSERT INTO gone VALUES (?)', [{ type: 'text', value }]) });
      return conn;
    }

    /**
     * Starts an INSERT on another connection, checks it is held up by the open transaction, then
     * runs `vanish()`; the INSERT must then finish well within the 5 s busy timeout.
     */
    async function assertLockReleasedBy(vanish, value) {
      const waiter = timedInsert(value);
      let settled = false;
      waiter.then(() => { settled = true; }, () => { settled = true; });
      await sleep(300);
      assert.equal(settled, false, 'the INSERT did not wait for the open write transaction');
      const start = Date.now();
      await vanish();
      await waiter;
      const after = Date.now() - start;
      assert.ok(after < 2000, `the write lock was released ${after} ms after the client went away`);
    }

    test('setup: a table to write to', async () => {
      const conn = await helloConn(server);
      try {
        await conn.ok({ type: 'open_stream', stream_id: 1 });
        await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('CREATE TABLE gone (v TEXT)') });
      } finally {
        conn.close();
      }
    });

    test('a client that drops the TCP connection inside a write transaction: rolled back promptly', async () => {
      const writer = await writerInTransaction('dropped');
      await assertLockReleasedBy(async () => writer.terminate(), 'after-dropped');
      assert.equal(await countGone('dropped'), 0, 'the abandoned transaction was committed');
      assert.equal(await countGone('after-dropped'), 1);
    });

    test('a client that closes the WebSocket inside a write transaction: rolled back promptly', async () => {
      const writer = await writerInTransaction('closed');
      await assertLockReleasedBy(async () => {
        writer.close();
        await writer.waitClose();
      }, 'after-closed');
      assert.equal(await countGone('closed'), 0);
    });

    test('a raw client that resets the connection inside a write transaction: rolled back promptly', async () => {
      const raw = await rawHello(server);
      raw.socket.write(textFrame({ type: 'request', request_id: 1, request: { type: 'open_stream', stream_id: 1 } }));
      raw.socket.write(textFrame({ type: 'request', request_id: 2, request: { type: 'execute', stream_id: 1, stmt: stmt('BEGIN IMMEDIATE') } }));
      raw.socket.write(textFrame({ type: 'request', request_id: 3, request: { type: 'execute', stream_id: 1, stmt: stmt("INSERT INTO gone VALUES ('reset')") } }));
      await raw.frames.until((fs) => fs.length >= 4, 5000, 'three responses');
      assert.ok(raw.frames.jsonMessages().slice(1).every((m) => m.type === 'response_ok'), JSON.stringify(raw.frames.jsonMessages()));
      await assertLockReleasedBy(async () => raw.socket.resetAndDestroy(), 'after-reset');
      assert.equal(await countGone('reset'), 0);
    });

    test('a client that goes away while its own BEGIN IMMEDIATE waits for the lock does not keep the lock', async () => {
      const holder = await writerInTransaction('holder');
      // The doomed client asks for the write lock and vanishes while waiting for it.
      const doomed = await helloConn(server);
      await doomed.ok({ type: 'open_stream', stream_id: 1 });
      const pending = doomed.request({ type: 'execute', stream_id: 1, stmt: stmt('BEGIN IMMEDIATE') });
      pending.catch(() => {});
      await sleep(200);
      doomed.terminate();
      await doomed.waitClose();
      // Once the holder commits, the doomed BEGIN IMMEDIATE may get the lock; the server must
      // notice its client is gone and give the lock back rather than keep it for a dead client.
      await holder.ok({ type: 'execute', stream_id: 1, stmt: stmt('COMMIT') });
      holder.close();
      const elapsed = await timedInsert('after-doomed');
      assert.ok(elapsed < 2000, `a write took ${elapsed} ms after the lock holder committed`);
      assert.equal(await countGone('holder'), 1);
    });

    test('a client that pipelines 10,000 executes and never reads: others are served and memory stays bounded', async () => {
      const REQUESTS = 10_000;
      const raw = await rawHello(server);
      try {
        raw.socket.write(textFrame({ type: 'request', request_id: 0, request: { type: 'open_stream', stream_id: 1 } }));
        // Each answer carries 32 KiB of blob (about 44 KB of base64), 440 MB in all: far more than
        // socket buffers hold, so a server that queued answers instead of applying backpressure
        // would grow by hundreds of MB.
        const frame = textFrame(selectRequest(1, 'SELECT zeroblob(32768), 1'));
        raw.socket.pause(); // from here on nothing is read from this socket
        const batch = Buffer.concat(Array.from({ length: REQUESTS }, () => frame));
        raw.socket.write(batch);
        const rssBefore = await rssMiB(server.pid);
        let peak = rssBefore;
        for (let round = 0; round < 6; round++) {
          await sleep(400);
          const start = Date.now();
          await assertServes(server);
          const elapsed = Date.now() - start;
          assert.ok(elapsed < 3000, `another client waited ${elapsed} ms for its answers`);
          peak = Math.max(peak, await rssMiB(server.pid));
        }
        // Growth, not absolute size: the sanitizer build of the server starts far larger and
        // keeps freed memory in quarantine. Queuing the answers would add 440 MB.
        assert.ok(peak - rssBefore < 150,
          `the server's RSS grew by ${(peak - rssBefore).toFixed(1)} MiB (from ${rssBefore.toFixed(1)} to ${peak.toFixed(1)} MiB)`);
        assert.ok(server.isRunning());
      } finally {
        raw.socket.destroy();
      }
      // Once the client is gone the server carries on as before.
      await sleep(200);
      const start = Date.now();
      await assertServes(server);
      assert.ok(Date.now() - start < 3000);
    });
  });
});

describe('Hrana over WebSocket with --max-body-size 1MiB', () => {
  const server = useServer({ args: ['--max-body-size', '1MiB'] });

  afterEach(async () => {
    assert.ok(server.isRunning(), `the server died\n${server.logs()}`);
    await assertServes(server);
  });

  const MiB = 1024 * 1024;
  const bigSelect = (bytes) => selectRequest(2, `SELECT length('${'x'.repeat(bytes)}')`);

  test('a 2 MiB text message closes with 1009', async () => {
    const conn = await helloConn(server);
    await conn.ok({ type: 'open_stream', stream_id: 1 });
    conn.send(bigSelect(2 * MiB));
    await assertClosedWith(conn, 1009, '2 MiB JSON message');
  });

  test('a 2 MiB binary message on hrana3-protobuf closes with 1009', async () => {
    const conn = await helloConn(server, ['hrana3-protobuf']);
    conn.sendRaw(pbClient.openStream(1, 1), true);
    conn.sendRaw(pbClient.execute(2, 1, `SELECT length('${'x'.repeat(2 * MiB)}')`), true);
    await assertClosedWith(conn, 1009, '2 MiB protobuf message');
  });

  test('a message just under the limit is answered', async () => {
    const conn = await helloConn(server);
    try {
      await conn.ok({ type: 'open_stream', stream_id: 1 });
      const n = MiB - 1024;
      const resp = await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt(`SELECT length('${'x'.repeat(n)}')`) });
      assert.deepEqual(resp.result.rows, [[integer(n)]]);
    } finally {
      conn.close();
    }
  });

  test('a message over the limit in small fragments closes with 1009', async () => {
    const raw = await rawHello(server);
    const json = Buffer.from(JSON.stringify(bigSelect(2 * MiB)));
    const size = 64 * 1024;
    raw.socket.write(encodeFrame(OPCODE.text, json.subarray(0, size), { fin: false }));
    for (let offset = size; offset < json.length; offset += size) {
      const fin = offset + size >= json.length;
      if (!raw.socket.writable) break; // the server may close before the last fragment
      raw.socket.write(encodeFrame(OPCODE.continuation, json.subarray(offset, offset + size), { fin }));
    }
    const { code } = await raw.frames.closeFrame();
    assert.equal(code, 1009);
    raw.socket.destroy();
  });

  test('a frame header announcing 2 MiB closes with 1009 before the payload arrives', async () => {
    const raw = await rawHello(server);
    raw.socket.write(encodeFrame(OPCODE.text, '{"type":"request"', { length: 2 * MiB }));
    const { code } = await raw.frames.closeFrame();
    assert.equal(code, 1009);
    raw.socket.destroy();
  });
});
