// `quire backup` and `quire restore` end to end: a server writes rows, stops; its namespace's
// log is backed up to a file:// store (twice: the second run uploads nothing), the data
// directory is deleted, and restore brings back every row (latest, --verify), only the early
// rows (--timestamp), refuses to overwrite, and fails with exit 1 naming a corrupted batch.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import { createClient } from '@libsql/client';

import { ok, quire, readRows, tmp, walk } from './cli-helpers.mjs';
import { sleep, startServer } from './server.mjs';

describe('quire backup / quire restore', () => {
  test('backs up a stopped server, restores latest and point in time, detects corruption', async () => {
    const root = tmp('quire-backup-cli-');
    const dataDir = path.join(root, 'data');
    const storeDir = path.join(root, 'store');
    const url = `file://${storeDir}`;

    // Rows with deterministic bodies; the second phase writes enough (about 6 MiB) for
    // several batches.
    const written = [];
    const server = await startServer({ dataDir });
    let noted;
    try {
      const c = createClient({ url: server.url });
      await c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)');
      for (let i = 1; i <= 20; i++) {
        const body = Buffer.alloc(100, i);
        await c.execute({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [i, `early-${i}`, body] });
        written.push({ id: i, name: `early-${i}`, body: body.toString('hex').toUpperCase() });
      }
      await sleep(50);
      noted = new Date().toISOString();
      await sleep(50);
      for (let i = 21; i <= 380; i++) {
        const body = Buffer.alloc(60000, i % 251);
        body.writeUInt32BE(i, 0);
        await c.execute({ sql: 'INSERT INTO t VALUES (?, ?, ?)', args: [i, `late-${i}`, body] });
        written.push({ id: i, name: `late-${i}`, body: body.toString('hex').toUpperCase() });
      }
      await c.execute({ sql: 'UPDATE t SET name = ? WHERE id = 3', args: ['early-3-updated'] });
      written[2].name = 'early-3-updated';
      c.close();
    } finally {
      await server.stop();
    }

    // Offline: a missing log is refused with the path that failed.
    const missing = await quire(['backup', '--data', path.join(root, 'nope'), '--backup-url', url]);
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /cannot open the log of namespace 'default'/);

    const first = await ok(['backup', '--data', dataDir, '--backup-url', url]);
    assert.match(first, /uploaded batch /);
    const batchCount = (first.match(/uploaded batch /g) ?? []).length;
    assert.ok(batchCount >= 2, `expected several batches:\n${first}`);
    const second = await ok(['backup', '--data', dataDir, '--backup-url', url]);
    assert.match(second, /uploaded nothing/);
    assert.doesNotMatch(second, /uploaded (batch|snapshot)/);

    rmSync(dataDir, { recursive: true, force: true });

    // Latest, verified: every row as written.
    const out = path.join(root, 'out.db');
    const restored = await ok(['restore', '--backup-url', url, '-o', out, '--verify']);
    assert.match(restored, /frame: +\d+/);
    assert.match(restored, /commit time: +\d{4}-\d\d-\d\dT/);
    assert.match(restored, /size: +\d+ pages/);
    assert.match(restored, /integrity_check: ok/);
    assert.deepEqual(readRows(out), written);

    // Refuses to overwrite without --force; overwrites with it.
    const refused = await quire(['restore', '--backup-url', url, '-o', out]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /already exists.*--force/);
    await ok(['restore', '--backup-url', url, '-o', out, '--force', '--verify']);
    assert.deepEqual(readRows(out), written);

    // Point in time: only the early rows (before the update of row 3).
    const early = path.join(root, 'early.db');
    const pit = await ok(['restore', '--backup-url', url, '--timestamp', noted, '-o', early, '--verify']);
    assert.match(pit, /integrity_check: ok/);
    const expectedEarly = written.slice(0, 20).map((r) => (r.id === 3 ? { ...r, name: 'early-3' } : r));
    assert.deepEqual(readRows(early), expectedEarly);

    // Bad arguments are usage errors.
    assert.equal((await quire(['restore', '--backup-url', url, '--timestamp', 'yesterday', '-o', path.join(root, 'x.db')])).code, 2);
    assert.equal((await quire(['restore', '--backup-url', url, '--frame', '5', '--timestamp', noted, '-o', path.join(root, 'x.db')])).code, 2);
    assert.equal((await quire(['restore', '--backup-url', url])).code, 2);

    // A corrupted batch: exit 1, naming the object; no output file left behind.
    const batches = walk(storeDir).filter((p) => p.endsWith('.qbbat')).sort();
    assert.ok(batches.length >= 2);
    const victim = batches[batches.length - 1];
    const bytes = readFileSync(victim);
    bytes[Math.floor(bytes.length / 2)] ^= 0x40;
    writeFileSync(victim, bytes);
    const bad = path.join(root, 'bad.db');
    const failed = await quire(['restore', '--backup-url', url, '-o', bad]);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    assert.ok(failed.stderr.includes(path.basename(victim)), failed.stderr);
    assert.equal(existsSync(bad), false);

    // An empty store: exit 1 with a message.
    const none = await quire(['restore', '--backup-url', `file://${path.join(root, 'empty')}`, '-o', bad]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no backup/i);
  });
});
