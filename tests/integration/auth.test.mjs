// Authentication and authorization with Ed25519 JWTs, through @libsql/client over HTTP and
// WebSocket, against a server started with --auth-jwt-key-file: tokens are minted here with
// Node's own crypto (an implementation independent of the server's). Every refused request must
// leave the data unchanged.

import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import { createClient } from '@libsql/client';
import WebSocket from 'ws';

import { sleep, useServer } from './server.mjs';
import { HranaConn, stmt, withTimeout } from './ws-helpers.mjs';

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const keyDir = mkdtempSync(path.join(tmpdir(), 'quire-auth-'));
const keyFile = path.join(keyDir, 'jwt_public.pem');
writeFileSync(keyFile, publicKey.export({ type: 'spki', format: 'pem' }));

const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** A JWT signed with `key` (Ed25519) unless `alg` says otherwise. */
function token(claims, { key = privateKey, alg = 'EdDSA' } = {}) {
  const head = b64({ alg, typ: 'JWT' });
  const body = b64(claims);
  const input = `${head}.${body}`;
  if (alg === 'none') return `${input}.`;
  if (alg === 'HS256') {
    // The classic confusion: an HMAC keyed with the public key's bytes.
    const secret = publicKey.export({ type: 'spki', format: 'der' });
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  }
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}

const transports = [
  ['http', (s) => s.url],
  ['ws', (s) => s.url.replace(/^http:/, 'ws:')],
];

describe('JWT authentication', () => {
  const server = useServer({ args: ['--auth-jwt-key-file', keyFile] });

  const rw = () => token({ a: 'rw', exp: now() + 600 });
  const count = async () => {
    const c = createClient({ url: server.url, authToken: rw() });
    try {
      return Number((await c.execute('SELECT count(*) AS n FROM t')).rows[0].n);
    } finally {
      c.close();
    }
  };

  test('setup with a read-write token', async () => {
    const c = createClient({ url: server.url, authToken: rw() });
    await c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    await c.execute("INSERT INTO t (v) VALUES ('first')");
    await c.execute('CREATE TABLE audit (n INTEGER)');
    await c.execute('CREATE TRIGGER t_audit AFTER INSERT ON t BEGIN INSERT INTO audit VALUES (1); END');
    c.close();
    assert.equal(await count(), 1);
  });

  for (const [name, urlOf] of transports) {
    test(`${name}: a read-only token reads but cannot change anything, by any statement`, async () => {
      const c = createClient({ url: urlOf(server), authToken: token({ a: 'ro', exp: now() + 600 }) });
      try {
        assert.equal(Number((await c.execute('SELECT count(*) AS n FROM t')).rows[0].n), 1);
        for (const sql of [
          "INSERT INTO t (v) VALUES ('ro')",
          'UPDATE t SET v = 1',
          'DELETE FROM t',
          'CREATE TABLE x (a)',
          'DROP TABLE t',
          'ALTER TABLE t ADD COLUMN w',
          'PRAGMA user_version = 7',
          "ATTACH DATABASE '/tmp/quire-evil.db' AS evil",
          "VACUUM INTO '/tmp/quire-evil-copy.db'",
          'BEGIN IMMEDIATE',
        ]) {
          await assert.rejects(c.execute(sql), (e) => /auth|forbidden|not authorized/i.test(`${e.code} ${e.message}`), sql);
        }
        await assert.rejects(c.execute("INSERT INTO t (v) VALUES ('why')"), /the token only allows reading/);
        await assert.rejects(c.batch(["INSERT INTO t (v) VALUES ('b')"], 'write'));
      } finally {
        c.close();
      }
      assert.equal(await count(), 1);
    });

    test(`${name}: missing, expired, tampered, unsigned, HS256 and foreign-key tokens are refused`, async () => {
      const bad = {
        missing: undefined,
        expired: token({ a: 'rw', exp: now() - 60 }),
        tampered: (() => {
          const [h, , s] = rw().split('.');
          return `${h}.${b64({ a: 'rw', exp: now() + 9999, id: 'default' })}.${s}`;
        })(),
        none: token({ a: 'rw' }, { alg: 'none' }),
        hs256: token({ a: 'rw' }, { alg: 'HS256' }),
        wrongKey: token({ a: 'rw' }, { key: other.privateKey }),
        garbage: 'not.a.jwt',
      };
      for (const [what, t] of Object.entries(bad)) {
        const c = createClient({ url: urlOf(server), authToken: t });
        try {
          await assert.rejects(c.execute("INSERT INTO t (v) VALUES ('intruder')"), undefined, what);
          await assert.rejects(c.execute('SELECT * FROM t'), undefined, what);
        } finally {
          c.close();
        }
      }
      assert.equal(await count(), 1);
    });

    test(`${name}: a token for another namespace is refused`, async () => {
      const c = createClient({ url: urlOf(server), authToken: token({ a: 'rw', id: 'someone-else', exp: now() + 600 }) });
      try {
        await assert.rejects(c.execute('SELECT * FROM t'));
        await assert.rejects(c.execute("INSERT INTO t (v) VALUES ('x')"));
      } finally {
        c.close();
      }
      const p = createClient({ url: urlOf(server), authToken: token({ p: { ro: { ns: ['default'] } }, exp: now() + 600 }) });
      try {
        assert.equal((await p.execute('SELECT count(*) AS n FROM t')).rows.length, 1);
        await assert.rejects(p.execute("INSERT INTO t (v) VALUES ('x')"));
      } finally {
        p.close();
      }
      assert.equal(await count(), 1);
    });

    test(`${name}: a valid read-write token writes`, async () => {
      const c = createClient({ url: urlOf(server), authToken: token({ a: 'rw', id: 'default', exp: now() + 600 }) });
      try {
        await c.execute("INSERT INTO t (v) VALUES ('ok')");
        await c.execute("DELETE FROM t WHERE v = 'ok'");
      } finally {
        c.close();
      }
      assert.equal(await count(), 1);
    });
  }

  test('HTTP status codes: 401 without or with a bad token, 403 for another namespace', async () => {
    const post = (auth) => fetch(`${server.url}/v2/pipeline`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
      body: JSON.stringify({ requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }, { type: 'close' }] }),
    });
    assert.equal((await post()).status, 401);
    assert.equal((await post(`Bearer ${token({ a: 'rw', exp: now() - 10 })}`)).status, 401);
    assert.equal((await post('Basic dXNlcjpwYXNz')).status, 401);
    assert.equal((await post(`Bearer ${token({ a: 'rw', id: 'elsewhere' })}`)).status, 403);
    assert.equal((await post(`bearer ${rw()}`)).status, 200);
  });
  test('a missing namespace is revealed only to a valid token, over HTTP and WebSocket', async () => {
    const post = (auth) => fetch(`${server.url}/v2/pipeline`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-namespace': 'nosuch', ...(auth ? { authorization: auth } : {}) },
      body: JSON.stringify({ requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }, { type: 'close' }] }),
    });
    assert.equal((await post()).status, 401);
    assert.equal((await post(`Bearer ${token({ a: 'rw', exp: now() - 10 })}`)).status, 401);
    assert.equal((await post(`Bearer ${token({ a: 'rw', id: 'elsewhere' })}`)).status, 403);
    assert.equal((await post(`Bearer ${rw()}`)).status, 404);

    // The upgrade itself says nothing; the hello answers as HTTP does.
    const hello = (ns, jwt) => new Promise((resolve, reject) => {
      const ws = new WebSocket(server.url.replace(/^http:/, 'ws:'), ['hrana2'], { headers: { 'x-namespace': ns } });
      ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', jwt })));
      ws.on('message', (m) => { resolve(JSON.parse(m.toString())); ws.close(); });
      ws.on('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.on('error', reject);
    });
    for (const ns of ['nosuch', 'default']) {
      const anonymous = await hello(ns, null);
      assert.equal(anonymous.type, 'hello_error', ns);
      assert.equal(anonymous.error.code, 'AUTH_HEADER_NOT_FOUND', ns);
      const forged = await hello(ns, token({ a: 'rw' }, { key: other.privateKey }));
      assert.equal(forged.type, 'hello_error', ns);
      assert.match(forged.error.code, /^AUTH_/, ns);
    }
    const valid = await hello('nosuch', rw());
    assert.equal(valid.type, 'hello_error');
    assert.equal(valid.error.code, 'NAMESPACE_DOESNT_EXIST');
    assert.equal((await hello('default', rw())).type, 'hello_ok');
  });

  test('ws: a hello with a new token applies to requests after it, not to those sent before it', async () => {
    const url = server.url.replace(/^http:/, 'ws:');
    const setup = createClient({ url: server.url, authToken: rw() });
    await setup.execute('CREATE TABLE rehello (v TEXT)');
    // Another connection holds the write lock, so the first insert below waits on the server
    // (its stream busy) while the hello that takes write access away arrives.
    const holder = await HranaConn.connect(url, ['hrana2']);
    const conn = await HranaConn.connect(url, ['hrana2']);
    try {
      await holder.hello(rw());
      await holder.ok({ type: 'open_stream', stream_id: 1 });
      await holder.ok({ type: 'execute', stream_id: 1, stmt: stmt('BEGIN IMMEDIATE') });
      await conn.hello(rw());
      await conn.ok({ type: 'open_stream', stream_id: 1 });
      const sent = conn.request({ type: 'execute', stream_id: 1, stmt: stmt("INSERT INTO rehello VALUES ('sent with rw')") });
      await sleep(100);
      // Queued behind the first on the same stream, also before the hello.
      const queued = conn.request({ type: 'execute', stream_id: 1, stmt: stmt("INSERT INTO rehello VALUES ('queued with rw')") });
      await sleep(50);
      await conn.hello(token({ a: 'ro', exp: now() + 600 }));
      const after = conn.request({ type: 'execute', stream_id: 1, stmt: stmt("INSERT INTO rehello VALUES ('sent with ro')") });
      await sleep(100);
      await holder.ok({ type: 'execute', stream_id: 1, stmt: stmt('ROLLBACK') });
      const first = await withTimeout(sent, 10_000, 'the insert sent before the hello');
      assert.equal(first.type, 'response_ok', JSON.stringify(first));
      const queuedReply = await withTimeout(queued, 10_000, 'the insert queued before the hello');
      assert.equal(queuedReply.type, 'response_ok', JSON.stringify(queuedReply));
      const second = await withTimeout(after, 10_000, 'the insert sent after the hello');
      assert.equal(second.type, 'response_error', JSON.stringify(second));
      assert.match(second.error.message, /the token only allows reading/);
      // Reads still work on the same stream, with the new token.
      const rows = await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('SELECT v FROM rehello ORDER BY rowid') });
      assert.deepEqual(rows.result.rows, [[{ type: 'text', value: 'sent with rw' }], [{ type: 'text', value: 'queued with rw' }]]);
    } finally {
      holder.close();
      conn.close();
      setup.close();
    }
  });
});

describe('without a key', () => {
  const server = useServer();
  test('every request has full access, even with a garbage token (as sqld)', async () => {
    const c = createClient({ url: server.url, authToken: 'garbage' });
    try {
      await c.execute('CREATE TABLE t (a)');
      await c.execute('INSERT INTO t VALUES (1)');
    } finally {
      c.close();
    }
  });
});

describe('a namespace with its own key (jwt_key)', () => {
  const ADMIN = 'admin-key-for-auth-tests';
  const server = useServer({ args: ['--auth-jwt-key-file', keyFile, '--admin-listen', '127.0.0.1:0', '--admin-auth-key', ADMIN] });
  const pipeline = (ns, jwt, sql) => fetch(`${server.url}/v2/pipeline`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-namespace': ns, authorization: `Bearer ${jwt}` },
    body: JSON.stringify({ requests: [{ type: 'execute', stmt: { sql } }, { type: 'close' }] }),
  });

  test('its key replaces the global one there, and only there', async () => {
    const created = await fetch(`${server.adminUrl}/v1/namespaces/own/create`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jwt_key: other.publicKey.export({ type: 'spki', format: 'pem' }) }),
    });
    assert.equal(created.status, 200, await created.text());
    const ownToken = token({ a: 'rw', exp: now() + 600 }, { key: other.privateKey });
    const globalToken = token({ a: 'rw', exp: now() + 600 });

    let r = await pipeline('own', ownToken, 'CREATE TABLE t (x)');
    assert.equal(r.status, 200, await r.text());
    r = await pipeline('own', ownToken, 'INSERT INTO t VALUES (1)');
    assert.equal(r.status, 200);
    // The global key no longer opens this namespace; the namespace's key opens nothing else.
    assert.equal((await pipeline('own', globalToken, 'SELECT * FROM t')).status, 401);
    assert.equal((await pipeline('default', ownToken, 'SELECT 1')).status, 401);
    assert.equal((await pipeline('default', globalToken, 'SELECT 1')).status, 200);
    // Over WebSocket: @libsql/client (no namespace header: `default`) is refused with the
    // namespace's token; a raw hello on `own` is accepted with it and refused with the global one.
    const url = server.url.replace(/^http:/, 'ws:');
    const c = createClient({ url, authToken: ownToken });
    try {
      await assert.rejects(c.execute('SELECT 1'));
    } finally {
      c.close();
    }
    const hello = (ns, jwt) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url, ['hrana2'], { headers: { 'x-namespace': ns } });
      ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', jwt })));
      ws.on('message', (m) => { resolve(JSON.parse(m.toString()).type); ws.close(); });
      ws.on('error', reject);
    });
    assert.equal(await hello('own', ownToken), 'hello_ok');
    assert.equal(await hello('own', globalToken), 'hello_error');
  });
});
