// The replication log under kill -9 (issue 6): every committed transaction is in the log before
// the client hears of it, and after a crash at any moment the log and the database agree.
//
// Each round runs writers (single inserts, multi-row batches with large rows that spill, updates,
// deletes) and explicit checkpoints through the admin API, with a tiny --checkpoint-threshold so
// the WAL restarts constantly; then SIGKILLs the server after a random delay. A new server on the
// same data directory must hold every acknowledged row (its startup appended to the log whatever
// the WAL committed but the log lacked); it is then stopped cleanly and `quire log verify`
// rebuilds the database from the log alone and compares it byte for byte with the file. The next
// round continues on the same files, alternating synchronous normal and full.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import { createClient } from '@libsql/client';
import Database from 'libsql';

import { quireBin, sleep, startServer } from './server.mjs';

const ROUNDS = Number(process.env.QUIRE_LOG_CRASH_ROUNDS ?? 20);
const WRITERS = 8;

function verify(dataDir) {
  try {
    return { ok: true, out: execFileSync(quireBin(), ['log', 'verify', '--data', dataDir], { encoding: 'utf8' }) };
  } catch (e) {
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('replication log: kill -9 at random moments', () => {
  test(`${ROUNDS} rounds of writes, checkpoints and SIGKILL; log and database agree after each`, { timeout: 170_000 }, async (t) => {
    let dataDir;
    const acked = new Set();
    const attempted = new Set();
    let seq = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const sync = round % 2 ? 'full' : 'normal';
      const args = ['--synchronous', sync, '--checkpoint-threshold', '8', '--admin-listen', '127.0.0.1:0'];
      const server = await startServer(dataDir ? { args, dataDir } : { args });
      dataDir ??= server.dataDir;
      const clients = [];
      try {
        const setup = createClient({ url: server.url });
        await setup.execute('CREATE TABLE IF NOT EXISTS crash (k TEXT PRIMARY KEY, pad BLOB)');
        // Every acknowledged row of earlier rounds survived the crash and the recovery.
        const present = new Set((await setup.execute('SELECT k FROM crash')).rows.map((r) => r.k));
        const lost = [...acked].filter((k) => !present.has(k));
        assert.deepEqual(lost.slice(0, 10), [], `round ${round}: ${lost.length} acknowledged rows lost`);
        assert.deepEqual([...present].filter((k) => !attempted.has(k)), [], 'rows nobody wrote');
        const integrity = await setup.execute('PRAGMA integrity_check');
        assert.deepEqual(integrity.rows.map((r) => r[0]), ['ok']);
        setup.close();

        let stop = false;
        const work = [];
        for (let w = 0; w < WRITERS; w++) {
          const c = createClient({ url: server.url });
          clients.push(c);
          work.push((async () => {
            while (!stop) {
              const kind = (seq + w) % 4;
              const keys = kind === 1 ? [0, 1, 2].map(() => `r${round}-${seq++}`) : [`r${round}-${seq++}`];
              keys.forEach((k) => attempted.add(k));
              try {
                if (kind === 1) {
                  // Large rows: the transaction spills pages into the WAL before it commits.
                  await c.batch(keys.map((k) => ({ sql: 'INSERT INTO crash VALUES (?, randomblob(6000))', args: [k] })), 'write');
                } else if (kind === 2) {
                  await c.execute({ sql: 'INSERT INTO crash VALUES (?, randomblob(50))', args: [keys[0]] });
                  await c.execute("UPDATE crash SET pad = randomblob(300) WHERE rowid % 7 = 0");
                } else {
                  await c.execute({ sql: 'INSERT INTO crash VALUES (?, randomblob(200))', args: [keys[0]] });
                }
                keys.forEach((k) => acked.add(k));
              } catch {
                // in flight at the kill: may or may not have committed
              }
            }
          })());
        }
        const checkpoints = (async () => {
          while (!stop) {
            await fetch(`${server.adminUrl}/v1/namespaces/default/checkpoint`, { method: 'POST' }).catch(() => {});
            await sleep(20);
          }
        })();
        await sleep(150 + Math.floor(Math.random() * 500));
        await server.kill();
        stop = true;
        await Promise.all([...work, checkpoints]);
      } finally {
        for (const c of clients) c.close();
      }
      // Recovery, then a clean stop, then the log alone must rebuild the file.
      const again = await startServer({ args, dataDir });
      await again.stop();
      const checked = verify(dataDir);
      assert.ok(checked.ok, `round ${round} (${sync}): ${checked.out}`);
    }
    t.diagnostic(`${acked.size} acknowledged writes over ${ROUNDS} crashes`);
    const last = await startServer({ args: [], dataDir });
    try {
      const c = createClient({ url: last.url });
      const present = new Set((await c.execute('SELECT k FROM crash')).rows.map((r) => r.k));
      c.close();
      assert.deepEqual([...acked].filter((k) => !present.has(k)), []);
    } finally {
      await last.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('quire replica pull', () => {
  test('copies a live namespace into a file that holds exactly the primary\'s rows', { timeout: 60_000 }, async () => {
    const server = await startServer({ args: ['--admin-listen', '127.0.0.1:0'] });
    const out = mkdtempSync(path.join(tmpdir(), 'quire-pull-'));
    try {
      const created = await fetch(`${server.adminUrl}/v1/namespaces/shop/create`, { method: 'POST', body: '{}' });
      assert.equal(created.status, 200);
      const c = createClient({ url: server.url, fetch: (req) => { req.headers.set('x-namespace', 'shop'); return fetch(req); } });
      await c.execute('CREATE TABLE items (id INTEGER PRIMARY KEY, body BLOB)');
      for (let i = 0; i < 30; i++) {
        await c.batch(Array.from({ length: 50 }, () => 'INSERT INTO items (body) VALUES (randomblob(2000))'), 'write');
      }
      await c.execute('DELETE FROM items WHERE id % 7 = 0');
      const expected = (await c.execute('SELECT count(*) AS n, sum(length(body)) AS bytes, max(id) AS top FROM items')).rows[0];
      c.close();

      const file = path.join(out, 'copy.db');
      const printed = execFileSync(quireBin(), ['replica', 'pull', '--primary-url', server.url, '--namespace', 'shop', '-o', file], { encoding: 'utf8' });
      assert.match(printed, /frame \d+ of log [0-9a-f-]{36}/);
      const db = new Database(file, { readonly: true });
      try {
        assert.equal(db.prepare('PRAGMA integrity_check').get().integrity_check, 'ok');
        const got = db.prepare('SELECT count(*) AS n, sum(length(body)) AS bytes, max(id) AS top FROM items').get();
        assert.deepEqual([got.n, got.bytes, got.top], [Number(expected.n), Number(expected.bytes), Number(expected.top)]);
      } finally {
        db.close();
      }
      // A namespace that does not exist: exit 1 with the reason, no file.
      let failed;
      try {
        execFileSync(quireBin(), ['replica', 'pull', '--primary-url', server.url, '--namespace', 'nosuch', '-o', path.join(out, 'x.db'), '--timeout', '2'], { encoding: 'utf8', stdio: 'pipe' });
      } catch (e) {
        failed = e;
      }
      assert.ok(failed, 'pulling a missing namespace must fail');
      assert.equal(failed.status, 1);
      assert.match(failed.stderr, /NAMESPACE_DOESNT_EXIST/);
    } finally {
      await server.stop();
      rmSync(out, { recursive: true, force: true });
    }
  });
});
