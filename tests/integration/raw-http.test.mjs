// The HTTP surface without a client library: probes, the legacy `POST /` API, the JSON wire
// format of Hrana pipelines and cursors, hostile or broken requests, stream expiry, and other
// clients being served while one request waits for the write lock.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, test } from 'node:test';

import { sleep, startServer, useServer } from './server.mjs';

describe('raw HTTP', () => {
  const server = useServer();

  function post(path, body, headers = { 'content-type': 'application/json' }) {
    return fetch(server.url + path, {
      method: 'POST',
      headers,
      body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
    });
  }

  /** POSTs a JSON pipeline to /v2 or /v3; returns { status, json (if it parses), text, contentType }. */
  async function pipeline(body, version = 'v2') {
    const resp = await fetch(`${server.url}/${version}/pipeline`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await resp.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: resp.status, json, text, contentType: resp.headers.get('content-type') };
  }

  const stmt = (sql, args = [], extra = {}) => ({ sql, args, named_args: [], want_rows: true, ...extra });
  const execute = (sql, args) => ({ type: 'execute', stmt: stmt(sql, args) });
  const close = { type: 'close' };

  /** Runs statements on a fresh stream and returns the execute results, failing on any error. */
  async function run(...sqls) {
    const { status, json, text } = await pipeline({ requests: [...sqls.map((s) => execute(s)), close] });
    assert.equal(status, 200, text);
    return json.results.map((r, i) => {
      assert.equal(r.type, 'ok', `statement ${i} (${sqls[i]}) failed: ${JSON.stringify(r.error)}`);
      return r.response.result;
    });
  }

  /** The server must keep answering correctly after every test, including the hostile ones. */
  afterEach(async () => {
    assert.ok(server.isRunning(), `the server died\n${server.logs()}`);
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    await health.arrayBuffer();
    const [r] = await run('SELECT 6 * 7');
    assert.deepEqual(r.rows, [[{ type: 'integer', value: '42' }]]);
  });

  describe('probes', () => {
    test('GET /health answers 200', async () => {
      const resp = await fetch(`${server.url}/health`);
      assert.equal(resp.status, 200);
      await resp.arrayBuffer();
    });

    test('GET /version answers 200 with a version string', async () => {
      const resp = await fetch(`${server.url}/version`);
      assert.equal(resp.status, 200);
      assert.match(resp.headers.get('content-type') ?? '', /^text\//);
      const text = (await resp.text()).trim();
      assert.ok(text.length > 0, 'empty version');
    });

    for (const path of ['/v2', '/v3', '/v3-protobuf']) {
      test(`GET ${path} answers 200`, async () => {
        const resp = await fetch(server.url + path);
        assert.equal(resp.status, 200);
        await resp.arrayBuffer();
      });
    }
  });

  describe('Hrana JSON wire format', () => {
    test('a v2 execute result has the fields and value encodings the clients check', async () => {
      const { status, json, contentType } = await pipeline({
        requests: [
          execute("SELECT 1 AS i, 2.5 AS f, 'txt' AS t, x'00ff' AS b, NULL AS n, ? AS p, ? AS q",
                  [{ type: 'integer', value: '-9223372036854775808' }, { type: 'blob', base64: 'AAEC' }]),
          close,
        ],
      });
      assert.equal(status, 200);
      assert.match(contentType, /^application\/json/);
      assert.equal(json.baton, null, 'a closed stream must return a null baton');
      assert.equal(json.results.length, 2);
      const [exec, closed] = json.results;
      assert.equal(exec.type, 'ok');
      assert.equal(exec.response.type, 'execute');
      assert.deepEqual(closed, { type: 'ok', response: { type: 'close' } });
      const r = exec.response.result;
      assert.deepEqual(r.cols.map((c) => c.name), ['i', 'f', 't', 'b', 'n', 'p', 'q']);
      assert.ok(r.cols.every((c) => c.decltype === null || c.decltype === undefined));
      const [i, f, t, b, n, p, q] = r.rows[0];
      assert.deepEqual(i, { type: 'integer', value: '1' });
      assert.deepEqual(f, { type: 'float', value: 2.5 });
      assert.deepEqual(t, { type: 'text', value: 'txt' });
      assert.equal(b.type, 'blob');
      assert.equal(Buffer.from(b.base64, 'base64').toString('hex'), '00ff');
      assert.deepEqual(n, { type: 'null' });
      assert.deepEqual(p, { type: 'integer', value: '-9223372036854775808' });
      assert.equal(Buffer.from(q.base64, 'base64').toString('hex'), '000102');
      assert.equal(typeof r.affected_row_count, 'number');
      assert.equal(r.affected_row_count, 0);
      assert.ok(r.last_insert_rowid === null || r.last_insert_rowid === undefined || r.last_insert_rowid === '0');
    });

    test('want_rows=false returns columns but no rows', async () => {
      const { json } = await pipeline({ requests: [{ type: 'execute', stmt: stmt('SELECT 1 AS a', [], { want_rows: false }) }, close] });
      const r = json.results[0].response.result;
      assert.deepEqual(r.cols.map((c) => c.name), ['a']);
      assert.deepEqual(r.rows, []);
    });

    test('a baton carries a stream across requests and is single-use', async () => {
      const first = await pipeline({ requests: [execute('CREATE TEMP TABLE tmp (a)'), execute('INSERT INTO tmp VALUES (1)')] });
      assert.equal(first.status, 200);
      assert.equal(typeof first.json.baton, 'string');
      const second = await pipeline({ baton: first.json.baton, requests: [execute('SELECT count(*) FROM tmp')] });
      assert.equal(second.status, 200);
      assert.deepEqual(second.json.results[0].response.result.rows, [[{ type: 'integer', value: '1' }]]);
      assert.notEqual(second.json.baton, first.json.baton);
      const replay = await pipeline({ baton: first.json.baton, requests: [execute('SELECT 1')] });
      assert.equal(replay.status, 400, `a used baton was accepted: ${replay.text}`);
      const last = await pipeline({ baton: second.json.baton, requests: [close] });
      assert.equal(last.status, 200, last.text);
    });

    test('a failing statement is an error result, not an HTTP error', async () => {
      const { status, json } = await pipeline({ requests: [execute('SELECT * FROM nowhere'), execute('SELECT 1'), close] });
      assert.equal(status, 200);
      assert.equal(json.results[0].type, 'error');
      assert.equal(typeof json.results[0].error.message, 'string');
      assert.match(json.results[0].error.message, /no such table: nowhere/);
      assert.equal(json.results[1].type, 'ok');
    });

    test('a v2 batch returns null-padded step_results and step_errors', async () => {
      const { status, json } = await pipeline({
        requests: [{
          type: 'batch',
          batch: {
            steps: [
              { stmt: stmt('SELECT 1') },
              { stmt: stmt('SELECT * FROM nowhere') },
              { condition: { type: 'ok', step: 1 }, stmt: stmt('SELECT 2') },
              { condition: { type: 'error', step: 1 }, stmt: stmt('SELECT 3') },
            ],
          },
        }, close],
      });
      assert.equal(status, 200);
      const { step_results: results, step_errors: errors } = json.results[0].response.result;
      assert.equal(results.length, 4);
      assert.equal(errors.length, 4);
      assert.deepEqual(results[0].rows, [[{ type: 'integer', value: '1' }]]);
      assert.equal(results[1], null);
      assert.match(errors[1].message, /no such table/);
      assert.equal(results[2], null);
      assert.equal(errors[2], null);
      assert.deepEqual(results[3].rows, [[{ type: 'integer', value: '3' }]]);
      assert.equal(errors[3], null);
    });

    test('v3 JSON: get_autocommit, is_autocommit and store_sql/close_sql on the wire', async () => {
      const first = await pipeline({
        requests: [
          { type: 'store_sql', sql_id: 7, sql: 'SELECT ?' },
          { type: 'get_autocommit' },
          execute('BEGIN'),
          { type: 'get_autocommit' },
          {
            type: 'batch',
            batch: {
              steps: [
                { condition: { type: 'is_autocommit' }, stmt: stmt("SELECT 'outside'") },
                { condition: { type: 'not', cond: { type: 'is_autocommit' } }, stmt: { sql_id: 7, args: [{ type: 'text', value: 'inside' }] } },
              ],
            },
          },
          { type: 'close_sql', sql_id: 7 },
          { type: 'store_sql', sql_id: 7, sql: "SELECT 'replaced'" },
          { type: 'execute', stmt: { sql_id: 7 } },
          execute('COMMIT'),
          close,
        ],
      }, 'v3');
      assert.equal(first.status, 200, first.text);
      const r = first.json.results;
      assert.deepEqual(r.slice(0, 2), [
        { type: 'ok', response: { type: 'store_sql' } },
        { type: 'ok', response: { type: 'get_autocommit', is_autocommit: true } },
      ]);
      assert.deepEqual(r[3], { type: 'ok', response: { type: 'get_autocommit', is_autocommit: false } });
      const batch = r[4].response.result;
      assert.equal(batch.step_results[0], null);
      assert.deepEqual(batch.step_results[1].rows, [[{ type: 'text', value: 'inside' }]]);
      assert.deepEqual(r[5], { type: 'ok', response: { type: 'close_sql' } });
      // After close_sql the id is free again.
      assert.deepEqual(r[6], { type: 'ok', response: { type: 'store_sql' } });
      assert.deepEqual(r[7].response.result.rows, [[{ type: 'text', value: 'replaced' }]]);
      assert.equal(r[8].type, 'ok');
      assert.equal(first.json.baton, null);
    });

    test('an unknown sql_id is rejected', async () => {
      const { status, json, text } = await pipeline({ requests: [{ type: 'execute', stmt: { sql_id: 12345 } }, close] }, 'v3');
      // sqld answers a protocol error (400); an error result in a 200 answer is acceptable too.
      if (status === 200) assert.equal(json.results[0].type, 'error', text);
      else assert.equal(status, 400, text);
    });

    test('v3 JSON cursor streams newline-delimited entries', async () => {
      const resp = await post('/v3/cursor', {
        baton: null,
        batch: {
          steps: [
            { stmt: stmt('SELECT 1 AS a UNION ALL SELECT 2') },
            { stmt: stmt('SELECT * FROM nowhere') },
            { condition: { type: 'ok', step: 1 }, stmt: stmt('SELECT 3') },
          ],
        },
      });
      assert.equal(resp.status, 200);
      const lines = (await resp.text()).split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
      const [head, ...entries] = lines;
      assert.ok('baton' in head, `first line must be the cursor response body: ${JSON.stringify(head)}`);
      const types = entries.filter((e) => e.type !== 'replication_index').map((e) => e.type);
      assert.deepEqual(types, ['step_begin', 'row', 'row', 'step_end', 'step_error']);
      assert.equal(entries[0].step, 0);
      assert.deepEqual(entries[0].cols.map((c) => c.name), ['a']);
      assert.deepEqual(entries[1].row, [{ type: 'integer', value: '1' }]);
      assert.deepEqual(entries[2].row, [{ type: 'integer', value: '2' }]);
      const stepError = entries.find((e) => e.type === 'step_error');
      assert.equal(stepError.step, 1);
      assert.match(stepError.error.message, /no such table/);
      if (head.baton) await pipeline({ baton: head.baton, requests: [close] }, 'v3');
    });
  });

  describe('legacy POST /', () => {
    test('runs statements with positional and named params and returns plain JSON rows', async () => {
      const resp = await post('/', {
        statements: [
          'CREATE TABLE legacy (a, b)',
          { q: 'INSERT INTO legacy VALUES (?, ?)', params: [1, 'one'] },
          { q: 'INSERT INTO legacy VALUES (:a, :b)', params: { ':a': 2.5, ':b': null } },
          { q: 'INSERT INTO legacy VALUES (?, ?)', params: [false, { base64: 'AAEC' }] },
          { q: 'SELECT a, b FROM legacy WHERE a = :a', params: { ':a': 1 } },
          'SELECT a, b FROM legacy ORDER BY rowid',
        ],
      });
      assert.equal(resp.status, 200);
      assert.match(resp.headers.get('content-type') ?? '', /^application\/json/);
      const body = await resp.json();
      assert.ok(Array.isArray(body), `expected an array, got ${JSON.stringify(body)}`);
      assert.equal(body.length, 6);
      // Statements without result columns may answer null or empty results.
      for (const [i, entry] of body.slice(0, 4).entries()) {
        if (entry === null) continue;
        assert.deepEqual(entry.results?.columns, [], `statement ${i}: ${JSON.stringify(entry)}`);
        assert.deepEqual(entry.results?.rows, [], `statement ${i}: ${JSON.stringify(entry)}`);
      }
      assert.deepEqual(body[4].results.columns, ['a', 'b']);
      assert.deepEqual(body[4].results.rows, [[1, 'one']]);
      const rows = body[5].results.rows;
      assert.equal(rows.length, 3);
      assert.deepEqual(rows[0], [1, 'one']);
      assert.deepEqual(rows[1], [2.5, null]);
      assert.equal(rows[2][0], 0); // false binds as 0
      assert.equal(Buffer.from(rows[2][1].base64, 'base64').toString('hex'), '000102');
    });

    test('float params and results keep full double precision', async () => {
      const floats = [0.1, 11.528280205449093, 6.5039496866316245e280, -2.5e-300];
      const resp = await post('/', { statements: [{ q: `SELECT ${floats.map(() => '?').join(', ')}`, params: floats }] });
      assert.equal(resp.status, 200);
      const [entry] = await resp.json();
      assert.deepEqual(entry.results.rows, [floats]);
    });

    test('a failing statement rolls back the whole request', async () => {
      await post('/', { statements: ['CREATE TABLE legacy_rb (a PRIMARY KEY)'] }).then((r) => r.arrayBuffer());
      const resp = await post('/', {
        statements: [
          "INSERT INTO legacy_rb VALUES ('kept?')",
          "INSERT INTO legacy_rb VALUES ('dup')",
          "INSERT INTO legacy_rb VALUES ('dup')",
        ],
      });
      const text = await resp.text();
      if (resp.status === 200) {
        const body = JSON.parse(text);
        assert.ok(body.some((entry) => entry && entry.error), `no error reported: ${text}`);
      } else {
        assert.ok(resp.status >= 400 && resp.status < 500, `status ${resp.status}`);
        assert.match(text, /UNIQUE constraint failed/);
      }
      const [r] = await run('SELECT count(*) FROM legacy_rb');
      assert.deepEqual(r.rows, [[{ type: 'integer', value: '0' }]]);
    });
  });

  /** Asserts a 4xx answer with a JSON {message} or a non-empty text body. */
  async function expectClientError(resp, status) {
    const text = await resp.text();
    assert.equal(resp.status, status, `expected ${status}, got ${resp.status}: ${text}`);
    const type = resp.headers.get('content-type') ?? '';
    if (type.startsWith('application/json')) {
      const json = JSON.parse(text);
      assert.ok(typeof json.message === 'string' || typeof json.error === 'string', text);
    } else {
      assert.ok(text.trim().length > 0, 'an error answer should say what went wrong');
    }
    return text;
  }

  describe('bad requests', () => {
    test('malformed JSON is a 400', async () => {
      await expectClientError(await post('/v2/pipeline', '{"requests": [ {"type": '), 400);
      await expectClientError(await post('/v3/pipeline', 'not json at all'), 400);
      await expectClientError(await post('/', '{"statements": ['), 400);
    });

    test('an empty body is a 400', async () => {
      await expectClientError(await post('/v2/pipeline', ''), 400);
    });

    test('JSON of the wrong shape is a 400', async () => {
      await expectClientError(await post('/v2/pipeline', { requests: 'nope' }), 400);
      await expectClientError(await post('/v2/pipeline', [1, 2, 3]), 400);
      await expectClientError(await post('/', { statements: 42 }), 400);
    });

    test('an unknown request type is a 400', async () => {
      await expectClientError(await post('/v2/pipeline', { requests: [{ type: 'frobnicate' }] }), 400);
    });

    test('an unknown value type is a 400', async () => {
      await expectClientError(await post('/v2/pipeline', {
        requests: [{ type: 'execute', stmt: stmt('SELECT ?', [{ type: 'complex', value: '1+2i' }]) }],
      }), 400);
    });

    test('an integer value that is not a 64-bit integer is a 400', async () => {
      await expectClientError(await post('/v2/pipeline', {
        requests: [{ type: 'execute', stmt: stmt('SELECT ?', [{ type: 'integer', value: '99999999999999999999' }]) }],
      }), 400);
    });

    test('a v3-only request on /v2 is a 400', async () => {
      await expectClientError(await post('/v2/pipeline', { requests: [{ type: 'get_autocommit' }] }), 400);
    });

    test('garbage protobuf is a 400', async () => {
      const garbage = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12]);
      const resp = await post('/v3-protobuf/pipeline', garbage, { 'content-type': 'application/x-protobuf' });
      assert.equal(resp.status, 400);
      await resp.arrayBuffer();
    });

    test('a body of millions of two-byte protobuf steps is a 400, decoded into no more than the limit', async () => {
      // 15 MiB of empty BatchSteps (0x0a 0x00): ~7.9 million steps, ~1 GB had they all been decoded.
      const varint = (n) => { const out = []; while (n > 127) { out.push((n & 127) | 128); n = Math.floor(n / 128); } out.push(n); return Buffer.from(out); };
      const wrap = (field, inner) => Buffer.concat([Buffer.from([(field << 3) | 2]), varint(inner.length), inner]);
      const steps = Buffer.alloc(15 << 20);
      for (let i = 0; i < steps.length; i += 2) steps[i] = 0x0a;
      const body = wrap(2, wrap(3, wrap(1, steps)));
      const resp = await post('/v3-protobuf/pipeline', body, { 'content-type': 'application/x-protobuf' });
      assert.equal(resp.status, 400);
      assert.match(await resp.text(), /more than \d+ requests, steps, arguments and conditions in one message/);
      const json = await post('/v2/pipeline', { requests: [{ type: 'batch', batch: { steps: Array.from({ length: 800000 }, () => ({})) } }] });
      assert.equal(json.status, 400);
      assert.match(await json.text(), /more than \d+ requests, steps, arguments and conditions in one message/);
      const ok = await post('/v2/pipeline', { requests: [execute('SELECT 1')] });
      assert.equal(ok.status, 200);
      await ok.arrayBuffer();
    });

    test('a forged or malformed baton is a 400', async () => {
      await expectClientError(await post('/v2/pipeline', { baton: 'garbage', requests: [execute('SELECT 1')] }), 400);
      const forged = Buffer.alloc(48, 7).toString('base64').replace(/=+$/, '');
      await expectClientError(await post('/v3/pipeline', { baton: forged, requests: [execute('SELECT 1')] }), 400);
    });

    test('a body over the limit is a 413', async () => {
      const size = 20 << 20; // 20 MiB, over the 16 MiB default
      const chunk = Buffer.alloc(1 << 20, 0x20);
      const { hostname, port } = new URL(server.url);
      const status = await new Promise((resolve, reject) => {
        const req = http.request({
          host: hostname,
          port,
          method: 'POST',
          path: '/v2/pipeline',
          headers: { 'content-type': 'application/json', 'content-length': size },
        }, (resp) => {
          resp.resume();
          resolve(resp.statusCode);
        });
        // The server may answer and close before the whole body is sent; the answer is what counts.
        req.on('error', (err) => reject(new Error(`no HTTP answer to a 20 MiB body: ${err.message}`)));
        let sent = 0;
        const pump = () => {
          while (sent < size) {
            sent += chunk.length;
            if (!req.write(chunk)) return req.once('drain', pump);
          }
          req.end();
        };
        pump();
      });
      assert.equal(status, 413);
    });

    test('an unknown route is a 404', async () => {
      for (const [method, path] of [['GET', '/nope'], ['POST', '/v9/pipeline'], ['GET', '/v2/pipeline/extra']]) {
        const resp = await fetch(server.url + path, { method, body: method === 'POST' ? '{}' : undefined });
        assert.equal(resp.status, 404, `${method} ${path}`);
        await resp.arrayBuffer();
      }
    });

    test('a wrong method on a known route is a 4xx', async () => {
      const resp = await fetch(`${server.url}/v2/pipeline`);
      assert.ok([404, 405].includes(resp.status), `GET /v2/pipeline answered ${resp.status}`);
      await resp.arrayBuffer();
    });

    test('a raw HTTP request line that is garbage gets a 400 or a closed connection', async () => {
      const answer = await new Promise((resolve, reject) => {
        const sock = net.connect(server.port, server.host, () => sock.end('THIS IS NOT HTTP\r\n\r\n'));
        let data = '';
        sock.setEncoding('utf8');
        sock.on('data', (d) => { data += d; });
        sock.on('end', () => resolve(data));
        sock.on('error', (err) => (err.code === 'ECONNRESET' ? resolve(data) : reject(err)));
        sock.setTimeout(5000, () => { sock.destroy(); reject(new Error('the server neither answered nor closed')); });
      });
      if (answer !== '') assert.match(answer, /^HTTP\/1\.[01] 400/);
    });
  });

  /**
   * POSTs a v2 pipeline to `target` (a started server) over node:http with the given agent
   * (false = a new connection); resolves to { status, json, text }.
   */
  function postVia(target, agent, body, path = '/v2/pipeline') {
    const data = body === undefined ? '' : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: target.host,
        port: target.port,
        method: body === undefined ? 'GET' : 'POST',
        path,
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      }, (resp) => {
        let text = '';
        resp.setEncoding('utf8');
        resp.on('data', (chunk) => { text += chunk; });
        resp.on('end', () => {
          let json;
          try { json = JSON.parse(text); } catch { json = undefined; }
          resolve({ status: resp.statusCode, json, text });
        });
      });
      req.on('error', reject);
      req.end(data);
    });
  }

  describe('abandoned streams', () => {
    // Streams idle for 1 s expire; SQLite's busy timeout (5 s) is longer, so a writer that waits
    // behind an abandoned transaction must get the lock once the stream expires. Each test has a
    // fresh server, as a client meeting it for the first time would.
    const quickServer = () => startServer({ args: ['--stream-idle-timeout', '1'] });

    /**
     * Opens a write transaction through `abandonAgent` and never comes back, then writes through
     * `writeAgent` at once, while the lock is still held. Returns the abandoned baton.
     */
    async function abandonThenWrite(target, abandonAgent, writeAgent) {
      const setup = await postVia(target, writeAgent, { requests: [execute('CREATE TABLE expiry (a)'), close] });
      assert.equal(setup.status, 200, setup.text);
      const abandoned = await postVia(target, abandonAgent, {
        requests: [execute('BEGIN IMMEDIATE'), execute("INSERT INTO expiry VALUES ('abandoned')")],
      });
      assert.equal(abandoned.status, 200, abandoned.text);
      assert.ok(abandoned.json.results.every((r) => r.type === 'ok'), abandoned.text);
      assert.equal(typeof abandoned.json.baton, 'string');

      const write = await postVia(target, writeAgent, { requests: [execute("INSERT INTO expiry VALUES ('later')"), close] });
      assert.equal(write.status, 200, write.text);
      assert.equal(write.json.results[0].type, 'ok',
                   `the write behind the abandoned transaction failed: ${JSON.stringify(write.json.results[0])}`);

      const rows = await postVia(target, writeAgent, { requests: [execute('SELECT a FROM expiry ORDER BY rowid'), close] });
      assert.deepEqual(rows.json.results[0].response.result.rows, [[{ type: 'text', value: 'later' }]],
                       'the abandoned transaction was not rolled back');
      return abandoned.json.baton;
    }

    test('a writer on another connection gets the lock once the stream expires', async () => {
      const quick = await quickServer();
      try {
        const baton = await abandonThenWrite(quick, false, false); // a new connection per request
        const reuse = await postVia(quick, false, { baton, requests: [execute('COMMIT')] });
        assert.equal(reuse.status, 400, `an expired baton was accepted: ${reuse.text}`);
        assert.match(reuse.text, /STREAM_EXPIRED|expired/i);
      } finally {
        await quick.stop();
      }
    });

    test('a writer on the same keep-alive connection gets the lock once the stream expires', async () => {
      // One client with one socket for everything, as fetch() does for sequential requests.
      const quick = await quickServer();
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        await abandonThenWrite(quick, agent, agent);
      } finally {
        agent.destroy();
        await quick.stop();
      }
    });
  });

  describe('waiting for the write lock', () => {
    // Four I/O threads, so the requests below land on every one of them.
    const busy = useServer({ args: ['--threads', '4'] });

    test('a request waiting for the write lock does not hold up other clients', async () => {
      const setup = await postVia(busy, false, { requests: [execute('CREATE TABLE lockwait (a)'), close] });
      assert.equal(setup.status, 200, setup.text);
      const holder = await postVia(busy, false, {
        requests: [execute('BEGIN IMMEDIATE'), execute("INSERT INTO lockwait VALUES ('holder')")],
      });
      assert.equal(holder.status, 200, holder.text);

      // This write waits for the lock (busy timeout 5 s) while the holder keeps it.
      let waiterSettled = false;
      const waiter = postVia(busy, false, { requests: [execute("INSERT INTO lockwait VALUES ('waiter')"), close] })
        .finally(() => { waiterSettled = true; });
      await sleep(100);

      // Other clients on new connections must be served meanwhile: health probes and reads.
      const others = await Promise.all([
        ...Array.from({ length: 8 }, () => postVia(busy, false, undefined, '/health')),
        ...Array.from({ length: 8 }, () => postVia(busy, false, { requests: [execute('SELECT count(*) FROM lockwait'), close] })),
      ]);
      assert.ok(others.every((r) => r.status === 200), others.map((r) => r.status).join(' '));
      assert.equal(waiterSettled, false,
                   'some requests were only answered after the waiting write gave up: a request that waits ' +
                   'for the write lock holds up other clients');

      // When the holder lets go, the waiting write gets the lock.
      const release = await postVia(busy, false, { baton: holder.json.baton, requests: [execute('ROLLBACK'), close] });
      assert.equal(release.status, 200, release.text);
      const waited = await waiter;
      assert.equal(waited.status, 200, waited.text);
      assert.equal(waited.json.results[0].type, 'ok', `the waiting write failed: ${JSON.stringify(waited.json.results[0])}`);
    });
  });
});
