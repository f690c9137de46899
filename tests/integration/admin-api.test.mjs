// The admin API (docs/admin-api.md) on its own listener: every endpoint, the admin key, hostile
// names and bodies, and the end-to-end path a multi-tenant application takes: create a namespace
// through the admin API, then use it through the main port with @libsql/client and an
// `x-namespace` header.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, test } from 'node:test';

import { createClient } from '@libsql/client';

import { startServer, useServer } from './server.mjs';
import { HranaConn } from './ws-helpers.mjs';

const KEY = 'admin-key-for-tests';

/**
 * Calls the admin API; returns { status, json (if the body parses), text, headers }. Uses
 * node:http so the path goes out verbatim (fetch would resolve `..` and `%2e%2e` first).
 */
function call(baseUrl, method, urlPath, { body, key = KEY, headers = {} } = {}) {
  const h = { ...headers };
  if (key !== null) h.authorization = `Bearer ${key}`;
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  if (payload !== undefined) {
    h['content-type'] = 'application/json';
    h['content-length'] = Buffer.byteLength(payload);
  }
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: urlPath, method, headers: h }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, json, text, headers: new Headers(res.headers) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Asserts an error answer: the status and {"error": string}. */
function assertError(r, status, pattern) {
  assert.equal(r.status, status, r.text);
  assert.equal(typeof r.json?.error, 'string', `expected {"error": ...}, got ${r.text}`);
  if (pattern) assert.match(r.json.error, pattern);
}

/** Runs SQL through the main port's legacy API in namespace `ns`; returns { status, json }. */
async function sql(server, ns, ...statements) {
  const headers = { 'content-type': 'application/json' };
  if (ns !== null) headers['x-namespace'] = ns;
  const resp = await fetch(server.url + '/', {
    method: 'POST',
    headers,
    body: JSON.stringify({ statements }),
  });
  const text = await resp.text();
  return { status: resp.status, json: JSON.parse(text), text };
}

/** A @libsql/client over HTTP that sends `headers` with every request; `statuses` logs answers. */
function tenantClient(server, headers) {
  const statuses = [];
  const client = createClient({
    url: server.url,
    // hrana-client calls fetch(request) with one Request object.
    fetch: async (request) => {
      for (const [name, value] of Object.entries(headers)) request.headers.set(name, value);
      const resp = await fetch(request);
      statuses.push(resp.status);
      return resp;
    },
  });
  return { client, statuses };
}

describe('admin API', () => {
  const server = useServer({ args: ['--admin-listen', '127.0.0.1:0', '--admin-auth-key', KEY] });
  const admin = (method, urlPath, options) => call(server.adminUrl, method, urlPath, options);

  afterEach(async () => {
    assert.ok(server.isRunning(), `the server died\n${server.logs()}`);
  });

  test('prints its own address, apart from the main port', () => {
    assert.match(server.adminUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(server.adminUrl, server.url);
  });

  test('GET /health answers 200', async () => {
    const r = await admin('GET', '/health');
    assert.equal(r.status, 200);
  });

  describe('the admin key', () => {
    test('a request without Authorization is 401', async () => {
      assertError(await admin('GET', '/v1/namespaces', { key: null }), 401);
      assertError(await admin('POST', '/v1/namespaces/nokey/create', { key: null, body: {} }), 401);
      assert.equal((await admin('GET', '/v1/namespaces')).json.namespaces.some((n) => n.name === 'nokey'), false);
    });

    test('a wrong key is 401, whatever its length', async () => {
      for (const key of ['wrong', KEY + 'x', KEY.slice(0, -1), '']) {
        assertError(await admin('GET', '/v1/namespaces', { key }), 401);
      }
    });

    test('Basic and Bearer, in any case, carry the key literally (not base64)', async () => {
      for (const scheme of ['Basic', 'basic', 'BEARER', 'bearer']) {
        const r = await admin('GET', '/v1/namespaces', { key: null, headers: { authorization: `${scheme} ${KEY}` } });
        assert.equal(r.status, 200, `${scheme}: ${r.text}`);
      }
      const encoded = Buffer.from(KEY).toString('base64');
      assertError(await admin('GET', '/v1/namespaces', { key: null, headers: { authorization: `Basic ${encoded}` } }), 401);
      assertError(await admin('GET', '/v1/namespaces', { key: null, headers: { authorization: `Token ${KEY}` } }), 401);
      assertError(await admin('GET', '/v1/namespaces', { key: null, headers: { authorization: KEY } }), 401);
    });

    test('the main port does not serve the admin API', async () => {
      const r = await call(server.url, 'POST', '/v1/namespaces/viamain/create', { body: {} });
      assert.equal(r.status, 404, r.text);
      assert.equal((await admin('GET', '/v1/namespaces')).json.namespaces.some((n) => n.name === 'viamain'), false);
    });
  });

  describe('endpoints', () => {
    test('POST /v1/namespaces/:ns/create makes an empty namespace, then 409', async () => {
      const r = await admin('POST', '/v1/namespaces/created/create', { body: {} });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, {});
      const again = await admin('POST', '/v1/namespaces/created/create', { body: {} });
      assertError(again, 409, /already exists/);
      const q = await sql(server, 'created', 'SELECT count(*) AS n FROM sqlite_schema');
      assert.equal(q.status, 200, q.text);
      assert.deepEqual(q.json[0].results.rows, [[0]]);
    });

    test('create accepts an empty body and ignores sqld fields it does not support', async () => {
      const empty = await admin('POST', '/v1/namespaces/emptybody/create');
      assert.equal(empty.status, 200, empty.text);
      const r = await admin('POST', '/v1/namespaces/sqldfields/create', {
        body: { heartbeat_url: 'http://example.invalid/', bottomless_db_id: 'x', shared_schema: false, max_row_size: 1000 },
      });
      assert.equal(r.status, 200, r.text);
    });

    test('create with settings: max_db_size as a size string or bytes, and the rest', async () => {
      const cases = [['10MB', 10_000_000], ['512KiB', 524_288], ['1GB', 1_000_000_000], ['2MiB', 2_097_152], [123456, 123456]];
      for (const [i, [size, bytes]] of cases.entries()) {
        const name = `sized${i}`;
        const r = await admin('POST', `/v1/namespaces/${name}/create`, { body: { max_db_size: size } });
        assert.equal(r.status, 200, `${size}: ${r.text}`);
        const c = await admin('GET', `/v1/namespaces/${name}/config`);
        assert.equal(c.json.max_db_size, bytes, `${size}`);
      }
      const r = await admin('POST', '/v1/namespaces/configured/create', {
        body: { txn_timeout_s: 2.5, allow_attach: true, block_writes: true, block_reason: 'migrating' },
      });
      assert.equal(r.status, 200, r.text);
      const c = await admin('GET', '/v1/namespaces/configured/config');
      assert.equal(c.status, 200, c.text);
      assert.deepEqual(c.json, {
        block_reads: false, block_writes: true, block_reason: 'migrating', max_db_size: null,
        txn_timeout_s: 2.5, jwt_key: null, allow_attach: true,
      });
    });

    test('create from a dump in the body, and from a file: dump_url', async () => {
      const r = await admin('POST', '/v1/namespaces/fromdump/create', {
        body: { dump: "CREATE TABLE t(x TEXT); INSERT INTO t VALUES ('a'), ('b');" },
      });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual((await sql(server, 'fromdump', 'SELECT x FROM t ORDER BY x')).json[0].results.rows, [['a'], ['b']]);

      const dir = mkdtempSync(path.join(tmpdir(), 'quire-dump-'));
      try {
        const file = path.join(dir, 'my dump.sql');
        writeFileSync(file, 'CREATE TABLE u(y INTEGER);\nINSERT INTO u VALUES (1);\nINSERT INTO u VALUES (2);\n');
        const url = new URL(`file://${file}`).href;  // percent-encodes the space
        const f = await admin('POST', '/v1/namespaces/fromfile/create', { body: { dump_url: url } });
        assert.equal(f.status, 200, f.text);
        assert.deepEqual((await sql(server, 'fromfile', 'SELECT sum(y) FROM u')).json[0].results.rows, [[3]]);

        assertError(await admin('POST', '/v1/namespaces/nofile/create', { body: { dump_url: `file://${dir}/missing.sql` } }), 400);
        assertError(await admin('POST', '/v1/namespaces/relfile/create', { body: { dump_url: 'file:relative.sql' } }), 400);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      assertError(await admin('POST', '/v1/namespaces/fromhttp/create', { body: { dump_url: 'https://example.invalid/d.sql' } }), 400, /not supported/);
      for (const name of ['nofile', 'relfile', 'fromhttp']) {
        assert.equal((await sql(server, name, 'SELECT 1')).status, 404);
      }
    });

    test('a dump that fails leaves no namespace behind (400)', async () => {
      const r = await admin('POST', '/v1/namespaces/baddump/create', { body: { dump: 'CREATE TABLE t(x); NOT SQL;' } });
      assertError(r, 400);
      assert.equal((await sql(server, 'baddump', 'SELECT 1')).status, 404);
      const again = await admin('POST', '/v1/namespaces/baddump/create', { body: {} });
      assert.equal(again.status, 200, again.text);
    });

    test('create from the output of sqlite3 .dump (it has its own BEGIN ... COMMIT)', async () => {
      const dump = 'PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(x);\nINSERT INTO t VALUES(1);\nCOMMIT;\n';
      const r = await admin('POST', '/v1/namespaces/sqlite3dump/create', { body: { dump } });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual((await sql(server, 'sqlite3dump', 'SELECT x FROM t')).json[0].results.rows, [[1]]);
    });

    test('GET /v1/namespaces lists every namespace with size, last access and open state', async () => {
      await admin('POST', '/v1/namespaces/listed/create', { body: {} });
      const r = await admin('GET', '/v1/namespaces');
      assert.equal(r.status, 200, r.text);
      const names = r.json.namespaces.map((n) => n.name);
      assert.ok(names.includes('default') && names.includes('listed'), r.text);
      assert.deepEqual(names, [...names].sort());
      const listed = r.json.namespaces.find((n) => n.name === 'listed');
      assert.equal(listed.last_access, null);
      assert.equal(listed.open, false);
      assert.equal(typeof listed.size_bytes, 'number');

      await sql(server, 'listed', 'SELECT 1');
      const after = (await admin('GET', '/v1/namespaces')).json.namespaces.find((n) => n.name === 'listed');
      assert.equal(after.open, true);
      assert.match(after.last_access, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      assert.ok(Math.abs(Date.parse(after.last_access) - Date.now()) < 60_000, after.last_access);
    });

    test('GET and POST /v1/namespaces/:ns/config: POST changes the given fields only', async () => {
      await admin('POST', '/v1/namespaces/cfg/create', { body: { max_db_size: '10MB' } });
      const before = await admin('GET', '/v1/namespaces/cfg/config');
      assert.equal(before.status, 200, before.text);
      assert.equal(before.json.block_writes, false);

      const set = await admin('POST', '/v1/namespaces/cfg/config', { body: { block_reads: true, block_reason: 'maintenance' } });
      assert.equal(set.status, 200, set.text);
      const c = (await admin('GET', '/v1/namespaces/cfg/config')).json;
      assert.equal(c.block_reads, true);
      assert.equal(c.block_reason, 'maintenance');
      assert.equal(c.max_db_size, 10_000_000, 'kept');
      assert.equal(c.block_writes, false, 'kept');

      const cleared = await admin('POST', '/v1/namespaces/cfg/config', { body: { block_reads: false, block_reason: null, max_db_size: '1GiB' } });
      assert.equal(cleared.status, 200, cleared.text);
      const c2 = (await admin('GET', '/v1/namespaces/cfg/config')).json;
      assert.equal(c2.block_reads, false);
      assert.equal(c2.block_reason, null);
      assert.equal(c2.max_db_size, 1024 ** 3);

      assertError(await admin('POST', '/v1/namespaces/cfg/config', { body: { block_reads: 'yes' } }), 400);
      assertError(await admin('POST', '/v1/namespaces/cfg/config', { body: { max_db_size: 'lots' } }), 400);
      assertError(await admin('POST', '/v1/namespaces/cfg/config', { body: { txn_timeout_s: -1 } }), 400);
      assertError(await admin('POST', '/v1/namespaces/cfg/config', { body: { jwt_key: 'not a key' } }), 400);
      assert.deepEqual((await admin('GET', '/v1/namespaces/cfg/config')).json, c2, 'a rejected update changes nothing');
      assertError(await admin('GET', '/v1/namespaces/nosuchns/config'), 404);
      assertError(await admin('POST', '/v1/namespaces/nosuchns/config', { body: { block_reads: true } }), 404);
    });

    test('GET /v1/namespaces/:ns/stats counts queries and rows, and storage', async () => {
      await admin('POST', '/v1/namespaces/counted/create', { body: {} });
      const q = await sql(server, 'counted', 'CREATE TABLE t(x)', 'INSERT INTO t VALUES (1), (2), (3)', 'SELECT * FROM t');
      assert.equal(q.status, 200, q.text);
      const r = await admin('GET', '/v1/namespaces/counted/stats');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.id, 'counted');
      for (const f of ['rows_read_count', 'rows_written_count', 'query_count', 'storage_bytes_used']) {
        assert.equal(typeof r.json[f], 'number', `${f}: ${r.text}`);
      }
      assert.ok(r.json.query_count >= 3, r.text);
      assert.ok(r.json.rows_written_count >= 3, r.text);
      assert.ok(r.json.rows_read_count >= 3, r.text);
      assert.ok(r.json.storage_bytes_used > 0, r.text);
      assertError(await admin('GET', '/v1/namespaces/nosuchns/stats'), 404);
    });

    test('POST /v1/namespaces/:ns/checkpoint folds the WAL into the database', async () => {
      await admin('POST', '/v1/namespaces/ckpt/create', { body: {} });
      await sql(server, 'ckpt', 'CREATE TABLE t(x)', 'INSERT INTO t VALUES (randomblob(100000))');
      const r = await admin('POST', '/v1/namespaces/ckpt/checkpoint');
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, {});
      assert.deepEqual((await sql(server, 'ckpt', 'SELECT length(x) FROM t')).json[0].results.rows, [[100000]]);
      assertError(await admin('POST', '/v1/namespaces/nosuchns/checkpoint'), 404);
    });

    test('POST /v1/namespaces/:ns/fork/:to copies data and config; 404 and 409', async () => {
      await admin('POST', '/v1/namespaces/parent/create', { body: { dump: 'CREATE TABLE t(x); INSERT INTO t VALUES (42);', block_reason: 'kept' } });
      const r = await admin('POST', '/v1/namespaces/parent/fork/child');
      assert.equal(r.status, 200, r.text);
      assert.deepEqual((await sql(server, 'child', 'SELECT x FROM t')).json[0].results.rows, [[42]]);
      assert.equal((await admin('GET', '/v1/namespaces/child/config')).json.block_reason, 'kept');
      // The copy is independent.
      await sql(server, 'child', 'INSERT INTO t VALUES (43)');
      assert.deepEqual((await sql(server, 'parent', 'SELECT count(*) FROM t')).json[0].results.rows, [[1]]);

      assertError(await admin('POST', '/v1/namespaces/parent/fork/child'), 409, /already exists/);
      assertError(await admin('POST', '/v1/namespaces/parent/fork/default'), 409);
      assertError(await admin('POST', '/v1/namespaces/parent/fork/parent'), 409);
      assertError(await admin('POST', '/v1/namespaces/nosuchns/fork/orphan'), 404);
      // A point-in-time fork needs the continuous backup (--backup-url; backup-server-suite.mjs).
      assertError(await admin('POST', '/v1/namespaces/parent/fork/at', { body: { timestamp: '2024-01-01T00:00:00Z' } }), 400, /Backups are off.*--backup-url/);
      // Also from a namespace that does not exist (its settings would come from the backup).
      assertError(await admin('POST', '/v1/namespaces/gone/fork/at', { body: { timestamp: '2024-01-01T00:00:00Z' } }), 400, /Backups are off.*--backup-url/);
      assertError(await admin('POST', '/v1/namespaces/gone/fork/at', { body: { log_id: '0'.repeat(32) } }), 400, /Backups are off.*--backup-url/);
      assertError(await admin('POST', '/v1/namespaces/gone/restore', { body: {} }), 400, /Backups are off.*--backup-url/);
      assert.equal((await sql(server, 'parent', 'SELECT 1')).status, 200);
      assert.equal((await sql(server, 'orphan', 'SELECT 1')).status, 404);
    });

    test('DELETE /v1/namespaces/:ns removes it; 404 after; default cannot be deleted', async () => {
      await admin('POST', '/v1/namespaces/doomed/create', { body: {} });
      await sql(server, 'doomed', 'CREATE TABLE t(x)');
      const r = await admin('DELETE', '/v1/namespaces/doomed', { body: { keep_backup: false } });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, {});
      assert.equal((await sql(server, 'doomed', 'SELECT 1')).status, 404);
      assertError(await admin('DELETE', '/v1/namespaces/doomed'), 404);
      assertError(await admin('DELETE', '/v1/namespaces/default'), 400, /default/);
      assert.equal((await sql(server, null, 'SELECT 1')).status, 200);
      // The name can be used again, from scratch.
      assert.equal((await admin('POST', '/v1/namespaces/doomed/create', { body: {} })).status, 200);
      assert.deepEqual((await sql(server, 'doomed', 'SELECT count(*) FROM sqlite_schema')).json[0].results.rows, [[0]]);
    });
  });

  describe('bad input', () => {
    test('names that could escape the data directory or are not names are 400', async () => {
      const names = ['..%2Fx', '%2e%2e', '..', 'a.b', '.hidden', 'a%2Fb', 'a%5Cb', '%00', 'caf%C3%A9', 'a%20b', 'x'.repeat(65)];
      for (const name of names) {
        for (const [method, suffix] of [['POST', '/create'], ['POST', '/config'], ['GET', '/config'], ['GET', '/stats'], ['POST', '/checkpoint'], ['DELETE', '']]) {
          const r = await admin(method, `/v1/namespaces/${name}${suffix}`, { body: method === 'POST' ? {} : undefined });
          assertError(r, 400, undefined);
        }
        assertError(await admin('POST', `/v1/namespaces/default/fork/${name}`), 400);
        assertError(await admin('POST', `/v1/namespaces/${name}/fork/okname`), 400);
      }
      assert.equal((await admin('POST', `/v1/namespaces/${'x'.repeat(64)}/create`, { body: {} })).status, 200);
      const listed = (await admin('GET', '/v1/namespaces')).json.namespaces.map((n) => n.name);
      assert.ok(listed.every((n) => /^[A-Za-z0-9_-]{1,64}$/.test(n)), listed.join(','));
    });

    test('an empty name is 400', async () => {
      assertError(await admin('POST', '/v1/namespaces//create', { body: {} }), 400);
      assertError(await admin('DELETE', '/v1/namespaces/'), 400);
    });

    test('a body that is not a JSON object is 400', async () => {
      for (const body of ['{', 'nope', '[]', '"x"', '42', 'null']) {
        assertError(await admin('POST', '/v1/namespaces/badbody/create', { body }), 400);
      }
      assert.equal((await sql(server, 'badbody', 'SELECT 1')).status, 404);
      assertError(await admin('POST', '/v1/namespaces/default/config', { body: '{"block_reads":' }), 400);
      assertError(await admin('DELETE', '/v1/namespaces/nosuchns', { body: '[1]' }), 400);
      assertError(await admin('DELETE', '/v1/namespaces/default', { body: { keep_backup: 'yes' } }), 400);
      assertError(await admin('POST', '/v1/namespaces/badtype/create', { body: { dump: 42 } }), 400);
      assertError(await admin('POST', '/v1/namespaces/badtype/create', { body: { dump: 'SELECT 1', dump_url: 'file:///x' } }), 400);
      assertError(await admin('POST', '/v1/namespaces/badtype/create', { body: { max_db_size: -5 } }), 400);
    });

    test('a body over --max-body-size is 413 {"error"}', async () => {
      // The default limit is 16 MiB.
      const r = await admin('POST', '/v1/namespaces/huge/create', { body: JSON.stringify({ dump: 'x'.repeat(17 << 20) }) });
      assertError(r, 413);
    });

    test('unknown routes are 404, wrong methods 405 with Allow', async () => {
      assertError(await admin('GET', '/'), 404);
      assertError(await admin('GET', '/v1/namespaces/default/nothing'), 404);
      assertError(await admin('POST', '/v2/pipeline', { body: {} }), 404);
      const r = await admin('GET', '/v1/namespaces/default/create');
      assertError(r, 405);
      assert.equal(r.headers.get('allow'), 'POST');
      assertError(await admin('POST', '/v1/namespaces'), 405);
      assertError(await admin('PUT', '/v1/namespaces/default/config', { body: {} }), 405);
      assertError(await admin('GET', '/v1/namespaces/default/fork/x'), 405);
      assertError(await admin('POST', '/v1/namespaces/default'), 405);
    });

    test('a WebSocket upgrade on the admin port is refused', async () => {
      const wsUrl = server.adminUrl.replace(/^http/, 'ws');
      for (const protocols of [['hrana3'], null]) {
        await assert.rejects(HranaConn.connect(wsUrl, protocols), (err) => {
          assert.ok([400, 404].includes(err.statusCode), String(err));
          return true;
        });
      }
      // Still serving.
      assert.equal((await admin('GET', '/health')).status, 200);
    });
  });

  describe('end to end through the main port with @libsql/client', () => {
    test('a namespace created by the admin API is a separate database', async () => {
      assert.equal((await admin('POST', '/v1/namespaces/acme/create', { body: {} })).status, 200);
      const acme = tenantClient(server, { 'x-namespace': 'acme' });
      const plain = createClient({ url: server.url });
      const bin = tenantClient(server, { 'x-namespace-bin': Buffer.from('acme').toString('base64').replace(/=+$/, '') });
      try {
        await acme.client.execute('CREATE TABLE tenant_data(v TEXT)');
        await acme.client.execute({ sql: 'INSERT INTO tenant_data VALUES (?)', args: ['secret of acme'] });
        const rs = await acme.client.execute('SELECT v FROM tenant_data');
        assert.deepEqual(rs.rows.map((r) => r.v), ['secret of acme']);

        // Not visible in default.
        await assert.rejects(plain.execute('SELECT v FROM tenant_data'), /no such table/);
        const tables = await plain.execute("SELECT name FROM sqlite_schema WHERE name = 'tenant_data'");
        assert.equal(tables.rows.length, 0);

        // x-namespace-bin (base64 of the name) reaches the same database.
        const viaBin = await bin.client.execute('SELECT v FROM tenant_data');
        assert.deepEqual(viaBin.rows.map((r) => r.v), ['secret of acme']);

        // A batch (transaction) stays in the namespace too.
        await acme.client.batch(['INSERT INTO tenant_data VALUES (\'two\')', 'INSERT INTO tenant_data VALUES (\'three\')'], 'write');
        assert.equal((await acme.client.execute('SELECT count(*) AS n FROM tenant_data')).rows[0].n, 3);

        const stats = await admin('GET', '/v1/namespaces/acme/stats');
        assert.ok(stats.json.query_count >= 5, stats.text);
      } finally {
        acme.client.close();
        plain.close();
        bin.client.close();
      }
    });

    test('an unknown namespace is an error (HTTP 404 from the server)', async () => {
      const ghost = tenantClient(server, { 'x-namespace': 'ghost' });
      try {
        await assert.rejects(ghost.client.execute('SELECT 1'), (err) => {
          assert.match(String(err.message), /ghost|namespace/i, String(err));
          return true;
        });
        assert.ok(ghost.statuses.includes(404), `statuses: ${ghost.statuses}`);
      } finally {
        ghost.client.close();
      }
    });

    test('block_writes makes the namespace read-only; block_reads refuses it (403 BLOCKED)', async () => {
      assert.equal((await admin('POST', '/v1/namespaces/frozen/create', { body: {} })).status, 200);
      let r = await sql(server, 'frozen', 'CREATE TABLE t(x)', 'INSERT INTO t VALUES (1)');
      assert.equal(r.status, 200, r.text);
      assert.equal((await admin('POST', '/v1/namespaces/frozen/config', { body: { block_writes: true } })).status, 200);
      r = await sql(server, 'frozen', 'SELECT count(*) FROM t');
      assert.deepEqual(r.json[0].results.rows, [[1]], r.text);
      r = await sql(server, 'frozen', 'INSERT INTO t VALUES (2)');
      assert.ok(r.json.some((x) => x && x.error), r.text);
      assert.match(r.text, /not allowed[:(] ?the namespace's writes are blocked/);
      // The reason, when there is one, is told to the writer too.
      assert.equal((await admin('POST', '/v1/namespaces/frozen/config', { body: { block_reason: 'read-only until Monday' } })).status, 200);
      r = await sql(server, 'frozen', 'INSERT INTO t VALUES (2)');
      assert.match(r.text, /writes are blocked: read-only until Monday/);
      assert.equal((await admin('POST', '/v1/namespaces/frozen/config', { body: { block_reads: true, block_reason: 'unpaid' } })).status, 200);
      r = await sql(server, 'frozen', 'SELECT count(*) FROM t');
      assert.equal(r.status, 403, r.text);
      assert.match(r.text, /unpaid/);
      assert.equal((await admin('POST', '/v1/namespaces/frozen/config', { body: { block_reads: false, block_writes: false } })).status, 200);
      r = await sql(server, 'frozen', 'INSERT INTO t VALUES (3)', 'SELECT count(*) FROM t');
      assert.deepEqual(r.json[1].results.rows, [[2]], r.text);
    });

    test('ATTACH of another namespace: by name, read-only, only when that namespace allows it', async () => {
      const pipeline = async (ns, ...stmts) => {
        const resp = await fetch(`${server.url}/v2/pipeline`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-namespace': ns },
          body: JSON.stringify({ requests: [...stmts.map((sql) => ({ type: 'execute', stmt: { sql } })), { type: 'close' }] }),
        });
        assert.equal(resp.status, 200);
        return (await resp.json()).results;
      };
      for (const [name, allow] of [['shared', true], ['secret', false], ['reader', false]]) {
        assert.equal((await admin('POST', `/v1/namespaces/${name}/create`, { body: { allow_attach: allow } })).status, 200);
      }
      await pipeline('shared', 'CREATE TABLE prices(item TEXT, cents INTEGER)', "INSERT INTO prices VALUES ('tea', 250)");
      await pipeline('secret', 'CREATE TABLE keys(k TEXT)', "INSERT INTO keys VALUES ('hunter2')");

      let r = await pipeline('reader', "ATTACH 'shared' AS s", 'SELECT item, cents FROM s.prices', "INSERT INTO s.prices VALUES ('x', 1)", 'DETACH s');
      assert.equal(r[0].type, 'ok', JSON.stringify(r[0]));
      assert.deepEqual(r[1].response.result.rows.map((row) => row.map((v) => v.value)), [['tea', '250']]);
      assert.equal(r[2].type, 'error', 'the attached namespace is read-only');
      assert.match(r[2].error.message, /readonly|read-only/i);
      assert.equal(r[3].type, 'ok', JSON.stringify(r[3]));
      // Every other form is refused: a namespace that does not allow it, a missing one, paths,
      // URIs, expressions.
      for (const stmt of ["ATTACH 'secret' AS x", 'ATTACH DATABASE "nosuch" AS x', "ATTACH '../secret/data' AS x",
        "ATTACH '/etc/passwd' AS x", "ATTACH 'file:/tmp/quire-attach-probe?mode=rwc' AS x", "ATTACH 'sha' || 'red' AS x",
        "ATTACH ':memory:' AS x"]) {
        r = await pipeline('reader', stmt);
        assert.equal(r[0].type, 'error', stmt);
        assert.match(r[0].error.message, /ATTACH|not authorized/i, stmt);
      }
      r = await pipeline('shared', 'SELECT count(*) FROM prices');
      assert.deepEqual(r[0].response.result.rows[0].map((v) => v.value), ['1']);
    });

    test('after DELETE, the namespace\'s queries fail', async () => {
      assert.equal((await admin('POST', '/v1/namespaces/shortlived/create', { body: {} })).status, 200);
      const t = tenantClient(server, { 'x-namespace': 'shortlived' });
      try {
        await t.client.execute('CREATE TABLE t(x)');
        await t.client.execute('INSERT INTO t VALUES (1)');
        assert.equal((await admin('DELETE', '/v1/namespaces/shortlived')).status, 200);
        await assert.rejects(t.client.execute('SELECT * FROM t'));
        assert.equal(t.statuses.at(-1), 404, `statuses: ${t.statuses}`);
      } finally {
        t.client.close();
      }
      // Default is untouched.
      assert.equal((await sql(server, null, 'SELECT 1')).status, 200);
    });
  });
});

describe('admin listener without a key', () => {
  test('on a loopback address it serves without Authorization', async () => {
    const server = await startServer({ args: ['--admin-listen-addr', '127.0.0.1:0'] });
    try {
      const r = await call(server.adminUrl, 'POST', '/v1/namespaces/open/create', { key: null, body: {} });
      assert.equal(r.status, 200, r.text);
      assert.equal((await call(server.adminUrl, 'GET', '/v1/namespaces', { key: null })).status, 200);
    } finally {
      await server.stop();
    }
  });

  test('on a non-loopback address it refuses to start', async () => {
    await assert.rejects(startServer({ args: ['--admin-listen', '0.0.0.0:0'] }), (err) => {
      assert.match(err.message, /exited before listening/);
      assert.match(err.message, /--admin-auth-key/);
      return true;
    });
  });

  test('--insecure allows it; a key allows it too', async () => {
    for (const extra of [['--insecure'], ['--admin-auth-key', KEY]]) {
      const server = await startServer({ args: ['--admin-listen', '0.0.0.0:0', ...extra] });
      try {
        const port = new URL(server.adminUrl).port;
        const r = await call(`http://127.0.0.1:${port}`, 'GET', '/v1/namespaces', { key: extra[0] === '--insecure' ? null : KEY });
        assert.equal(r.status, 200, r.text);
      } finally {
        await server.stop();
      }
    }
  });

  test('without --admin-listen there is no admin listener', async () => {
    const server = await startServer();
    try {
      assert.equal(server.adminUrl, undefined);
      assert.doesNotMatch(server.logs(), /admin listening/);
    } finally {
      await server.stop();
    }
  });
});

// Routing by Host under --namespace-domain, with the real @libsql/client: its requests go to
// <tenant>.db.example.test, resolved to 127.0.0.1 by the fetch below (node:http with a lookup
// of our own), so the Host header is what a client behind DNS would send.
describe('routing by Host (--namespace-domain)', () => {
  const server = useServer({ args: ['--namespace-domain', 'db.example.test', '--admin-listen', '127.0.0.1:0', '--admin-auth-key', KEY] });
  const admin = (method, urlPath, options) => call(server.adminUrl, method, urlPath, options);
  const lookup = (_host, options, cb) => (options?.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4));

  /** fetch over node:http, resolving every name to 127.0.0.1 (the Host header stays the URL's). */
  async function localFetch(request) {
    const url = new URL(request.url);
    const body = Buffer.from(await request.arrayBuffer());
    const headers = Object.fromEntries(request.headers.entries());
    headers['content-length'] = String(body.length);
    return new Promise((resolve, reject) => {
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: request.method, headers, lookup }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers: res.headers })));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }
  const clientFor = (host) => createClient({ url: `http://${host}:${server.port}`, fetch: localFetch });

  test('each tenant host reaches its own database; an unknown tenant is a 404; other hosts use default', async () => {
    for (const ns of ['acme', 'globex']) {
      assert.equal((await admin('POST', `/v1/namespaces/${ns}/create`, { body: {} })).status, 200);
      const c = clientFor(`${ns}.db.example.test`);
      try {
        await c.execute('CREATE TABLE who (name TEXT)');
        await c.execute({ sql: 'INSERT INTO who VALUES (?)', args: [ns] });
      } finally {
        c.close();
      }
    }
    for (const ns of ['acme', 'globex']) {
      const c = clientFor(`${ns}.db.example.test`);
      try {
        assert.deepEqual((await c.execute('SELECT name FROM who')).rows.map((r) => r.name), [ns]);
      } finally {
        c.close();
      }
    }
    const ghost = clientFor('initech.db.example.test');
    try {
      await assert.rejects(ghost.execute('SELECT 1'), /does not exist|404|NAMESPACE/i);
    } finally {
      ghost.close();
    }
    // A host outside the domain is served by default, which has no table `who`.
    const plain = createClient({ url: server.url });
    try {
      await assert.rejects(plain.execute('SELECT name FROM who'), /no such table/);
    } finally {
      plain.close();
    }
    // The header still wins over the Host.
    const r = await sql(server, 'globex', 'SELECT name FROM who');
    assert.deepEqual(r.json[0].results.rows, [['globex']], r.text);
  });
});
