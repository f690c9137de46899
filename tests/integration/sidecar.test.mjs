// `quire replicate` (sidecar mode, docs/sidecar.md) end to end, against a file:// store and a
// real S3 server (s3rver): a Python sqlite3 writer (WAL mode, its own auto-checkpoint, inserts,
// updates and deletes) and the sqlite3 CLI write while the sidecar runs; the sidecar is stopped
// with SIGTERM (exit 0); the database is deleted and `quire restore` must bring back every row,
// and, at a timestamp recorded mid-workload, exactly the rows of that moment. A second scenario
// kills the sidecar with SIGKILL mid-workload and restarts it (the restore must have
// everything), then truncates the WAL while the sidecar is stopped (a new lineage: the restore
// must still be right, and the old lineage still restorable by time).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';

import { startS3rver } from './s3.mjs';
import { quireBin, sleep } from './server.mjs';

const tmpDirs = [];
function tmp() {
  const dir = mkdtempSync(path.join(tmpdir(), 'quire-sidecar-'));
  tmpDirs.push(dir);
  return dir;
}
// Sidecars still running when a test fails are killed, so a failure never hangs the run.
const children = new Set();
function killAll() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
}
after(() => {
  killAll();
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

// The application: rows with deterministic bodies; every 10th commit also updates an earlier
// row, every 50th deletes one; each commit is its own transaction. At row `mark` it pauses,
// writes the rows as they are then to `markFile` with the time (the sidecar captures every
// 0.1 s, so a second on each side is plenty), and pauses again.
const WRITER = String.raw`
import datetime, hashlib, json, sqlite3, sys, time
db, first, last, mark, mark_file, delay = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
c = sqlite3.connect(db, timeout=20, isolation_level=None)
assert c.execute('PRAGMA journal_mode=WAL').fetchone()[0] == 'wal'
c.execute('PRAGMA busy_timeout=20000')
def body(i):
    return hashlib.sha256(str(i).encode()).digest() * 16
def dump():
    return [[r[0], r[1], r[2].hex()] for r in c.execute('SELECT id, name, body FROM t ORDER BY id')]
for i in range(first, last + 1):
    c.execute('BEGIN')
    c.execute('INSERT INTO t (id, name, body) VALUES (?, ?, ?)', (i, 'row-%d' % i, body(i)))
    if i % 10 == 0:
        c.execute("UPDATE t SET name = name || '-u' WHERE id = ?", (i - 5,))
    if i % 50 == 0:
        c.execute('DELETE FROM t WHERE id = ?', (i - 25,))
    c.execute('COMMIT')
    if i == mark:
        time.sleep(1.0)
        at = datetime.datetime.now(datetime.timezone.utc).isoformat()
        with open(mark_file, 'w') as f:
            json.dump({'at': at, 'rows': dump()}, f)
        time.sleep(1.0)
    if delay:
        time.sleep(delay)
print('wrote', first, last)
`;

const DUMP = String.raw`
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(json.dumps([[r[0], r[1], r[2].hex()] for r in c.execute('SELECT id, name, body FROM t ORDER BY id')]))
print(c.execute('PRAGMA integrity_check').fetchone()[0])
`;

const SETUP = String.raw`
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
assert c.execute('PRAGMA journal_mode=WAL').fetchone()[0] == 'wal'
c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)')
c.commit()
`;

const TRUNCATE = String.raw`
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
r = c.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()
assert r[0] == 0, r
print('truncated', r)
`;

function run(cmd, args, { input, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => { stdout += c; });
    child.stderr.setEncoding('utf8').on('data', (c) => { stderr += c; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

async function ok(cmd, args, opts) {
  const r = await run(cmd, args, opts);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

afterEach(() => killAll());

let scripts;
before(() => {
  const dir = tmp();
  scripts = {};
  for (const [name, text] of Object.entries({ WRITER, DUMP, SETUP, TRUNCATE })) {
    scripts[name] = path.join(dir, `${name.toLowerCase()}.py`);
    writeFileSync(scripts[name], text);
  }
});

const python = (name, args) => ok('python3', [scripts[name], ...args]);

function write(db, first, last, { mark = 0, markFile = '-', delay = 0 } = {}) {
  return python('WRITER', [db, String(first), String(last), String(mark), markFile, String(delay)]);
}

// The sqlite3 CLI as a second writer: one multi-row transaction and an update.
async function cliWrite(db, first, last) {
  const sql = `.timeout 20000
BEGIN;
WITH RECURSIVE n(i) AS (SELECT ${first} UNION ALL SELECT i + 1 FROM n WHERE i < ${last})
INSERT INTO t (id, name, body) SELECT i, 'cli-' || i, zeroblob(700) FROM n;
UPDATE t SET name = name || '-cli' WHERE id % 97 = 0;
COMMIT;
`;
  const r = await run('/usr/bin/sqlite3', [db], { input: sql });
  assert.equal(r.code, 0, `sqlite3 CLI failed: ${r.stdout}${r.stderr}`);
  assert.equal(r.stderr, '');
}

async function dump(db) {
  const out = (await python('DUMP', [db])).trim().split('\n');
  assert.equal(out[1], 'ok', `integrity_check of ${db}: ${out[1]}`);
  return JSON.parse(out[0]);
}

function startSidecar(db, url, env, extra = []) {
  const child = spawn(quireBin(), ['replicate', db, url, '--interval', '0.3', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  children.add(child);
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8').on('data', (c) => { stderr += c; });
  child.stdout.setEncoding('utf8').on('data', (c) => { stdout += c; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let done = null;
  exited.then((r) => { done = r; });
  return {
    logs: () => stderr + stdout,
    async ready() {
      const deadline = Date.now() + 20000;
      while (!/\] replicating /.test(stderr)) {
        if (done) throw new Error(`quire replicate exited ${JSON.stringify(done)}:\n${stderr}`);
        if (Date.now() > deadline) throw new Error(`quire replicate did not start:\n${stderr}`);
        await sleep(20);
      }
    },
    async stop() {
      child.kill('SIGTERM');
      const r = await exited;
      assert.deepEqual(r, { code: 0, signal: null }, `quire replicate did not stop cleanly:\n${stderr}`);
      return stderr;
    },
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

function lineageOf(logs) {
  return [...logs.matchAll(/starting a new lineage, log ([0-9a-f-]{36})/g)].map((m) => m[1]);
}

async function restore(url, env, out, extra = []) {
  return ok(quireBin(), ['restore', '--backup-url', url, '-n', 'app.db', '-o', out, '--verify', ...extra], { env });
}

function removeDb(db) {
  for (const suffix of ['', '-wal', '-shm']) rmSync(db + suffix, { force: true });
}

const stores = [
  { name: 'file://', open: async () => { const d = tmp(); return { url: `file://${path.join(d, 'store')}`, env: {}, stop: async () => {} }; } },
  {
    name: 's3rver',
    open: async () => {
      const s3 = await startS3rver({ bucket: 'sidecar' });
      return { url: s3.url(`run-${Date.now()}`), env: s3.env, stop: () => s3.stop() };
    },
  },
];

for (const kind of stores) {
  describe(`quire replicate to ${kind.name}`, () => {
    test('a Python and a sqlite3 CLI writer; stop; delete; restore latest and point in time', async () => {
      const store = await kind.open();
      try {
        const root = tmp();
        const db = path.join(root, 'app.db');
        await python('SETUP', [db]);
        const sidecar = startSidecar(db, store.url, store.env);
        await sidecar.ready();
        const markFile = path.join(root, 'mark.json');
        // About 1700 frames: the WAL passes the checkpoint threshold and starts over.
        await write(db, 1, 1200, { mark: 600, markFile });
        await cliWrite(db, 5000, 5300);
        await write(db, 1201, 1400);
        await sleep(500);
        const logs = await sidecar.stop();
        assert.match(logs, /shipped frames \d+\.\.\d+ to .*: \d+ transactions.*, \d+ objects, \d+ bytes/);
        assert.match(logs, /checkpointed the WAL/);
        assert.equal(lineageOf(logs).length, 1, logs);

        const expected = await dump(db);
        assert.ok(expected.length > 1500);
        removeDb(db);

        const out = await restore(store.url, store.env, db);
        assert.match(out, new RegExp(`from lineage ${lineageOf(logs)[0]}`));
        assert.deepEqual(await dump(db), expected);

        const mark = JSON.parse(readFileSync(markFile, 'utf8'));
        const early = path.join(root, 'early.db');
        await restore(store.url, store.env, early, ['--timestamp', mark.at]);
        assert.deepEqual(await dump(early), mark.rows);
        assert.equal(mark.rows[mark.rows.length - 1][0], 600);
      } finally {
        killAll();
        await store.stop();
      }
    });

    test('kill -9 mid-workload and restart: nothing lost; TRUNCATE while stopped: a new lineage', async () => {
      const store = await kind.open();
      try {
        const root = tmp();
        const db = path.join(root, 'app.db');
        await python('SETUP', [db]);
        let sidecar = startSidecar(db, store.url, store.env);
        await sidecar.ready();
        const first = lineageOf(sidecar.logs());
        assert.equal(first.length, 1);

        // The writer runs for about 3 s; the sidecar dies in the middle and comes back.
        let writerDone = false;
        const writing = write(db, 1, 1500, { delay: 0.002 }).finally(() => { writerDone = true; });
        // Kill once the store holds some of the writer's transactions, while it still writes.
        const deadline = Date.now() + 30000;
        while (!/shipped frames .*: [1-9]\d* transactions/.test(sidecar.logs())) {
          assert.ok(Date.now() < deadline, `nothing shipped:\n${sidecar.logs()}`);
          await sleep(20);
        }
        await sleep(200);
        assert.equal(writerDone, false, 'the writer finished before the kill');
        await sidecar.kill9();
        await sleep(100);
        sidecar = startSidecar(db, store.url, store.env);
        await sidecar.ready();
        // Either it resumes its log (the WAL went on), or the application restarted the WAL
        // meanwhile (its auto-checkpoint) and the sidecar says why it starts over.
        const resumed = new RegExp(`resumed log ${first[0]} at frame \\d+`).test(sidecar.logs());
        assert.ok(resumed || /the WAL was restarted while the sidecar was not running/.test(sidecar.logs()),
          sidecar.logs());
        if (process.env.SIDECAR_TEST_VERBOSE) console.log(resumed ? 'resumed' : 'new lineage');
        assert.equal(writerDone, false, 'the writer finished before the restart');
        await writing;
        await cliWrite(db, 5000, 5100);
        await sleep(400);
        const restarted = await sidecar.stop();
        const expectedBefore = await dump(db);
        const beforeTruncate = new Date().toISOString();
        await sleep(50);

        // While no sidecar runs: the application empties the WAL, then writes on.
        await python('TRUNCATE', [db]);
        await write(db, 1501, 1600);
        await cliWrite(db, 6000, 6050);
        sidecar = startSidecar(db, store.url, store.env);
        await sidecar.ready();
        assert.match(sidecar.logs(), /starting a new lineage, log [0-9a-f-]{36}: the WAL was (checkpointed and truncated or removed|restarted) while the sidecar was not running/);
        const second = lineageOf(sidecar.logs());
        assert.equal(second.length, 1);
        assert.ok(!lineageOf(restarted).includes(second[0]));
        await write(db, 1601, 1650);
        await sleep(400);
        await sidecar.stop();

        const expected = await dump(db);
        assert.ok(expected.length > expectedBefore.length);
        removeDb(db);
        const out = await restore(store.url, store.env, db);
        assert.match(out, new RegExp(`from lineage ${second[0]}`));
        assert.deepEqual(await dump(db), expected);

        // The older lineage still restores the state before the truncation.
        const old = path.join(root, 'old.db');
        const oldOut = await restore(store.url, store.env, old, ['--timestamp', beforeTruncate]);
        assert.doesNotMatch(oldOut, new RegExp(`from lineage ${second[0]}`));
        assert.deepEqual(await dump(old), expectedBefore);
      } finally {
        killAll();
        await store.stop();
      }
    });
  });
}

describe('quire replicate options', () => {
  test('--encryption-key-file seals the backup: restore needs the key', async () => {
    const root = tmp();
    const db = path.join(root, 'app.db');
    await python('SETUP', [db]);
    const keyFile = path.join(root, 'key');
    writeFileSync(keyFile, `${'0123456789abcdef'.repeat(4)}\n`);
    const url = `file://${path.join(root, 'store')}`;
    const sidecar = startSidecar(db, url, {}, ['--encryption-key-file', keyFile, '--retention', '1h',
      '--prefix', 'app.db']);
    await sidecar.ready();
    await write(db, 1, 100);
    await cliWrite(db, 500, 600);
    await sleep(400);
    await sidecar.stop();
    const expected = await dump(db);
    removeDb(db);
    const plain = await run(quireBin(), ['restore', '--backup-url', url, '-n', 'app.db', '-o', db]);
    assert.notEqual(plain.code, 0, plain.stdout);
    assert.equal(existsSync(db), false);
    await restore(url, {}, db, ['--encryption-key-file', keyFile]);
    assert.deepEqual(await dump(db), expected);
    assert.equal((await run(quireBin(), ['replicate', db, url, '--retention', 'forever'])).code, 2);
  });
});

describe('quire replicate refusals', () => {
  test('a database not in WAL mode, a missing one, a second sidecar, bad usage', async () => {
    const root = tmp();
    const db = path.join(root, 'plain.db');
    await ok('/usr/bin/sqlite3', [db, 'CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)']);
    const url = `file://${path.join(root, 'store')}`;
    const notWal = await run(quireBin(), ['replicate', db, url]);
    assert.equal(notWal.code, 1);
    assert.match(notWal.stderr, /not in WAL mode/);
    assert.equal(existsSync(`${db}-quire/log`), false);

    const missing = await run(quireBin(), ['replicate', path.join(root, 'nope.db'), url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /does not exist/);

    assert.equal((await run(quireBin(), ['replicate', db])).code, 2);
    assert.equal((await run(quireBin(), ['replicate', db, url, '--backup-url', url])).code, 2);

    // --enable-wal switches it; a second sidecar on the same database is refused.
    const sidecar = startSidecar(db, url, {}, ['--enable-wal']);
    await sidecar.ready();
    const second = await run(quireBin(), ['replicate', db, url]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /another `quire replicate`/);
    await sidecar.stop();
    const help = await ok(quireBin(), ['replicate', '--help']);
    assert.match(help, /Guarantees/);
    assert.match(help, /quire restore --backup-url .* -n app\.db/);
  });
});
