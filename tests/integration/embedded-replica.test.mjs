// Embedded replicas syncing from quire with the unmodified npm clients: `libsql` 0.5.29
// (`new Database(file, {syncUrl})`) and `@libsql/client` 0.18 (`createClient({url: 'file:…',
// syncUrl})`). They pull the replication log over libSQL's gRPC-Web protocol and forward writes
// to the server (docs/replication-protocol.md). Covered: bootstrap and local reads, forwarded
// writes (exec, prepared run with positional and named parameters), read-your-writes, write
// transactions (commit and rollback), SQL errors, writes made elsewhere arriving on sync, a
// replica bootstrapping over several batches and one transaction larger than a batch; tokens
// (read-write, read-only, missing, forged); a namespace chosen by x-namespace-bin, and the raw
// protocol's error statuses (NO_HELLO, NAMESPACE_DOESNT_EXIST, /info).
//
// The `libsql` package's calls block the event loop; the server is another process, so that is
// harmless here.

import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { createClient } from '@libsql/client';
import Database from 'libsql';

import { useServer } from './server.mjs';

const scratch = mkdtempSync(path.join(tmpdir(), 'quire-replica-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let counter = 0;
/** A path for a new replica database file (none of its files exist yet). */
const replicaPath = (name) => path.join(scratch, `${name}-${++counter}.db`);

/**
 * The first row of a local read. Not `stmt.get()`: libsql 0.5.29 leaves a statement read with
 * get() un-reset, so its read transaction stays open and later reads on that connection keep
 * seeing the old snapshot, frames synced since included (a client quirk, seen here; `all()`
 * runs the statement to its end).
 */
const one = (db, sql) => db.prepare(sql).all()[0];

/** Runs SQL on the primary through Hrana (@libsql/client over HTTP). */
async function primary(server, statements, authToken) {
  const c = createClient({ url: server.url, authToken });
  try {
    const out = [];
    for (const s of statements) out.push(await c.execute(s));
    return out;
  } finally {
    c.close();
  }
}

// ------------------------------------------------------------------ raw gRPC-Web helpers

function varint(n) {
  let v = BigInt(n);
  const out = [];
  while (v >= 0x80n) {
    out.push(Number((v & 0x7fn) | 0x80n));
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

/** A gRPC-Web request body holding one message. */
const grpcBody = (message) => {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
};

/** Splits a gRPC-Web response body into { messages, status, message }. */
function parseGrpc(buf) {
  const messages = [];
  let status = null;
  let message = '';
  for (let i = 0; i < buf.length;) {
    const flag = buf[i];
    const len = buf.readUInt32BE(i + 1);
    const payload = buf.subarray(i + 5, i + 5 + len);
    i += 5 + len;
    if (flag & 0x80) {
      for (const line of payload.toString('latin1').split('\r\n')) {
        const [k, ...v] = line.split(':');
        if (k === 'grpc-status') status = Number(v.join(':'));
        if (k === 'grpc-message') message = decodeURIComponent(v.join(':'));
      }
    } else {
      messages.push(payload);
    }
  }
  return { messages, status, message };
}

/** Top-level protobuf fields: Map field -> [values] (varints as BigInt, others as Buffers). */
function pbFields(buf) {
  const out = new Map();
  let i = 0;
  const readVarint = () => {
    let v = 0n;
    let s = 0n;
    for (;;) {
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << s;
      s += 7n;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < buf.length) {
    const key = Number(readVarint());
    const field = key >> 3;
    let value;
    if ((key & 7) === 0) value = readVarint();
    else if ((key & 7) === 2) {
      const len = Number(readVarint());
      value = buf.subarray(i, i + len);
      i += len;
    } else throw new Error(`unexpected wire type ${key & 7}`);
    if (!out.has(field)) out.set(field, []);
    out.get(field).push(value);
  }
  return out;
}

async function rpc(server, method, message, headers = {}) {
  const res = await fetch(`${server.url}/${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/grpc-web', ...headers },
    body: grpcBody(message),
  });
  assert.equal(res.status, 200, `${method}: HTTP ${res.status}`);
  return parseGrpc(Buffer.from(await res.arrayBuffer()));
}

const nsHeader = (name) => ({ 'x-namespace-bin': Buffer.from(name).toString('base64').replace(/=+$/, '') });

async function hello(server, headers = {}) {
  const r = await rpc(server, 'wal_log.ReplicationLog/Hello', Buffer.from([0x08, 0x01]), headers);
  if (r.status !== 0) return r;
  const f = pbFields(r.messages[0]);
  return {
    ...r,
    logId: f.get(3)?.[0].toString(),
    sessionToken: f.get(4)?.[0].toString(),
    index: f.get(5)?.[0],
  };
}

/** BatchLogEntries(next_offset): { status, message, frames: [{frameNo, pageNo, sizeAfter}] }. */
async function batch(server, nextOffset, headers = {}) {
  const offset = nextOffset === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x08]), varint(nextOffset)]);
  const r = await rpc(server, 'wal_log.ReplicationLog/BatchLogEntries', offset, headers);
  if (r.status !== 0) return r;
  const frames = (pbFields(r.messages[0] ?? Buffer.alloc(0)).get(1) ?? []).map((frame) => {
    const data = pbFields(frame).get(1)[0];
    assert.equal(data.length, 4120);
    return {
      frameNo: data.readBigUInt64LE(0),
      pageNo: data.readUInt32LE(16),
      sizeAfter: data.readUInt32LE(20),
    };
  });
  return { ...r, frames };
}

// ------------------------------------------------------------------ libsql (Database)

describe('libsql Database with syncUrl', () => {
  const server = useServer();

  test('setup on the primary', async () => {
    await primary(server, [
      'CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)',
      "INSERT INTO t (v) VALUES ('a'), ('b')",
    ]);
  });

  test('a fresh replica bootstraps with sync() and reads locally', () => {
    const db = new Database(replicaPath('boot'), { syncUrl: server.url });
    try {
      const r = db.sync();
      assert.ok(r.frames_synced > 0, JSON.stringify(r));
      assert.deepEqual(db.prepare('SELECT v FROM t ORDER BY id').all().map((x) => x.v), ['a', 'b']);
      assert.equal(one(db, 'PRAGMA integrity_check').integrity_check, 'ok');
    } finally {
      db.close();
    }
  });

  test('writes are forwarded and read back locally at once (read-your-writes)', async () => {
    const db = new Database(replicaPath('writes'), { syncUrl: server.url });
    try {
      db.sync();
      db.exec("INSERT INTO t (v) VALUES ('c')");
      assert.ok(one(db, "SELECT 1 FROM t WHERE v = 'c'"), 'exec write visible locally');
      const pos = db.prepare('INSERT INTO t (v) VALUES (?)').run('d');
      assert.equal(pos.changes, 1);
      const named = db.prepare('INSERT INTO t (v) VALUES (:v)').run({ v: 'e' });
      assert.equal(named.changes, 1);
      assert.equal(Number(named.lastInsertRowid), Number(pos.lastInsertRowid) + 1);
      assert.deepEqual(db.prepare('SELECT v FROM t ORDER BY id').all().map((x) => x.v),
        ['a', 'b', 'c', 'd', 'e']);
    } finally {
      db.close();
    }
    const [rows] = await primary(server, ['SELECT v FROM t ORDER BY id']);
    assert.deepEqual(rows.rows.map((r) => r.v), ['a', 'b', 'c', 'd', 'e']);
  });

  test('a write transaction commits as one; a rolled-back one leaves nothing', async () => {
    const db = new Database(replicaPath('txn'), { syncUrl: server.url });
    try {
      db.sync();
      db.exec('BEGIN IMMEDIATE');
      db.exec("INSERT INTO t (v) VALUES ('f')");
      db.prepare('INSERT INTO t (v) VALUES (?)').run('g');
      db.exec('COMMIT');
      assert.equal(one(db, "SELECT count(*) AS n FROM t WHERE v IN ('f', 'g')").n, 2);

      db.exec('BEGIN IMMEDIATE');
      db.exec("INSERT INTO t (v) VALUES ('never')");
      db.exec('ROLLBACK');
      db.sync();
      assert.equal(one(db, "SELECT count(*) AS n FROM t WHERE v = 'never'").n, 0);
    } finally {
      db.close();
    }
    const [rows] = await primary(server, ["SELECT count(*) AS n FROM t WHERE v IN ('f', 'g', 'never')"]);
    assert.equal(Number(rows.rows[0].n), 2);
  });

  test('a failing forwarded statement throws and changes nothing', () => {
    const db = new Database(replicaPath('error'), { syncUrl: server.url });
    try {
      db.sync();
      assert.throws(() => db.exec("INSERT INTO t (v) VALUES ('a')"), /UNIQUE|constraint/i);
      assert.throws(() => db.exec('INSERT INTO nosuch VALUES (1)'), /no such table/i);
      assert.equal(one(db, "SELECT count(*) AS n FROM t WHERE v = 'a'").n, 1);
    } finally {
      db.close();
    }
  });

  test('writes made through Hrana arrive with the next sync()', async () => {
    const db = new Database(replicaPath('pull'), { syncUrl: server.url });
    try {
      db.sync();
      const before = one(db, 'SELECT count(*) AS n FROM t').n;
      await primary(server, ["INSERT INTO t (v) VALUES ('h')", 'CREATE TABLE u (x)', 'INSERT INTO u VALUES (42)']);
      assert.equal(one(db, 'SELECT count(*) AS n FROM t').n, before, 'not before sync');
      db.sync();
      assert.equal(one(db, 'SELECT count(*) AS n FROM t').n, before + 1);
      assert.equal(one(db, 'SELECT x FROM u').x, 42);
      const again = db.sync();
      assert.equal(again.frames_synced, 0, 'a caught-up replica gets nothing more');
    } finally {
      db.close();
    }
  });

  test('a replica bootstraps across many batches and a transaction larger than one batch', async () => {
    // ~6 MiB in many small transactions (several batches), then one ~5 MiB transaction (a batch
    // of its own, larger than the server's batch target).
    await primary(server, ['CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)']);
    const c = createClient({ url: server.url });
    try {
      for (let i = 0; i < 24; i++) await c.execute({ sql: 'INSERT INTO big (b) VALUES (randomblob(262144))' });
      await c.batch(Array.from({ length: 20 }, () => 'INSERT INTO big (b) VALUES (randomblob(262144))'), 'write');
    } finally {
      c.close();
    }
    const [want] = await primary(server, ['SELECT count(*) AS n, sum(length(b)) AS s FROM big']);
    const db = new Database(replicaPath('big'), { syncUrl: server.url });
    try {
      db.sync();
      const got = one(db, 'SELECT count(*) AS n, sum(length(b)) AS s FROM big');
      assert.equal(got.n, Number(want.rows[0].n));
      assert.equal(got.s, Number(want.rows[0].s));
      assert.equal(one(db, 'PRAGMA integrity_check').integrity_check, 'ok');
    } finally {
      db.close();
    }
  });
});

// ------------------------------------------------------------------ @libsql/client

describe('@libsql/client with a file: url and syncUrl', () => {
  const server = useServer();

  test('sync, local reads, execute, batch and transaction forwarded', async () => {
    await primary(server, ['CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)', "INSERT INTO items (name) VALUES ('one')"]);
    const client = createClient({ url: `file:${replicaPath('client')}`, syncUrl: server.url });
    try {
      await client.sync();
      assert.deepEqual((await client.execute('SELECT name FROM items')).rows.map((r) => r.name), ['one']);

      const ins = await client.execute({ sql: 'INSERT INTO items (name) VALUES (?)', args: ['two'] });
      assert.equal(ins.rowsAffected, 1);
      assert.equal(Number(ins.lastInsertRowid), 2);
      const named = await client.execute({ sql: 'INSERT INTO items (name) VALUES (:n)', args: { n: 'three' } });
      assert.equal(named.rowsAffected, 1);
      assert.deepEqual((await client.execute('SELECT name FROM items ORDER BY id')).rows.map((r) => r.name),
        ['one', 'two', 'three']);

      await client.batch([
        "INSERT INTO items (name) VALUES ('four')",
        { sql: 'INSERT INTO items (name) VALUES (?)', args: ['five'] },
      ], 'write');
      assert.equal(Number((await client.execute('SELECT count(*) AS n FROM items')).rows[0].n), 5);

      const tx = await client.transaction('write');
      await tx.execute("INSERT INTO items (name) VALUES ('six')");
      await tx.execute("UPDATE items SET name = 'ONE' WHERE id = 1");
      await tx.commit();
      assert.equal((await client.execute('SELECT name FROM items WHERE id = 1')).rows[0].name, 'ONE');

      const rolled = await client.transaction('write');
      await rolled.execute("INSERT INTO items (name) VALUES ('rolled back')");
      await rolled.rollback();
      await client.sync();
      assert.equal(Number((await client.execute('SELECT count(*) AS n FROM items')).rows[0].n), 6);
    } finally {
      client.close();
    }
    const [rows] = await primary(server, ['SELECT name FROM items ORDER BY id']);
    assert.deepEqual(rows.rows.map((r) => r.name), ['ONE', 'two', 'three', 'four', 'five', 'six']);
  });
});

// ------------------------------------------------------------------ idle transactions

describe('a forwarded transaction left idle', () => {
  const server = useServer({ args: ['--stream-idle-timeout', '1'] });

  test('is rolled back; the client learns it at its next statement, then works again', async () => {
    await primary(server, ['CREATE TABLE t (v TEXT)']);
    const db = new Database(replicaPath('idle'), { syncUrl: server.url });
    try {
      db.sync();
      db.exec('BEGIN IMMEDIATE');
      db.exec("INSERT INTO t VALUES ('lost')");
      await new Promise((resolve) => setTimeout(resolve, 2500));
      assert.throws(() => db.exec('COMMIT'), /TRANSACTION_TIMEOUT|timed out/i);
      db.exec("INSERT INTO t VALUES ('after')");
      assert.deepEqual(db.prepare('SELECT v FROM t').all().map((r) => r.v), ['after']);
    } finally {
      db.close();
    }
    // The primary's write lock was given back: a Hrana write goes through at once.
    await primary(server, ["INSERT INTO t VALUES ('hrana')"]);
    const [rows] = await primary(server, ['SELECT v FROM t ORDER BY rowid']);
    assert.deepEqual(rows.rows.map((r) => r.v), ['after', 'hrana']);
  });
});

// ------------------------------------------------------------------ tokens

describe('embedded replicas with JWT authentication', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  const keyFile = path.join(scratch, 'jwt_public.pem');
  writeFileSync(keyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const token = (claims, key = privateKey) => {
    const input = `${b64({ alg: 'EdDSA', typ: 'JWT' })}.${b64(claims)}`;
    return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
  };
  const exp = () => Math.floor(Date.now() / 1000) + 600;
  const server = useServer({ args: ['--auth-jwt-key-file', keyFile] });

  test('a read-write token syncs and writes', async () => {
    const rw = token({ a: 'rw', exp: exp() });
    await primary(server, ['CREATE TABLE t (v TEXT)', "INSERT INTO t VALUES ('x')"], rw);
    const db = new Database(replicaPath('rw'), { syncUrl: server.url, authToken: rw });
    try {
      db.sync();
      db.exec("INSERT INTO t VALUES ('y')");
      assert.equal(one(db, 'SELECT count(*) AS n FROM t').n, 2);
    } finally {
      db.close();
    }
  });

  test('a read-only token syncs, and its writes fail with SQLITE_AUTH', async () => {
    const db = new Database(replicaPath('ro'), { syncUrl: server.url, authToken: token({ a: 'ro', exp: exp() }) });
    try {
      db.sync();
      assert.equal(one(db, 'SELECT count(*) AS n FROM t').n, 2);
      assert.throws(() => db.exec("INSERT INTO t VALUES ('ro')"), /SQLITE_AUTH|not allowed|Forbidden|authoriz/i);
    } finally {
      db.close();
    }
    const [rows] = await primary(server, ['SELECT count(*) AS n FROM t'], token({ a: 'rw', exp: exp() }));
    assert.equal(Number(rows.rows[0].n), 2);
  });

  test('a missing, forged or expired token is refused at once', () => {
    for (const authToken of [undefined, token({ a: 'rw', exp: exp() }, other.privateKey),
      token({ a: 'rw', exp: Math.floor(Date.now() / 1000) - 60 })]) {
      assert.throws(() => {
        const db = new Database(replicaPath('refused'), { syncUrl: server.url, authToken });
        try {
          db.sync();
        } finally {
          db.close();
        }
      }, /Unauthorized/);
    }
  });

  test('the RPCs refuse a bad token with UNAUTHENTICATED', async () => {
    const r = await hello(server, { 'x-authorization': 'Bearer nonsense' });
    assert.equal(r.status, 16, JSON.stringify(r));
    const none = await hello(server, { 'x-authorization': 'Bearer' });
    assert.equal(none.status, 16);
    const ok = await hello(server, { 'x-authorization': `Bearer ${token({ a: 'ro', exp: exp() })}` });
    assert.equal(ok.status, 0);
  });
});

// ------------------------------------------------------------------ namespaces and raw protocol

describe('namespaces and the raw protocol', () => {
  const server = useServer({ args: ['--admin-listen', '127.0.0.1:0'] });

  test('setup: a second namespace with data of its own', async () => {
    const r = await fetch(`${server.adminUrl}/v1/namespaces/tenant1/create`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
    });
    assert.equal(r.status, 200, await r.text());
    const p = await fetch(`${server.url}/v2/pipeline`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-namespace': 'tenant1' },
      body: JSON.stringify({ requests: [
        { type: 'execute', stmt: { sql: 'CREATE TABLE only_in_tenant1 (x)' } },
        { type: 'close' },
      ] }),
    });
    assert.equal(p.status, 200, await p.text());
    await primary(server, ['CREATE TABLE only_in_default (x)']);
  });

  test('GET /info answers 404, so the clients stay on this protocol', async () => {
    const r = await fetch(`${server.url}/info`);
    assert.equal(r.status, 404);
  });

  test('x-namespace-bin naming a namespace selects it; the value derived from the host does not', async () => {
    const dflt = await hello(server);
    const derived = await hello(server, nsHeader('127')); // what the client sends for 127.0.0.1
    const tenant = await hello(server, nsHeader('tenant1'));
    for (const r of [dflt, derived, tenant]) assert.equal(r.status, 0, r.message);
    assert.match(tenant.logId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(derived.logId, dflt.logId);
    assert.notEqual(tenant.logId, dflt.logId);
    assert.equal(tenant.sessionToken, dflt.sessionToken);

    const frames = await batch(server, 0, { ...nsHeader('tenant1'), 'x-session-token': tenant.sessionToken });
    assert.equal(frames.status, 0, frames.message);
    assert.ok(frames.frames.length > 0);
    assert.equal(frames.frames[0].frameNo, 0n);
    assert.equal(BigInt(frames.frames.at(-1).frameNo), tenant.index);
    assert.ok(frames.frames.at(-1).sizeAfter > 0, 'the batch ends on a commit frame');
    const caughtUp = await batch(server, Number(tenant.index) + 1, { ...nsHeader('tenant1'), 'x-session-token': tenant.sessionToken });
    assert.equal(caughtUp.status, 0);
    assert.equal(caughtUp.frames.length, 0);
  });

  test('a namespace that does not exist: FAILED_PRECONDITION NAMESPACE_DOESNT_EXIST', async () => {
    const r = await hello(server, nsHeader('nosuch'));
    assert.equal(r.status, 9);
    assert.equal(r.message, 'NAMESPACE_DOESNT_EXIST');
  });

  test('a batch without the session token of this server start: NO_HELLO', async () => {
    const none = await batch(server, 0);
    assert.equal(none.status, 9);
    assert.equal(none.message, 'NO_HELLO');
    const stale = await batch(server, 0, { 'x-session-token': '00000000-0000-4000-8000-000000000000' });
    assert.equal(stale.message, 'NO_HELLO');
  });

  test('an offset inside a transaction gets NEED_SNAPSHOT; Snapshot streams every page once', async () => {
    await primary(server, ['CREATE TABLE blobs (b BLOB)', 'INSERT INTO blobs VALUES (randomblob(20000))']);
    const h = await hello(server);
    const all = await batch(server, 0, { 'x-session-token': h.sessionToken });
    const last = all.frames.at(-1);
    assert.equal(last.frameNo, h.index);
    // The last transaction spans several frames (the blob's overflow pages): ask from its middle.
    let first = all.frames.length - 1;
    while (first > 0 && all.frames[first - 1].sizeAfter === 0) first--;
    assert.ok(all.frames.length - first > 2, 'a multi-page transaction');
    const inside = Number(all.frames[first + 1].frameNo);
    const refused = await batch(server, inside, { 'x-session-token': h.sessionToken });
    assert.equal(refused.status, 9);
    assert.equal(refused.message, 'NEED_SNAPSHOT');

    const offset = Buffer.concat([Buffer.from([0x08]), varint(inside)]);
    const snap = await rpc(server, 'wal_log.ReplicationLog/Snapshot', offset, { 'x-session-token': h.sessionToken });
    assert.equal(snap.status, 0, snap.message);
    const frames = snap.messages.map((m) => pbFields(m).get(1)[0]);
    const pages = frames.map((d) => d.readUInt32LE(16));
    assert.equal(frames.length, last.sizeAfter, 'every page of the database');
    assert.deepEqual(pages, Array.from({ length: frames.length }, (_, i) => frames.length - i));
    for (const d of frames) assert.equal(d.readBigUInt64LE(0), h.index);
    assert.equal(frames.at(-1).readUInt32LE(20), frames.length);
    assert.ok(frames.slice(0, -1).every((d) => d.readUInt32LE(20) === 0));
  });

  test('a replica of the derived namespace sees the default database', () => {
    const db = new Database(replicaPath('ns'), { syncUrl: server.url });
    try {
      db.sync();
      const names = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((r) => r.name);
      assert.ok(names.includes('only_in_default'), names.join());
      assert.ok(!names.includes('only_in_tenant1'), names.join());
    } finally {
      db.close();
    }
  });
});
