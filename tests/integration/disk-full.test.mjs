// A disk that fills up under live writers. The data directory is a small tmpfs mounted by the
// test (this needs root: CAP_SYS_ADMIN for mount(8); without it the test fails, it never skips).
// Writers over HTTP and WebSocket insert rows and multi-row batches while a filler file takes
// the last free space, so SQLite's -wal, the replication log and checkpoints all run out of room
// at some point. Then:
//   * every failed write says so clearly (SQLITE_FULL / a disk-full message), and a failed batch
//     leaves none of its rows behind;
//   * the server keeps running and answers reads with every acknowledged row, on this namespace
//     and on another one;
//   * once the filler is deleted, writes succeed again without a restart;
//   * after kill -9 and a restart every acknowledged row is there, PRAGMA integrity_check is ok,
//     and `quire log verify` rebuilds the database from the replication log byte for byte.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { createClient } from '@libsql/client';

import { quireBin, sleep, startServer } from './server.mjs';

const DISK_MIB = 48;

function mountTmpfs(dir, mib) {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(`disk-full: cannot mount a ${mib} MiB tmpfs at ${dir} to fill it ` +
                    `(needs root / CAP_SYS_ADMIN): ${e.stderr ?? e.message}`);
  }
}

function freeBytes(dir) {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

// Writes zeros to `file` until the file system refuses (ENOSPC), leaving `keep` bytes free when
// it can; returns the bytes written.
function fill(file, keep) {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  let written = 0;
  try {
    for (;;) {
      const room = freeBytes(path.dirname(file)) - keep;
      if (room <= 0) break;
      const n = Math.min(chunk.length, room);
      try {
        written += writeSync(fd, chunk, 0, n);
      } catch (e) {
        if (e.code === 'ENOSPC') break;
        throw e;
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

function isDiskFull(err) {
  const text = `${err?.code ?? ''} ${err?.message ?? ''}`;
  return /SQLITE_FULL|disk is full|No space left/i.test(text);
}

describe('a disk that fills up', () => {
  let mnt;
  let dataDir;
  let server;
  const acked = new Set();
  const failures = [];

  before(() => {
    mnt = mkdtempSync(path.join(tmpdir(), 'quire-diskfull-'));
    mountTmpfs(mnt, DISK_MIB);
    dataDir = path.join(mnt, 'data');
    mkdirSync(dataDir);
  });

  after(async () => {
    if (server?.isRunning()) await server.kill();
    try {
      execFileSync('umount', ['-l', mnt], { stdio: 'pipe' });
    } finally {
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  test('writes fail clearly, reads go on, nothing acknowledged is lost, writes resume once space frees',
    { timeout: 120_000 }, async (t) => {
      // A small checkpoint threshold: checkpoints (which grow the database file) and WAL restarts
      // (which sync the log first) happen often while the disk is full.
      server = await startServer({ dataDir, args: ['--admin-listen', '127.0.0.1:0', '--checkpoint-threshold', '64'] });
      const created = await fetch(`${server.adminUrl}/v1/namespaces/other/create`, { method: 'POST', body: '{}' });
      assert.equal(created.status, 200);
      const other = createClient({ url: server.url, fetch: (req) => { req.headers.set('x-namespace', 'other'); return fetch(req); } });
      await other.execute('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)');
      await other.execute("INSERT INTO notes (body) VALUES ('written before the disk filled')");

      const setup = createClient({ url: server.url });
      await setup.execute('CREATE TABLE t (k TEXT PRIMARY KEY, pad BLOB)');
      setup.close();

      const filler = path.join(mnt, 'filler');
      const clients = [
        createClient({ url: server.url }),
        createClient({ url: server.url }),
        createClient({ url: server.url.replace(/^http/, 'ws') }),
      ];
      let seq = 0;
      let stop = false;
      let phase = 'before';
      const okAfterFree = { n: 0 };
      const writer = async (c, w) => {
        while (!stop) {
          const batch = (seq + w) % 3 === 0;
          const keys = batch ? [0, 1, 2, 3].map(() => `w${w}-${seq++}`) : [`w${w}-${seq++}`];
          const myPhase = phase;
          try {
            if (batch) {
              await c.batch(keys.map((k) => ({ sql: 'INSERT INTO t VALUES (?, randomblob(3000))', args: [k] })), 'write');
            } else {
              await c.execute({ sql: 'INSERT INTO t VALUES (?, randomblob(1500))', args: [keys[0]] });
            }
            keys.forEach((k) => acked.add(k));
            if (myPhase === 'freed') okAfterFree.n++;
          } catch (e) {
            failures.push({ keys, e, phase: myPhase });
            await sleep(5);
          }
        }
      };
      const work = clients.map((c, w) => writer(c, w));

      try {
        await sleep(300);
        // Take all but 256 KiB: the writers use that up within moments.
        const filled = fill(filler, 256 * 1024);
        phase = 'full';
        t.diagnostic(`filler: ${(filled / 1048576).toFixed(1)} MiB; free now ${freeBytes(mnt)} bytes`);
        const deadline = Date.now() + 30_000;
        while (failures.filter((f) => f.phase === 'full').length < 30 && Date.now() < deadline) await sleep(50);
        const fullFailures = failures.filter((f) => f.phase === 'full');
        assert.ok(fullFailures.length >= 30, `only ${fullFailures.length} writes failed with the disk full`);

        // While full: every failure is a clear disk-full error, and reads go on with every
        // acknowledged row, here and on the other namespace.
        const unclear = failures.filter((f) => !isDiskFull(f.e));
        assert.deepEqual(unclear.slice(0, 3).map((f) => `${f.keys.length > 1 ? 'batch' : 'execute'} ${f.e?.code}: ${f.e?.message}`), [],
                         `errors that do not say the disk is full; server log:\n${server.logs().slice(-4000)}`);
        assert.ok(server.isRunning(), 'the server died with the disk full');
        const reader = createClient({ url: server.url });
        const seen = new Set((await reader.execute('SELECT k FROM t')).rows.map((r) => r.k));
        const missing = [...acked].filter((k) => !seen.has(k));
        assert.deepEqual(missing.slice(0, 5), [], `${missing.length} acknowledged rows missing while the disk is full`);
        assert.deepEqual((await other.execute('SELECT body FROM notes')).rows.map((r) => r.body), ['written before the disk filled']);
        const otherWrite = await other.execute("INSERT INTO notes (body) VALUES ('x')").then(() => 'ok', (e) => e);
        assert.ok(otherWrite === 'ok' || isDiskFull(otherWrite), `other namespace: ${otherWrite?.message}`);
        if (otherWrite === 'ok') await other.execute("DELETE FROM notes WHERE body = 'x'").catch(() => {});

        // Space frees up: writes succeed again, with no restart.
        unlinkSync(filler);
        phase = 'freed';
        const until = Date.now() + 20_000;
        while (okAfterFree.n < 50 && Date.now() < until) await sleep(50);
        assert.ok(okAfterFree.n >= 50, `only ${okAfterFree.n} writes succeeded after the space was freed`);
        stop = true;
        await Promise.all(work);

        // A failed batch left none of its rows (the batch is one transaction).
        const present = new Set((await reader.execute('SELECT k FROM t')).rows.map((r) => r.k));
        const partial = failures.filter((f) => f.keys.length > 1 &&
          f.keys.some((k) => present.has(k)) && !f.keys.every((k) => present.has(k)));
        assert.deepEqual(partial.slice(0, 3).map((f) => f.keys), [], 'failed batches that left some of their rows');
        assert.deepEqual((await reader.execute('PRAGMA integrity_check')).rows.map((r) => r[0]), ['ok']);
        reader.close();
        t.diagnostic(`${acked.size} rows acknowledged; ${failures.length} writes failed ` +
                     `(${failures.filter((f) => f.phase === 'full').length} with the disk full)`);
      } finally {
        stop = true;
        await Promise.all(work);
        for (const c of clients) c.close();
        other.close();
      }

      // kill -9, restart: every acknowledged row survived, and the log agrees with the database.
      await server.kill();
      server = await startServer({ dataDir });
      const c = createClient({ url: server.url });
      const after = new Set((await c.execute('SELECT k FROM t')).rows.map((r) => r.k));
      const lost = [...acked].filter((k) => !after.has(k));
      assert.deepEqual(lost.slice(0, 5), [], `${lost.length} acknowledged rows lost after the restart`);
      assert.deepEqual((await c.execute('PRAGMA integrity_check')).rows.map((r) => r[0]), ['ok']);
      c.close();
      // Open the other namespace too (databases open on first use), so that the clean stop folds
      // its WAL into the file, as `quire log verify` needs.
      const o = createClient({ url: server.url, fetch: (req) => { req.headers.set('x-namespace', 'other'); return fetch(req); } });
      assert.deepEqual((await o.execute('SELECT body FROM notes ORDER BY id LIMIT 1')).rows.map((r) => r.body), ['written before the disk filled']);
      o.close();
      await server.stop();
      for (const ns of ['default', 'other']) {
        const out = execFileSync(quireBin(), ['log', 'verify', '--data', dataDir, '--namespace', ns], { encoding: 'utf8' });
        t.diagnostic(`log verify ${ns}: ${out.trim().split('\n').pop()}`);
      }
    });
});
