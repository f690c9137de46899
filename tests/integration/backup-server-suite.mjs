// (shared, not a test file) Continuous backup from a running server (`quire serve
// --backup-url`), against either store: a local directory (file://) or a real S3-compatible
// server (s3rver on 127.0.0.1, started and stopped by pid, see s3.mjs).
//
//  * a scripted workload with 20 recorded moments; the server is killed with -9 (so only what
//    the service shipped while running counts), the data directory deleted, and `quire restore`
//    brings back every row at the latest point and the exact state at each of the 20 moments;
//  * fork at a timestamp and restore in place through the admin API (`quire db`), the replaced
//    state staying restorable;
//  * kill -9 during shipping: after a restart the lineage continues with no gap and no
//    duplicate frame, and every acknowledged row is restorable;
//  * --backup-sync: an acknowledged write is already in the store;
//  * encryption: objects hold no plaintext, restore needs the key;
//  * retention: history older than the window goes, every moment inside it restores exactly;
//  * the store down for a minute (S3): writes go on, the backup catches up, nothing is lost.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { createClient } from '@libsql/client';

import { ok, quire, readRows, tmp, walk } from './cli-helpers.mjs';
import { startS3rver } from './s3.mjs';
import { sleep, startServer } from './server.mjs';

const STORE_DOWN_MS = Number(process.env.QUIRE_TEST_STORE_DOWN_MS ?? 60000);

function nsClient(server, ns) {
  return createClient({
    url: server.url,
    fetch: async (request) => {
      request.headers.set('x-namespace', ns);
      return fetch(request);
    },
  });
}

async function adminJson(server, method, route, body) {
  const resp = await fetch(`${server.adminUrl}${route}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  return { status: resp.status, json: text ? JSON.parse(text) : null };
}

/** Waits until the service has shipped every commit it was told of for `ns`. */
async function waitShipped(server, ns = 'default', timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await adminJson(server, 'GET', `/v1/namespaces/${ns}/backup`);
    const s = last.json?.shipping;
    if (last.status === 200 && s && s.shipped_frame > 0 && s.shipped_frame >= s.committed_frame) {
      return last.json;
    }
    await sleep(50);
  }
  throw new Error(`backup of ${ns} did not catch up: ${JSON.stringify(last)}\n${server.logs()}`);
}

/** Waits until the store has `ns`'s current settings. */
async function waitConfigShipped(server, ns, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await adminJson(server, 'GET', `/v1/namespaces/${ns}/backup`);
    if (last.json?.shipping?.config_current === true) return;
    await sleep(50);
  }
  throw new Error(`settings of ${ns} did not go up: ${JSON.stringify(last)}\n${server.logs()}`);
}

const BODY = (i, n = 200) => {
  const b = Buffer.alloc(n, i % 251);
  b.writeUInt32BE(i, 0);
  return b;
};
const row = (id, name, body) => ({ id, name, body: body.toString('hex').toUpperCase() });

function stores() {
  return [
    {
      name: 'file',
      async open() {
        const dir = path.join(tmp('quire-backup-store-'), 'store');
        return { url: (p = '') => `file://${dir}${p ? `/${p}` : ''}`, env: undefined, dir, stop: async () => {} };
      },
    },
    {
      name: 's3',
      async open() {
        const s3 = await startS3rver({ bucket: 'quire-backups' });
        return { url: (p = '') => s3.url(p), env: s3.env, s3, stop: () => s3.stop() };
      },
    },
  ];
}

// The tests against one store (`file` or `s3`): backup-server-file.test.mjs and
// backup-server-s3.test.mjs each run one, so the two run side by side and each stays well within
// the per-file time limit under the sanitizers.
export function backupServerSuite(name) {
  const kind = stores().find((k) => k.name === name);
  if (!kind) throw new Error(`backupServerSuite: no store kind '${name}'`);
  describe(`continuous backup to ${kind.name}`, () => {
    let store;
    before(async () => { store = await kind.open(); });
    after(async () => { await store?.stop(); });

    test('kill -9, delete the data directory, restore every row and 20 moments', async () => {
      const root = tmp('quire-backup-server-');
      const dataDir = path.join(root, 'data');
      const url = store.url('t1');
      const server = await startServer({
        dataDir,
        env: store.env,
        args: ['--backup-url', url, '--backup-interval', '0.2', '--admin-listen', '127.0.0.1:0'],
      });
      const moments = [];
      const state = new Map();
      try {
        const c = createClient({ url: server.url });
        await c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)');
        let next = 1;
        for (let step = 0; step < 20; step++) {
          // Inserts of varying size, an update and a delete now and then.
          const stmts = [];
          const n = 1 + (step % 4) * 3;
          for (let k = 0; k < n; k++, next++) {
            const body = BODY(next, step % 5 === 4 ? 50000 : 200);
            stmts.push({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [next, `r${next}`, body] });
            state.set(next, row(next, `r${next}`, body));
          }
          if (step % 3 === 2) {
            const id = 1 + (step * 7) % (next - 1);
            if (state.has(id)) {
              stmts.push({ sql: 'UPDATE t SET name = ? WHERE id = ?', args: [`u${step}`, id] });
              state.set(id, { ...state.get(id), name: `u${step}` });
            }
          }
          if (step % 5 === 3) {
            const id = 2 + step;
            stmts.push({ sql: 'DELETE FROM t WHERE id = ?', args: [id] });
            state.delete(id);
          }
          await c.batch(stmts, 'write');
          await sleep(15);
          moments.push({ at: new Date().toISOString(), rows: [...state.values()].sort((a, b) => a.id - b.id) });
          await sleep(15);
        }
        c.close();
        const status = await waitShipped(server);
        assert.ok(status.restorable, JSON.stringify(status));
        assert.equal(status.shipping.failures, 0, JSON.stringify(status));
      } finally {
        await server.kill();
      }
      rmSync(dataDir, { recursive: true, force: true });

      const latest = path.join(root, 'latest.db');
      const out = await ok(['restore', '--backup-url', url, '-o', latest, '--verify'], { env: store.env });
      assert.match(out, /integrity_check: ok/);
      assert.deepEqual(readRows(latest), moments[19].rows);

      for (let i = 0; i < moments.length; i++) {
        const file = path.join(root, `m${i}.db`);
        await ok(['restore', '--backup-url', url, '--timestamp', moments[i].at, '-o', file], { env: store.env });
        assert.deepEqual(readRows(file), moments[i].rows, `moment ${i} (${moments[i].at})`);
      }
    });

    test('a new machine with the same --backup-url comes back with every namespace', async () => {
      const url = store.url('t8');
      const args = ['--backup-url', url, '--backup-interval', '0.1', '--admin-listen', '127.0.0.1:0'];
      const first = await startServer({ env: store.env, args });
      try {
        const c = createClient({ url: first.url });
        await c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)');
        await c.execute({ sql: 'INSERT INTO t VALUES (1, ?, ?)', args: ['in-default', BODY(1)] });
        c.close();
        assert.equal((await adminJson(first, 'POST', '/v1/namespaces/acme/create', {})).status, 200);
        const a = nsClient(first, 'acme');
        await a.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)');
        await a.execute({ sql: 'INSERT INTO t VALUES (7, ?, ?)', args: ['in-acme', BODY(7)] });
        a.close();
        await waitShipped(first, 'default');
        await waitShipped(first, 'acme');
        // Settings changed after the last commit go up too (with a round of their own).
        const set = await adminJson(first, 'POST', '/v1/namespaces/acme/config',
          { max_db_size: '5MB', block_writes: true, block_reason: 'moving house', txn_timeout_s: 7 });
        assert.equal(set.status, 200);
        await waitConfigShipped(first, 'acme');
      } finally {
        await first.kill();  // the machine is gone, data directory and all
      }
      const second = await startServer({ env: store.env, args });
      try {
        assert.match(second.logs(), /restored 2 namespace\(s\)/);
        const c = createClient({ url: second.url });
        assert.deepEqual((await c.execute('SELECT id, name FROM t')).rows.map((r) => [Number(r.id), r.name]), [[1, 'in-default']]);
        await c.execute({ sql: 'INSERT INTO t VALUES (2, ?, ?)', args: ['after', BODY(2)] });
        c.close();
        const a = nsClient(second, 'acme');
        assert.deepEqual((await a.execute('SELECT id, name FROM t')).rows.map((r) => [Number(r.id), r.name]), [[7, 'in-acme']]);
        // acme came back with its settings: writes are still blocked, with the reason.
        await assert.rejects(a.execute({ sql: 'INSERT INTO t VALUES (8, ?, ?)', args: ['no', BODY(8)] }), /writes are blocked: moving house/);
        a.close();
        const config = await adminJson(second, 'GET', '/v1/namespaces/acme/config');
        assert.equal(config.status, 200);
        assert.deepEqual(
          [config.json.max_db_size, config.json.block_writes, config.json.block_reason, config.json.txn_timeout_s],
          [5000000, true, 'moving house', 7]);
        assert.equal((await adminJson(second, 'GET', '/v1/namespaces/default/config')).json.block_writes, false);
        await waitShipped(second, 'default');
      } finally {
        await second.stop();
      }
      // The latest point is the restored state plus what came after, not an empty database.
      const out = path.join(tmp('quire-backup-new-machine-'), 'out.db');
      await ok(['restore', '--backup-url', url, '-o', out], { env: store.env });
      assert.deepEqual(readRows(out, 'SELECT id, name FROM t ORDER BY id'), [{ id: 1, name: 'in-default' }, { id: 2, name: 'after' }]);
    });

    test('fork at a timestamp and restore in place through the admin API', async () => {
      const root = tmp('quire-backup-admin-');
      const url = store.url('t2');
      const server = await startServer({
        env: store.env,
        args: ['--backup-url', url, '--backup-interval', '0.1', '--admin-listen', '127.0.0.1:0'],
      });
      const admin = ['--admin-url', server.adminUrl];
      try {
        const c = createClient({ url: server.url });
        await c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)');
        for (let i = 1; i <= 10; i++) {
          await c.execute({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [i, `a${i}`, BODY(i)] });
        }
        await waitShipped(server);
        await sleep(20);
        const phaseA = new Date().toISOString();
        await sleep(20);
        for (let i = 11; i <= 25; i++) {
          await c.execute({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [i, `b${i}`, BODY(i)] });
        }
        await c.execute("UPDATE t SET name = 'changed' WHERE id = 1");
        await waitShipped(server);
        await sleep(20);
        const phaseB = new Date().toISOString();

        // The restorable range, as the CLI shows it.
        const shown = await ok(['db', 'backup', 'default', ...admin]);
        assert.match(shown, /restorable from \S+ \(frame \d+\) to \S+ \(frame \d+\)/);

        // Fork as of phase A: ten rows, row 1 unchanged; the source is untouched.
        const forked = await ok(['db', 'fork', 'default', 'branch', '--timestamp', phaseA, ...admin]);
        assert.match(forked, /forked 'default' to 'branch' as of frame \d+/);
        const b = nsClient(server, 'branch');
        const branchRows = (await b.execute('SELECT id, name FROM t ORDER BY id')).rows;
        assert.deepEqual(branchRows.map((r) => [Number(r.id), r.name]),
          Array.from({ length: 10 }, (_, k) => [k + 1, `a${k + 1}`]));
        // The branch is a namespace of its own: writable, and backed up too.
        await b.execute({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [100, 'branch-only', BODY(100)] });
        b.close();
        assert.equal(Number((await c.execute('SELECT count(*) AS n FROM t')).rows[0].n), 25);

        // Errors: an existing target, a time before any backup, both a time and a frame.
        let r = await quire(['db', 'fork', 'default', 'branch', '--timestamp', phaseA, ...admin]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /already exists/);
        r = await quire(['db', 'restore', 'default', '--timestamp', '2001-01-01T00:00:00Z', ...admin]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /out of range|before|restorable/i);
        r = await quire(['db', 'restore', 'default', '--timestamp', phaseA, '--frame', '3', ...admin]);
        assert.notEqual(r.code, 0);
        const bad = await adminJson(server, 'POST', '/v1/namespaces/default/restore', { timestamp: 'yesterday' });
        assert.equal(bad.status, 400);
        assert.match(bad.json.error, /RFC 3339/);

        // Restore in place to phase A: the same client sees ten rows and can write on.
        const restored = await ok(['db', 'restore', 'default', '--timestamp', phaseA, ...admin]);
        assert.match(restored, /restored 'default' as of frame \d+/);
        const replaced = restored.match(/the state it replaced stays restorable: log ([0-9a-f-]{36}) up to frame (\d+)/);
        assert.ok(replaced, restored);
        assert.equal(Number((await c.execute('SELECT count(*) AS n FROM t')).rows[0].n), 10);
        await c.execute({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [50, 'after-restore', BODY(50)] });
        const status = await waitShipped(server);
        assert.equal(status.lineages.length, 2, JSON.stringify(status));
        c.close();

        // The replaced state (phase B) is still restorable by time, from the store.
        const prev = path.join(root, 'prev.db');
        await ok(['restore', '--backup-url', url, '--timestamp', phaseB, '-o', prev], { env: store.env });
        const prevRows = readRows(prev, 'SELECT id, name FROM t ORDER BY id');
        assert.equal(prevRows.length, 25);
        assert.equal(prevRows[0].name, 'changed');
        // And by its log id, which `quire db backup` lists: into a file, and as a fork.
        const lineages = await ok(['db', 'backup', 'default', ...admin]);
        assert.match(lineages, new RegExp(`lineage ${replaced[1]}: frames \\d+\\.\\.${replaced[2]}, `));
        const byId = path.join(root, 'by-id.db');
        await ok(['restore', '--backup-url', url, '--log-id', replaced[1], '-o', byId], { env: store.env });
        assert.deepEqual(readRows(byId, 'SELECT id, name FROM t ORDER BY id'), prevRows);
        const atA = path.join(root, 'by-id-at-a.db');
        await ok(['restore', '--backup-url', url, '--log-id', replaced[1], '--timestamp', phaseA, '-o', atA],
          { env: store.env });
        assert.equal(readRows(atA, 'SELECT id FROM t').length, 10);
        r = await quire(['restore', '--backup-url', url, '--log-id', 'not-a-log-id', '-o', path.join(root, 'x.db')],
          { env: store.env });
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /--log-id must be a log id/);
        r = await quire(['restore', '--backup-url', url, '--log-id', '0'.repeat(32), '-o', path.join(root, 'x.db')],
          { env: store.env });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, new RegExp(`no lineage 00000000-0000-0000-0000-000000000000 \\(this backup has: .*${replaced[1]}`));
        r = await quire(['restore', '--backup-url', url, '--log-id', '', '-o', path.join(root, 'x.db')], { env: store.env });
        assert.equal(r.code, 2, r.stderr);
        const old = await ok(['db', 'fork', 'default', 'old', '--log-id', replaced[1], ...admin]);
        assert.match(old, new RegExp(`forked 'default' to 'old' as of frame ${replaced[2]} \\(committed `));
        const o = nsClient(server, 'old');
        assert.equal(Number((await o.execute('SELECT count(*) AS n FROM t')).rows[0].n), 25);
        o.close();
        const badId = await adminJson(server, 'POST', '/v1/namespaces/default/fork/nope', { log_id: 42 });
        assert.equal(badId.status, 400);
        assert.match(badId.json.error, /'log_id' must be a log id/);
        // And the latest point is the restored state plus the new row.
        const now = path.join(root, 'now.db');
        await ok(['restore', '--backup-url', url, '-o', now, '--verify'], { env: store.env });
        assert.deepEqual(readRows(now, 'SELECT id FROM t ORDER BY id').map((x) => x.id),
          [...Array.from({ length: 10 }, (_, k) => k + 1), 50]);

        // A deleted namespace restored in place, or forked, comes back with its settings.
        const settings = { txn_timeout_s: 3, allow_attach: true, max_db_size: 7000000 };
        assert.equal((await adminJson(server, 'POST', '/v1/namespaces/branch/config', settings)).status, 200);
        await waitConfigShipped(server, 'branch');
        assert.equal((await adminJson(server, 'DELETE', '/v1/namespaces/branch')).status, 200);
        const pick = (j) => ({ txn_timeout_s: j.txn_timeout_s, allow_attach: j.allow_attach, max_db_size: j.max_db_size });
        assert.equal((await adminJson(server, 'POST', '/v1/namespaces/branch/fork/twig', { timestamp: new Date().toISOString() })).status, 200);
        assert.deepEqual(pick((await adminJson(server, 'GET', '/v1/namespaces/twig/config')).json), settings);
        assert.equal((await adminJson(server, 'POST', '/v1/namespaces/branch/restore', {})).status, 200);
        assert.deepEqual(pick((await adminJson(server, 'GET', '/v1/namespaces/branch/config')).json), settings);
        const b2 = nsClient(server, 'branch');
        assert.equal(Number((await b2.execute('SELECT count(*) AS n FROM t')).rows[0].n), 11);
        b2.close();
      } finally {
        await server.stop();
      }
    });

    test('kill -9 while shipping: the backup resumes with no gap and no duplicate', async () => {
      const root = tmp('quire-backup-kill-');
      const dataDir = path.join(root, 'data');
      const url = store.url('t3');
      const args = ['--backup-url', url, '--backup-interval', '0.05', '--admin-listen', '127.0.0.1:0'];
      const acked = [];
      let server = await startServer({ dataDir, env: store.env, args });
      try {
        let c = createClient({ url: server.url });
        await c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)');
        let i = 0;
        const until = Date.now() + 1500;
        while (Date.now() < until) {
          i++;
          await c.execute({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [i, `k${i}`, BODY(i, 3000)] });
          acked.push(i);
        }
        c.close();
        await server.kill();  // mid-stream: commits not yet shipped are in the log only
        server = await startServer({ dataDir, env: store.env, args, listen: '127.0.0.1:0' });
        c = createClient({ url: server.url });
        for (let k = 0; k < 50; k++) {
          i++;
          await c.execute({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [i, `k${i}`, BODY(i, 3000)] });
          acked.push(i);
        }
        c.close();
        await waitShipped(server);
      } finally {
        await server.stop();
      }
      if (store.dir) {
        // One lineage whose batches follow each other frame by frame.
        const prefix = path.join(store.dir, 't3', 'default');
        const lineages = JSON.parse(readFileSync(path.join(prefix, 'lineages.json'), 'utf8')).lineages;
        assert.equal(lineages.length, 1);
        const dir = path.join(prefix, lineages[0].log_id);
        const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
        let expected = 1;
        for (const b of m.batches) {
          assert.equal(b.first_frame, expected, `batch ${b.key} after frame ${expected - 1}`);
          expected = b.last_frame + 1;
        }
        // The manifest may lag (it is rewritten every 30 batches): the batches after it are
        // under batches/<first frame>.qbbat, each header naming its first and last frame.
        for (;;) {
          const key = path.join(dir, 'batches', `${expected.toString(16).padStart(16, '0')}.qbbat`);
          if (!existsSync(key)) break;
          const header = readFileSync(key).subarray(0, 128);
          assert.equal(header.subarray(0, 8).toString('latin1'), 'QBKBTCH1', key);
          assert.equal(Number(header.readBigUInt64LE(32)), expected, key);
          expected = Number(header.readBigUInt64LE(40)) + 1;
        }
        assert.ok(expected > 1, 'no batches');
      }
      const out = path.join(root, 'out.db');
      await ok(['restore', '--backup-url', url, '-o', out, '--verify'], { env: store.env });
      assert.deepEqual(readRows(out, 'SELECT id FROM t ORDER BY id').map((r) => r.id), acked);
    });

    test('--backup-sync acknowledges a write only once it is in the store', async () => {
      const root = tmp('quire-backup-sync-');
      const url = store.url('t4');
      const server = await startServer({
        env: store.env,
        args: ['--backup-url', url, '--backup-sync', '--admin-listen', '127.0.0.1:0'],
      });
      try {
        const c = createClient({ url: server.url });
        await c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)');
        for (let i = 1; i <= 15; i++) {
          await c.execute({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [i, `s${i}`, BODY(i)] });
          // Restore right after the acknowledgement (no waiting): the row must be there.
          if (i % 5 === 0) {
            const file = path.join(root, `s${i}.db`);
            await ok(['restore', '--backup-url', url, '-o', file], { env: store.env });
            assert.equal(readRows(file, 'SELECT max(id) AS id FROM t')[0].id, i);
          }
        }
        c.close();
      } finally {
        await server.stop();
      }
    });

    test('encrypted backups: unreadable without the key, restored with it', async () => {
      const root = tmp('quire-backup-enc-');
      const url = store.url('t6');
      const key = path.join(root, 'key');
      writeFileSync(key, `${randomBytes(32).toString('hex')}\n`);
      const server = await startServer({
        env: store.env,
        args: ['--backup-url', url, '--backup-interval', '0.1', '--backup-encryption-key-file', key,
          '--admin-listen', '127.0.0.1:0'],
      });
      try {
        const c = createClient({ url: server.url });
        await c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)');
        for (let i = 1; i <= 20; i++) {
          await c.execute({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [i, `secret-marker-${i}`, BODY(i)] });
        }
        c.close();
        await waitShipped(server);
      } finally {
        await server.stop();
      }
      if (store.dir) {
        for (const f of walk(path.join(store.dir, 't6'))) {
          if (f.endsWith('.json')) continue;
          assert.ok(!readFileSync(f).includes('secret-marker'), `${f} holds plaintext`);
        }
      }
      const out = path.join(root, 'out.db');
      const denied = await quire(['restore', '--backup-url', url, '-o', out], { env: store.env });
      assert.equal(denied.code, 1, denied.stdout + denied.stderr);
      assert.match(denied.stderr, /encrypt/i);
      const other = path.join(root, 'other');
      writeFileSync(other, randomBytes(32));
      const wrong = await quire(['restore', '--backup-url', url, '-o', out, '--encryption-key-file', other], { env: store.env });
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /another key|key/i);
      await ok(['restore', '--backup-url', url, '-o', out, '--encryption-key-file', key, '--verify'], { env: store.env });
      assert.equal(readRows(out).length, 20);
      assert.equal(readRows(out)[19].name, 'secret-marker-20');
    });

    test('retention deletes only history older than the window', async () => {
      const root = tmp('quire-backup-retention-');
      const url = store.url('t7');
      const server = await startServer({
        env: store.env,
        args: ['--backup-url', url, '--backup-interval', '0.1', '--backup-retention', '4s',
          '--backup-snapshot-interval', '1s', '--admin-listen', '127.0.0.1:0'],
      });
      const moments = [];
      try {
        const c = createClient({ url: server.url });
        await c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)');
        // 10 s of history, a moment recorded every 250 ms.
        let i = 0;
        const until = Date.now() + 10000;
        while (Date.now() < until) {
          i++;
          await c.execute({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [i, `r${i}`, BODY(i)] });
          await sleep(10);
          moments.push({ at: new Date().toISOString(), ms: Date.now(), count: i });
          await sleep(240);
        }
        c.close();
        await waitShipped(server);
        await sleep(1500);  // a retention round after the last ship
        const status = (await adminJson(server, 'GET', '/v1/namespaces/default/backup')).json;
        const first = Date.parse(status.restorable.first_time);
        // Old history is gone (the window is 4 s, checked at least every 1 s, and a snapshot is
        // kept at or before the cutoff), recent history is not.
        assert.ok(first > moments[0].ms, `nothing was deleted: ${JSON.stringify(status)}`);
        assert.ok(first <= Date.now() - 4000, `too much was deleted: ${JSON.stringify(status)}`);
        // Every kept moment restores exactly; a deleted one is refused, never approximated.
        const now = Date.now();
        let kept = 0;
        for (const m of moments) {
          const file = path.join(root, `m${m.count}.db`);
          const r = await quire(['restore', '--backup-url', url, '--timestamp', m.at, '-o', file], { env: store.env });
          if (m.ms >= now - 4000) {
            assert.equal(r.code, 0, `a moment inside the window: ${m.at}\n${r.stderr}`);
          }
          if (r.code === 0) {
            kept++;
            assert.equal(readRows(file, 'SELECT count(*) AS id FROM t')[0].id, m.count, m.at);
          } else {
            assert.match(r.stderr, /range|before/i, r.stderr);
          }
        }
        assert.ok(kept < moments.length, 'every moment is still restorable: retention did nothing');
      } finally {
        await server.stop();
      }
    });

    if (kind.name === 's3') {
      test('the store down for a minute loses nothing: the backup catches up', async () => {
        const root = tmp('quire-backup-down-');
        const url = store.url('t5');
        const server = await startServer({
          env: store.env,
          args: ['--backup-url', url, '--backup-interval', '0.2', '--admin-listen', '127.0.0.1:0'],
        });
        const acked = [];
        try {
          const c = createClient({ url: server.url });
          await c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)');
          let i = 0;
          await waitShipped(server);
          await store.s3.kill();
          const until = Date.now() + STORE_DOWN_MS;
          while (Date.now() < until) {
            i++;
            await c.execute({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [i, `d${i}`, BODY(i, 1000)] });
            acked.push(i);
            await sleep(20);
          }
          const during = await adminJson(server, 'GET', '/v1/namespaces/default/backup');
          // The store is down: the status says so, with the error.
          assert.equal(during.status, 200, JSON.stringify(during.json));
          assert.ok(during.json.store_error, JSON.stringify(during.json));
          assert.ok(during.json.shipping.last_error, JSON.stringify(during.json));
          assert.ok(during.json.shipping.committed_frame > during.json.shipping.shipped_frame);
          const stats = await adminJson(server, 'GET', '/v1/namespaces/default/stats');
          assert.equal(stats.status, 200);
          await store.s3.restart();
          const status = await waitShipped(server, 'default', 60000);
          assert.ok(status.shipping.failures > 0, JSON.stringify(status));
          assert.equal(status.shipping.last_error, '');
          c.close();
        } finally {
          await server.stop();
        }
        const out = path.join(root, 'out.db');
        await ok(['restore', '--backup-url', url, '-o', out, '--verify'], { env: store.env });
        assert.deepEqual(readRows(out, 'SELECT id FROM t ORDER BY id').map((r) => r.id), acked);
      });
    }
  });
}
