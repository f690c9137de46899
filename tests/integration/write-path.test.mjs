// The write path under concurrency, through the real clients:
//
//   A. group commit: 32 @libsql/client clients (HTTP, then WebSocket) insert 50 rows each at
//      the same time; every answer (rowsAffected, lastInsertRowid, RETURNING id) must be what a
//      serial run would give: ids unique, exactly 1..N, each id holding the row its client sent.
//   B. a failing statement in a commit group fails only its own request: concurrent inserts of
//      which some hit a UNIQUE constraint (pre-existing keys, pairs of racing inserts of one key,
//      write batches failing at their second step); the rest succeed and are stored.
//      Also: ABORT/FAIL/ROLLBACK/IGNORE conflict algorithms inside a group, and a stream's
//      `SELECT last_insert_rowid(), changes()` after its group-committed writes (what one SQLite
//      connection per stream, as sqld has, gives; a new stream starts at 0, 0).
//   C. kill -9 during group commits: 16 writers as fast as they can, SIGKILL after ~1.5 s with
//      writes in flight, restart on the same data directory: every acknowledged insert is there,
//      nothing that was never sent is, and PRAGMA integrity_check says ok. With
//      `--synchronous full` and with the default (normal: a process crash must lose nothing
//      acknowledged either, the WAL is in the OS page cache before the answer goes out).
//   D. the transaction timeout (`--transaction-timeout SECONDS`, lock stealing): a stream that
//      holds the write lock between requests while another writer waits longer than the
//      timeout is rolled back; its statements then fail with TRANSACTION_TIMEOUT until it sends
//      ROLLBACK (succeeds) or COMMIT (fails with TRANSACTION_TIMEOUT). A holder nobody waits for
//      is never rolled back; read transactions never block writers; an autocommit write behind
//      a BEGIN IMMEDIATE holder waits and never sees SQLITE_BUSY (the last two also on a server
//      with default settings). The timeout counts from when the writer starts waiting, a holder
//      busy inside a request is never rolled back, and decimal timeouts (0.3) work.
//   E. BEGIN CONCURRENT (optimistic transactions, @libsql/hrana-client over HTTP): disjoint
//      rows both commit; the same row makes the second COMMIT fail with SQLITE_BUSY (extended
//      code SQLITE_BUSY_SNAPSHOT on the JSON wire) without a trace, and a retry succeeds; own
//      writes visible only to the own transaction; ROLLBACK leaves no trace; get_autocommit is
//      false inside; after a conflict every statement fails with SQLITE_BUSY until ROLLBACK.
//   F. bank transfers: 16 workers × 25 transfers between 20 accounts, read-then-write with
//      values computed client-side (a lost update would show), with BEGIN CONCURRENT (retrying
//      on SQLITE_BUSY) and with BEGIN IMMEDIATE: total balance unchanged, no negative balance,
//      the in-transaction transfer log matches the commits the workers saw and the balances.
//
// (A full write queue answering TRANSACTION_BUSY is not covered: hard to provoke from outside.)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createClient, LibsqlError } from '@libsql/client';
import { openHttp, openWs } from '@libsql/hrana-client';

import { sleep, startServer, useServer } from './server.mjs';

// Generous per-test bound: a hang fails the one test instead of the whole file's time limit.
const T = { timeout: 20_000 };

const wsUrl = (server) => server.url.replace(/^http:/, 'ws:');

/** The Hrana error code of an error from @libsql/client (LibsqlError) or @libsql/hrana-client. */
const codeOf = (err) => err?.code ?? err?.cause?.code;

/** Awaits `promise`, which must reject with Hrana error code `code`; returns the error. */
async function expectCode(promise, code, what) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, `${what}: expected an error with code ${code}, but it succeeded`);
  assert.equal(codeOf(err), code, `${what}: expected code ${code}, got ${codeOf(err)}: ${err}`);
  return err;
}

/** { ok, value } or { ok: false, error }: for promises we inspect later. */
const settle = (promise) => promise.then((value) => ({ ok: true, value }), (error) => ({ ok: false, error }));

const elapsedSince = (t0) => performance.now() - t0;

/** A hrana-client (protocol 3, HTTP) for `server`, with intMode 'number'. */
const hranaClient = (server) => openHttp(server.url, undefined, undefined, undefined, 3);

/** A Hrana JSON execute request. */
const execute = (sql) => ({ type: 'execute', stmt: { sql, args: [], named_args: [], want_rows: true } });

/** POSTs a Hrana 3 JSON pipeline; asserts HTTP 200 and resolves to the parsed body. */
async function pipelineJson(server, baton, ...requests) {
  const resp = await fetch(`${server.url}/v3/pipeline`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ baton, requests }),
  });
  const text = await resp.text();
  assert.equal(resp.status, 200, text);
  return JSON.parse(text);
}

/** Runs `fn(stream)` on a fresh stream of `client` and closes the stream. */
async function withStream(client, fn) {
  const s = client.openStream();
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}

// ------------------------------------------------------------------------------------------------
// A and B: group commit
// ------------------------------------------------------------------------------------------------

describe('group commit of autocommit writes', () => {
  const server = useServer();
  const TRANSPORTS = { http: (s) => s.url, ws: wsUrl };

  for (const [transport, urlOf] of Object.entries(TRANSPORTS)) {
    test(`32 clients × 50 concurrent inserts over ${transport} answer as a serial run would`, T, async () => {
      const CLIENTS = 32;
      const PER_CLIENT = 50;
      const table = `gc_${transport}`;
      const url = urlOf(server);
      const admin = createClient({ url });
      const clients = Array.from({ length: CLIENTS }, () => createClient({ url }));
      try {
        await admin.execute(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v INTEGER NOT NULL)`);
        const perClient = await Promise.all(clients.map(async (c, w) => {
          const mine = [];
          for (let i = 0; i < PER_CLIENT; i++) {
            const k = `w${w}-${i}`;
            const v = w * 1000 + i;
            if (i % 2 === 0) {
              const r = await c.execute({ sql: `INSERT INTO ${table} (k, v) VALUES (?, ?) RETURNING id`, args: [k, v] });
              assert.equal(r.rowsAffected, 1, `${k}: rowsAffected`);
              assert.equal(r.rows.length, 1, `${k}: RETURNING rows`);
              assert.equal(typeof r.lastInsertRowid, 'bigint', `${k}: lastInsertRowid ${r.lastInsertRowid}`);
              assert.equal(BigInt(r.rows[0].id), r.lastInsertRowid, `${k}: RETURNING id vs lastInsertRowid`);
              mine.push({ id: Number(r.lastInsertRowid), k, v });
            } else {
              const r = await c.execute({ sql: `INSERT INTO ${table} (k, v) VALUES (?, ?)`, args: [k, v] });
              assert.equal(r.rowsAffected, 1, `${k}: rowsAffected`);
              assert.equal(typeof r.lastInsertRowid, 'bigint', `${k}: lastInsertRowid ${r.lastInsertRowid}`);
              mine.push({ id: Number(r.lastInsertRowid), k, v });
            }
          }
          return mine;
        }));
        const answered = perClient.flat().sort((a, b) => a.id - b.id);
        const n = CLIENTS * PER_CLIENT;
        assert.equal(new Set(answered.map((r) => r.id)).size, n, 'two inserts were answered the same rowid');
        assert.deepEqual(answered.map((r) => r.id), Array.from({ length: n }, (_, i) => i + 1),
                         'the answered rowids are not exactly 1..N');
        const stored = await admin.execute(`SELECT id, k, v FROM ${table} ORDER BY id`);
        assert.deepEqual(stored.rows.map((r) => ({ id: r.id, k: r.k, v: r.v })), answered,
                         'the table does not hold exactly the rows under the ids the clients were told');
      } finally {
        for (const c of clients) c.close();
        admin.close();
      }
    });

    test(`a constraint failure in a commit group fails only its own request (${transport})`, T, async () => {
      const table = `gcfail_${transport}`;
      const url = urlOf(server);
      const admin = createClient({ url });
      const clients = Array.from({ length: 32 }, () => createClient({ url }));
      try {
        await admin.execute(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE)`);
        const TAKEN = 40;
        await admin.batch(Array.from({ length: TAKEN }, (_, i) => ({
          sql: `INSERT INTO ${table} (k) VALUES (?)`, args: [`taken-${i}`],
        })), 'write');

        // Jobs: fresh keys (must succeed), existing keys (must fail, with the ABORT, FAIL and
        // ROLLBACK conflict algorithms; OR ROLLBACK ends the transaction the group shares, the
        // other requests of the group must not notice), existing keys with OR IGNORE (succeed,
        // 0 rows), pairs racing for one key (exactly one wins), and write batches whose second
        // insert fails (nothing of them stays).
        const insert = (k, verb = 'INSERT') => ({ kind: 'insert', k, verb });
        const VERBS = ['INSERT', 'INSERT OR FAIL', 'INSERT OR ROLLBACK'];
        const jobs = [
          ...Array.from({ length: 240 }, (_, i) => ({ ...insert(`new-${i}`), expect: 'ok' })),
          ...Array.from({ length: TAKEN }, (_, i) => ({ ...insert(`taken-${i}`, VERBS[i % 3]), expect: 'constraint' })),
          ...Array.from({ length: 10 }, (_, i) => ({ ...insert(`taken-${i}`, 'INSERT OR IGNORE'), expect: 'ignored' })),
          ...Array.from({ length: 30 }, (_, i) => [
            { ...insert(`pair-${i}`), expect: 'pair' }, { ...insert(`pair-${i}`), expect: 'pair' },
          ]).flat(),
          ...Array.from({ length: 20 }, (_, i) => ({ kind: 'batch', k: `batch-${i}`, dup: `taken-${i}`, expect: 'constraint' })),
        ];
        for (let i = jobs.length - 1; i > 0; i--) { // shuffle, so failures are spread over the groups
          const j = Math.floor(Math.random() * (i + 1));
          [jobs[i], jobs[j]] = [jobs[j], jobs[i]];
        }
        let next = 0;
        await Promise.all(clients.map(async (c) => {
          while (next < jobs.length) {
            const job = jobs[next++];
            job.result = await settle(job.kind === 'insert'
              ? c.execute({ sql: `${job.verb} INTO ${table} (k) VALUES (?)`, args: [job.k] })
              : c.batch([
                { sql: `INSERT INTO ${table} (k) VALUES (?)`, args: [job.k] },
                { sql: `INSERT INTO ${table} (k) VALUES (?)`, args: [job.dup] },
              ], 'write'));
          }
        }));

        const describeResult = (job) => `${job.verb ?? job.kind} ${job.k}: ` +
          (job.result.ok ? 'ok' : `${codeOf(job.result.error)} ${job.result.error.message}`);
        const idOf = new Map();
        for (const job of jobs.filter((j) => j.expect === 'ok')) {
          assert.ok(job.result.ok, describeResult(job));
          assert.equal(job.result.value.rowsAffected, 1, describeResult(job));
          idOf.set(job.k, Number(job.result.value.lastInsertRowid));
        }
        for (const job of jobs.filter((j) => j.expect === 'constraint')) {
          assert.ok(!job.result.ok, `${describeResult(job)} (expected a UNIQUE violation)`);
          assert.equal(codeOf(job.result.error), 'SQLITE_CONSTRAINT', describeResult(job));
          assert.match(job.result.error.message, /UNIQUE constraint failed/, describeResult(job));
        }
        for (const job of jobs.filter((j) => j.expect === 'ignored')) {
          assert.ok(job.result.ok, describeResult(job));
          assert.equal(job.result.value.rowsAffected, 0, describeResult(job));
        }
        for (let i = 0; i < 30; i++) {
          const pair = jobs.filter((j) => j.k === `pair-${i}`);
          const winners = pair.filter((j) => j.result.ok);
          assert.equal(winners.length, 1, `pair-${i}: ${pair.map(describeResult).join('; ')}`);
          const loser = pair.find((j) => !j.result.ok);
          assert.equal(codeOf(loser.result.error), 'SQLITE_CONSTRAINT', describeResult(loser));
          idOf.set(winners[0].k, Number(winners[0].result.value.lastInsertRowid));
        }

        const stored = await admin.execute(`SELECT id, k FROM ${table} ORDER BY k`);
        const expected = [
          ...Array.from({ length: TAKEN }, (_, i) => `taken-${i}`),
          ...Array.from({ length: 240 }, (_, i) => `new-${i}`),
          ...Array.from({ length: 30 }, (_, i) => `pair-${i}`),
        ].sort();
        assert.deepEqual(stored.rows.map((r) => r.k), expected, 'the table does not hold exactly the successful inserts');
        for (const row of stored.rows) {
          if (idOf.has(row.k)) assert.equal(row.id, idOf.get(row.k), `${row.k} is stored under another id than answered`);
        }
      } finally {
        for (const c of clients) c.close();
        admin.close();
      }
    });
  }
});

describe('group commit keeps per-stream connection state', () => {
  // A serial run on one SQLite connection per stream (as sqld gives every stream) answers
  // `SELECT last_insert_rowid(), changes()` with the stream's own last write, and a new stream
  // starts at 0, 0. Group-committed writes run on another connection; the stream must not notice.
  const server = useServer();
  const OPEN = { http: (s) => hranaClient(s), ws: (s) => openWs(wsUrl(s), undefined, 3) };

  for (const [transport, open] of Object.entries(OPEN)) {
    test(`last_insert_rowid() and changes() on a stream follow its own autocommit writes (${transport})`, T, async () => {
      const table = `lir_${transport}`;
      const client = open(server);
      const others = Array.from({ length: 4 }, () => createClient({ url: server.url }));
      let stop = false;
      try {
        await withStream(client, (s) => s.run(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, who TEXT)`));
        // Streams that wrote and went away (two statements in one pipeline: their own connection).
        await Promise.all(Array.from({ length: 8 }, async () => {
          const body = await pipelineJson(server, null, execute(`INSERT INTO ${table} (who) VALUES ('gone')`),
                                          execute(`INSERT INTO ${table} (who) VALUES ('gone')`), { type: 'close' });
          assert.ok(body.results.every((r) => r.type === 'ok'), JSON.stringify(body));
        }));
        // Other clients write all along, so their values are around to be confused with ours.
        const background = others.map(async (c, i) => {
          while (!stop) await c.execute({ sql: `INSERT INTO ${table} (who) VALUES (?)`, args: [`other-${i}`] });
        });
        try {
          await withStream(client, async (s) => {
            const state = async () => {
              const row = (await s.queryRow('SELECT last_insert_rowid() AS l, changes() AS c')).row;
              return [BigInt(row.l), row.c];
            };
            assert.deepEqual(await state(), [0n, 0], 'a new stream sees the connection state of another stream');
            for (let i = 0; i < 10; i++) {
              const r = await s.run([`INSERT INTO ${table} (who) VALUES (?)`, [`mine-${i}`]]);
              assert.deepEqual(await state(), [r.lastInsertRowid, 1], `after insert ${i}`);
              const u = await s.run([`UPDATE ${table} SET who = who || '!' WHERE id <= ?`, [3]]);
              assert.equal(u.affectedRowCount, 3);
              assert.deepEqual(await state(), [r.lastInsertRowid, 3], `after update ${i}`);
            }
          });
        } finally {
          stop = true;
          await Promise.all(background);
        }
      } finally {
        others.forEach((c) => c.close());
        client.close();
      }
    });
  }
});

// ------------------------------------------------------------------------------------------------
// C: kill -9 while group commits are in flight
// ------------------------------------------------------------------------------------------------

describe('kill -9 during group commits', () => {
  for (const sync of ['full', 'normal']) {
    const args = sync === 'full' ? ['--synchronous', 'full'] : [];
    test(`every acknowledged insert survives SIGKILL (${sync === 'full' ? '--synchronous full' : 'default synchronous=normal'})`, T, async (t) => {
      const WRITERS = 16;
      const first = await startServer({ args });
      let second;
      const clients = [];
      try {
        const admin = createClient({ url: first.url });
        await admin.execute('CREATE TABLE crash (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, pad TEXT)');
        admin.close();

        const attempted = new Set();
        const acked = new Set();
        const errorsBeforeKill = [];
        let killing = false;
        for (let w = 0; w < WRITERS; w++) clients.push(createClient({ url: first.url }));
        const writers = clients.map(async (c, w) => {
          for (let i = 0; !killing; i++) {
            const k = `w${w}-${i}`;
            attempted.add(k);
            try {
              await c.execute({ sql: 'INSERT INTO crash (k, pad) VALUES (?, ?)', args: [k, 'x'.repeat(100 + (i % 400))] });
              acked.add(k);
            } catch (err) {
              if (!killing) errorsBeforeKill.push(`${k}: ${err}`);
              return;
            }
          }
        });

        await sleep(1500);
        killing = true;
        const inFlight = attempted.size - acked.size; // requests sent and not yet answered
        const exit = await first.kill(); // SIGKILL, with the writers' requests in flight
        await Promise.all(writers);
        for (const c of clients) c.close();
        assert.equal(exit.signal, 'SIGKILL', `the server was not killed by SIGKILL: ${JSON.stringify(exit)}`);
        assert.deepEqual(errorsBeforeKill, [], 'inserts failed before the kill');
        assert.ok(acked.size >= 100, `only ${acked.size} inserts were acknowledged in 1.5 s`);
        assert.ok(inFlight > 0, 'no write was in flight at the kill');

        second = await startServer({ args, dataDir: first.dataDir });
        const after = createClient({ url: second.url });
        try {
          const integrity = await after.execute('PRAGMA integrity_check');
          assert.deepEqual(integrity.rows.map((r) => r[0]), ['ok']);
          const present = new Set((await after.execute('SELECT k FROM crash')).rows.map((r) => r.k));
          const lost = [...acked].filter((k) => !present.has(k));
          assert.deepEqual(lost.slice(0, 20), [], `${lost.length} of ${acked.size} acknowledged inserts were lost`);
          const invented = [...present].filter((k) => !attempted.has(k));
          assert.deepEqual(invented, [], 'rows nobody inserted');
          const unackedKept = [...present].filter((k) => !acked.has(k)).length;
          t.diagnostic(`${acked.size} acknowledged, ${inFlight} in flight at the kill, ` +
                       `${unackedKept} of those made it anyway`);
          // The restarted server takes writes.
          const r = await after.execute({ sql: 'INSERT INTO crash (k) VALUES (?)', args: ['after-restart'] });
          assert.equal(r.rowsAffected, 1);
        } finally {
          after.close();
        }
      } finally {
        for (const c of clients) c.close();
        if (second) await second.stop();
        await first.stop(); // after kill() this only removes the data directory
      }
    });
  }
});

// ------------------------------------------------------------------------------------------------
// D: transaction timeout (lock stealing) and waiting for the write lock
// ------------------------------------------------------------------------------------------------

/** Asserts that no write was answered SQLITE_BUSY or failed in any other way. */
function assertAllWritesOk(results, what) {
  const failures = results.filter((r) => !r.ok).map((r) => `${codeOf(r.error)}: ${r.error.message}`);
  assert.deepEqual(failures, [], `${what}: writes failed`);
  for (const r of results) assert.equal(r.value.rowsAffected, 1);
}

/** Starts `n` autocommit inserts into `table`, half over HTTP and half over WebSocket. */
function autocommitWriters(server, table, n, label) {
  const clients = Array.from({ length: n }, (_, i) => createClient({ url: i % 2 ? wsUrl(server) : server.url }));
  const t0 = performance.now();
  const results = clients.map((c, i) => settle(c.execute({
    sql: `INSERT INTO ${table} (who) VALUES (?)`, args: [`${label}-${i}`],
  })).then((r) => ({ ...r, ms: elapsedSince(t0) })));
  return { results: Promise.all(results), close: () => clients.forEach((c) => c.close()) };
}

describe('transaction timeout (--transaction-timeout 1)', () => {
  const server = useServer({ args: ['--transaction-timeout', '1'] });
  let hc;
  before(() => { hc = hranaClient(server); });
  after(() => hc?.close());

  for (const transport of ['http', 'ws']) {
    test(`a parked write transaction with a waiting writer is rolled back after ~1 s (@libsql/client, ${transport})`, T, async () => {
      const table = `tt_client_${transport}`;
      const a = createClient({ url: transport === 'ws' ? wsUrl(server) : server.url });
      const b = createClient({ url: server.url });
      try {
        await b.execute(`CREATE TABLE ${table} (who TEXT)`);
        const tx = await a.transaction('write');
        try {
          assert.equal((await tx.execute(`INSERT INTO ${table} VALUES ('holder')`)).rowsAffected, 1);
          const t0 = performance.now();
          const r = await b.execute(`INSERT INTO ${table} VALUES ('waiter')`); // must neither fail nor see SQLITE_BUSY
          const waited = elapsedSince(t0);
          assert.equal(r.rowsAffected, 1);
          assert.ok(waited >= 900 && waited < 3500, `the waiting write took ${waited.toFixed(0)} ms, expected about 1 s`);

          const err = await expectCode(tx.execute('SELECT 1'), 'TRANSACTION_TIMEOUT', 'the holder\'s next statement');
          assert.ok(err instanceof LibsqlError, `not a LibsqlError: ${err}`);
          await expectCode(tx.execute(`INSERT INTO ${table} VALUES ('holder again')`), 'TRANSACTION_TIMEOUT',
                           'a later statement of the rolled-back transaction');
          await tx.rollback(); // ROLLBACK succeeds and ends the aborted state
        } finally {
          tx.close();
        }
        const rows = await b.execute(`SELECT who FROM ${table} ORDER BY rowid`);
        assert.deepEqual(rows.rows.map((x) => x.who), ['waiter'], 'the rolled-back transaction left a trace');
      } finally {
        a.close();
        b.close();
      }
    });
  }

  test('the timeout counts from when a writer starts waiting, not from BEGIN', T, async () => {
    await withStream(hc, async (holder) => {
      await holder.run('CREATE TABLE tt_since (who TEXT)');
      await holder.run('BEGIN IMMEDIATE');
      await holder.run("INSERT INTO tt_since VALUES ('holder')");
      await sleep(1500); // parked with nobody waiting: longer than the timeout, and harmless
      const t0 = performance.now();
      const waiter = createClient({ url: server.url });
      try {
        const r = await waiter.execute("INSERT INTO tt_since VALUES ('waiter')");
        assert.equal(r.rowsAffected, 1);
      } finally {
        waiter.close();
      }
      const waited = elapsedSince(t0);
      assert.ok(waited >= 900 && waited < 3500, `the waiting write took ${waited.toFixed(0)} ms, expected about 1 s`);
      await expectCode(holder.run('COMMIT'), 'TRANSACTION_TIMEOUT', 'COMMIT of the stolen transaction');
    });
  });

  test('a holder busy inside a request is not rolled back, however long the writer waits', T, async () => {
    // A statement that takes ~3 s (longer than the 1 s timeout), calibrated on this machine; the
    // margin covers a probe slowed by other test files running beside this one.
    const slowSql = (n) => `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n}) SELECT count(*) FROM c`;
    const probeRows = 1_000_000;
    const t0 = performance.now();
    await withStream(hc, (s) => s.queryValue(slowSql(probeRows)));
    const rows = Math.min(100_000_000, Math.ceil(probeRows * 3000 / Math.max(1, elapsedSince(t0))));

    await withStream(hc, (s) => s.run('CREATE TABLE tt_busy (who TEXT)'));
    const first = await pipelineJson(server, null, execute('BEGIN IMMEDIATE'), execute("INSERT INTO tt_busy VALUES ('holder')"));
    assert.ok(first.results.every((r) => r.type === 'ok'), JSON.stringify(first));
    // One request: the slow statement, another insert and COMMIT; the holder never parks.
    const tHolder = performance.now();
    const second = pipelineJson(server, first.baton, execute(slowSql(rows)), execute("INSERT INTO tt_busy VALUES ('holder 2')"),
                                execute('COMMIT'), { type: 'close' });
    await sleep(100);
    const waiter = createClient({ url: server.url });
    try {
      const r = await waiter.execute("INSERT INTO tt_busy VALUES ('waiter')");
      assert.equal(r.rowsAffected, 1);
    } finally {
      waiter.close();
    }
    const answer = await second;
    const held = elapsedSince(tHolder);
    assert.deepEqual(answer.results.map((r) => r.type === 'ok' ? 'ok' : `${r.error.code}: ${r.error.message}`),
                     ['ok', 'ok', 'ok', 'ok'], 'the busy holder was interrupted');
    assert.ok(held > 1300, `the slow statement took only ${held.toFixed(0)} ms, the test proves nothing`);
    const stored = await withStream(hc, (s) => s.query('SELECT who FROM tt_busy ORDER BY rowid'));
    assert.deepEqual(stored.rows.map((x) => x.who), ['holder', 'holder 2', 'waiter']);
  });

  for (const { begin, end } of [
    { begin: ['BEGIN IMMEDIATE'], end: 'ROLLBACK' },
    { begin: ['BEGIN', 'WRITE'], end: 'COMMIT' }, // a deferred transaction that has written
  ]) {
    test(`after a timeout every statement fails with TRANSACTION_TIMEOUT until ${end} (${begin.join(' + ')})`, T, async () => {
      const table = `tt_${end.toLowerCase()}`;
      await withStream(hc, async (holder) => {
        await withStream(hc, async (other) => {
          await other.run(`CREATE TABLE ${table} (who TEXT)`);
          for (const sql of begin) await holder.run(sql === 'WRITE' ? `INSERT INTO ${table} VALUES ('holder')` : sql);
          assert.equal(await holder.getAutocommit(), false);

          const t0 = performance.now();
          const r = await other.run(`INSERT INTO ${table} VALUES ('waiter')`);
          const waited = elapsedSince(t0);
          assert.equal(r.affectedRowCount, 1);
          assert.ok(waited >= 900 && waited < 3500, `the waiting write took ${waited.toFixed(0)} ms, expected about 1 s`);

          for (const sql of ['SELECT 1', `INSERT INTO ${table} VALUES ('late')`, `SELECT count(*) FROM ${table}`]) {
            await expectCode(holder.run(sql), 'TRANSACTION_TIMEOUT', `after the timeout: ${sql}`);
          }
          if (end === 'COMMIT') {
            await expectCode(holder.run('COMMIT'), 'TRANSACTION_TIMEOUT', 'COMMIT of the rolled-back transaction');
          } else {
            await holder.run('ROLLBACK');
          }
          // The aborted state is over: the stream is an ordinary autocommit stream again.
          assert.equal(await holder.getAutocommit(), true);
          assert.equal((await holder.queryValue('SELECT 6 * 7')).value, 42);
          await holder.run(`INSERT INTO ${table} VALUES ('holder after')`);
          const rows = await other.query(`SELECT who FROM ${table} ORDER BY rowid`);
          assert.deepEqual(rows.rows.map((x) => x.who), ['waiter', 'holder after']);
        });
      });
    });
  }

  test('a write transaction nobody waits for is never rolled back (held 2.5 s)', T, async () => {
    await withStream(hc, async (s) => {
      await s.run('CREATE TABLE tt_nowaiter (who TEXT)');
      await s.run('BEGIN IMMEDIATE');
      await s.run("INSERT INTO tt_nowaiter VALUES ('first')");
      await sleep(2500);
      await s.run("INSERT INTO tt_nowaiter VALUES ('second')");
      await s.run('COMMIT');
      assert.equal(await s.getAutocommit(), true);
    });
    const rows = await withStream(hc, (s) => s.query('SELECT who FROM tt_nowaiter ORDER BY rowid'));
    assert.deepEqual(rows.rows.map((x) => x.who), ['first', 'second']);
  });

  test('autocommit writers behind a parked BEGIN IMMEDIATE get the lock after ~1 s, none sees SQLITE_BUSY', T, async () => {
    await withStream(hc, async (holder) => {
      await holder.run('CREATE TABLE tt_many (who TEXT)');
      await holder.run('BEGIN IMMEDIATE');
      await holder.run("INSERT INTO tt_many VALUES ('holder')");
      const writers = autocommitWriters(server, 'tt_many', 8, 'waiter');
      try {
        const results = await writers.results;
        assertAllWritesOk(results, 'behind a parked holder');
        const slowest = Math.max(...results.map((r) => r.ms));
        assert.ok(slowest < 3500, `the slowest waiting write took ${slowest.toFixed(0)} ms`);
      } finally {
        writers.close();
      }
      await expectCode(holder.run('COMMIT'), 'TRANSACTION_TIMEOUT', 'COMMIT of the stolen transaction');
      const n = await holder.queryValue("SELECT count(*) FROM tt_many WHERE who LIKE 'waiter-%'");
      assert.equal(n.value, 8);
      assert.equal((await holder.queryValue("SELECT count(*) FROM tt_many WHERE who = 'holder'")).value, 0);
    });
  });

  defineReadTransactionTests(server, () => hc, 'tt');
});

/**
 * Read transactions never block writers, and are not rolled back when held longer than the
 * transaction timeout while others write.
 */
function defineReadTransactionTests(server, getHrana, prefix) {
  test('a read transaction (@libsql/client transaction("read")) never blocks writers', T, async () => {
    const table = `${prefix}_read_client`;
    const reader = createClient({ url: server.url });
    const writer = createClient({ url: server.url });
    try {
      await writer.execute(`CREATE TABLE ${table} (who TEXT)`);
      await writer.execute(`INSERT INTO ${table} VALUES ('base')`);
      const tx = await reader.transaction('read');
      try {
        assert.equal((await tx.execute(`SELECT count(*) AS n FROM ${table}`)).rows[0].n, 1);
        for (let round = 0; round < 2; round++) {
          for (let i = 0; i < 3; i++) {
            const t0 = performance.now();
            await writer.execute({ sql: `INSERT INTO ${table} VALUES (?)`, args: [`w${round}-${i}`] });
            const ms = elapsedSince(t0);
            assert.ok(ms < 1000, `a write took ${ms.toFixed(0)} ms while a read transaction was open`);
          }
          if (round === 0) await sleep(1200); // longer than a 1 s transaction timeout
        }
        // Still the reader's snapshot, and not rolled back.
        assert.equal((await tx.execute(`SELECT count(*) AS n FROM ${table}`)).rows[0].n, 1);
        await tx.commit();
      } finally {
        tx.close();
      }
      assert.equal((await writer.execute(`SELECT count(*) AS n FROM ${table}`)).rows[0].n, 7);
    } finally {
      reader.close();
      writer.close();
    }
  });

  test('a read transaction (BEGIN DEFERRED + SELECT) never blocks writers', T, async () => {
    const table = `${prefix}_read_deferred`;
    await withStream(getHrana(), async (reader) => {
      await withStream(getHrana(), async (writer) => {
        await writer.run(`CREATE TABLE ${table} (who TEXT)`);
        await writer.run(`INSERT INTO ${table} VALUES ('base')`);
        await reader.run('BEGIN DEFERRED');
        assert.equal((await reader.queryValue(`SELECT count(*) FROM ${table}`)).value, 1);
        for (let i = 0; i < 3; i++) {
          const t0 = performance.now();
          await writer.run([`INSERT INTO ${table} VALUES (?)`, [`w${i}`]]);
          const ms = elapsedSince(t0);
          assert.ok(ms < 1000, `a write took ${ms.toFixed(0)} ms while a read transaction was open`);
        }
        await sleep(1200);
        const t0 = performance.now();
        await writer.run(`INSERT INTO ${table} VALUES ('late')`);
        assert.ok(elapsedSince(t0) < 1000);
        assert.equal((await reader.queryValue(`SELECT count(*) FROM ${table}`)).value, 1);
        assert.equal(await reader.getAutocommit(), false);
        await reader.run('COMMIT');
        assert.equal((await reader.queryValue(`SELECT count(*) FROM ${table}`)).value, 5);
      });
    });
  });
}

describe('transaction timeout with decimals (--transaction-timeout 0.3)', () => {
  const server = useServer({ args: ['--transaction-timeout', '0.3'] });

  test('a parked holder is rolled back after ~0.3 s of waiting', T, async () => {
    const a = createClient({ url: server.url });
    const b = createClient({ url: server.url });
    try {
      await b.execute('CREATE TABLE tt_dec (who TEXT)');
      const tx = await a.transaction('write');
      try {
        await tx.execute("INSERT INTO tt_dec VALUES ('holder')");
        const t0 = performance.now();
        assert.equal((await b.execute("INSERT INTO tt_dec VALUES ('waiter')")).rowsAffected, 1);
        const waited = elapsedSince(t0);
        assert.ok(waited >= 250 && waited < 900, `the waiting write took ${waited.toFixed(0)} ms, expected about 0.3 s`);
        await expectCode(tx.commit(), 'TRANSACTION_TIMEOUT', 'COMMIT of the stolen transaction');
      } finally {
        tx.close();
      }
      assert.deepEqual((await b.execute('SELECT who FROM tt_dec')).rows.map((x) => x.who), ['waiter']);
    } finally {
      a.close();
      b.close();
    }
  });
});

describe('waiting for the write lock (default settings)', () => {
  const server = useServer();
  let hc;
  before(() => { hc = hranaClient(server); });
  after(() => hc?.close());

  test('autocommit writes behind a BEGIN IMMEDIATE holder wait, then succeed (no SQLITE_BUSY)', T, async () => {
    await withStream(hc, async (holder) => {
      await holder.run('CREATE TABLE wl_wait (who TEXT)');
      await holder.run('BEGIN IMMEDIATE');
      await holder.run("INSERT INTO wl_wait VALUES ('holder')");
      const writers = autocommitWriters(server, 'wl_wait', 8, 'waiter');
      try {
        let settled = false;
        writers.results.then(() => { settled = true; });
        await sleep(1500);
        assert.equal(settled, false, 'autocommit writes finished while another stream held the write lock');
        await holder.run('COMMIT');
        const results = await writers.results;
        assertAllWritesOk(results, 'behind BEGIN IMMEDIATE');
        for (const r of results) assert.ok(r.ms >= 1400, `a waiting write finished after ${r.ms.toFixed(0)} ms`);
      } finally {
        writers.close();
      }
      const rows = await holder.query('SELECT who FROM wl_wait ORDER BY rowid');
      assert.equal(rows.rows[0].who, 'holder');
      assert.equal(rows.rows.length, 9);
    });
  });

  defineReadTransactionTests(server, () => hc, 'wl');
});

// ------------------------------------------------------------------------------------------------
// E: BEGIN CONCURRENT
// ------------------------------------------------------------------------------------------------

describe('BEGIN CONCURRENT', () => {
  const server = useServer();
  let hc;
  before(() => { hc = hranaClient(server); });
  after(() => hc?.close());

  /**
   * Creates `table` with rows id 1..n, v = 0. Each row is padded to fill a page of its own (3000
   * bytes on 4 KiB pages), so that "different rows" are different pages too and the tests hold
   * for a page-level conflict check (SQLite's begin-concurrent branch) as well as a row-level one.
   */
  async function makeAccounts(table, n = 2) {
    await withStream(hc, async (s) => {
      await s.run(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad BLOB)`);
      for (let id = 1; id <= n; id++) await s.run([`INSERT INTO ${table} (id, v, pad) VALUES (?, 0, zeroblob(3000))`, [id]]);
    });
  }
  const valuesOf = (table) => withStream(hc, async (s) =>
    (await s.query(`SELECT v FROM ${table} ORDER BY id`)).rows.map((r) => r.v));

  /** Two streams A and B; closes them (rolling back whatever is open) afterwards. */
  async function twoStreams(fn) {
    const a = hc.openStream();
    const b = hc.openStream();
    try {
      return await fn(a, b);
    } finally {
      a.close();
      b.close();
    }
  }

  test('two transactions updating different rows, interleaved, both commit', T, async () => {
    await makeAccounts('bc_disjoint');
    await twoStreams(async (a, b) => {
      await a.run('BEGIN CONCURRENT');
      await b.run('BEGIN CONCURRENT');
      await a.run('UPDATE bc_disjoint SET v = v + 1 WHERE id = 1');
      await b.run('UPDATE bc_disjoint SET v = v + 1 WHERE id = 2');
      await a.run('COMMIT');
      await b.run('COMMIT');
    });
    assert.deepEqual(await valuesOf('bc_disjoint'), [1, 1]);
  });

  test('the same row: the second COMMIT fails with SQLITE_BUSY, leaves no trace, and a retry succeeds', T, async () => {
    await makeAccounts('bc_same');
    await twoStreams(async (a, b) => {
      await a.run('BEGIN CONCURRENT');
      await b.run('BEGIN CONCURRENT');
      assert.equal((await a.queryValue('SELECT v FROM bc_same WHERE id = 1')).value, 0);
      assert.equal((await b.queryValue('SELECT v FROM bc_same WHERE id = 1')).value, 0);
      await a.run('UPDATE bc_same SET v = v + 1 WHERE id = 1');
      // A conflict may be detected here already (then the transaction is doomed), or only at COMMIT.
      const bUpdate = await settle(b.run('UPDATE bc_same SET v = v + 10 WHERE id = 1'));
      if (!bUpdate.ok) assert.equal(codeOf(bUpdate.error), 'SQLITE_BUSY', `B's UPDATE: ${bUpdate.error}`);
      await a.run('COMMIT');
      await expectCode(b.run('COMMIT'), 'SQLITE_BUSY', 'COMMIT of the conflicting transaction');
      assert.deepEqual(await valuesOf('bc_same'), [1, 0], 'only A\'s update may be stored');
      await b.run('ROLLBACK');
      assert.deepEqual(await valuesOf('bc_same'), [1, 0]);

      // The retry sees A's commit and succeeds.
      await b.run('BEGIN CONCURRENT');
      assert.equal((await b.queryValue('SELECT v FROM bc_same WHERE id = 1')).value, 1);
      await b.run('UPDATE bc_same SET v = v + 10 WHERE id = 1');
      await b.run('COMMIT');
    });
    assert.deepEqual(await valuesOf('bc_same'), [11, 0]);
  });

  test('after a conflict every statement fails with SQLITE_BUSY until ROLLBACK', T, async () => {
    await makeAccounts('bc_doomed');
    await twoStreams(async (a, b) => {
      await a.run('BEGIN CONCURRENT');
      await b.run('BEGIN CONCURRENT');
      await b.queryValue('SELECT v FROM bc_doomed WHERE id = 1');
      await a.run('UPDATE bc_doomed SET v = v + 1 WHERE id = 1');
      await settle(b.run('UPDATE bc_doomed SET v = v + 10 WHERE id = 1')); // checked in the test above
      await a.run('COMMIT');
      await expectCode(b.run('COMMIT'), 'SQLITE_BUSY', 'COMMIT of the conflicting transaction');
      assert.equal(await b.getAutocommit(), false, 'the failed COMMIT ended the transaction; it must wait for ROLLBACK');
      await expectCode(b.run('UPDATE bc_doomed SET v = v + 100 WHERE id = 2'), 'SQLITE_BUSY', 'an UPDATE after the conflict');
      await expectCode(b.run('SELECT v FROM bc_doomed WHERE id = 2'), 'SQLITE_BUSY', 'a SELECT after the conflict');
      await expectCode(b.run('COMMIT'), 'SQLITE_BUSY', 'a second COMMIT after the conflict');
      await b.run('ROLLBACK');
      assert.equal(await b.getAutocommit(), true);
      assert.equal((await b.queryValue('SELECT v FROM bc_doomed WHERE id = 2')).value, 0);
      await b.run('UPDATE bc_doomed SET v = v + 100 WHERE id = 2'); // an ordinary stream again
    });
    assert.deepEqual(await valuesOf('bc_doomed'), [1, 100]);
  });

  test('uncommitted writes are visible to the own transaction only', T, async () => {
    await makeAccounts('bc_visible');
    await twoStreams(async (a, b) => {
      await a.run('BEGIN CONCURRENT');
      await a.run('UPDATE bc_visible SET v = 5 WHERE id = 1');
      await a.run('INSERT INTO bc_visible (id, v) VALUES (3, 7)');
      assert.deepEqual((await a.query('SELECT v FROM bc_visible ORDER BY id')).rows.map((r) => r.v), [5, 0, 7]);
      // Not visible to an autocommit reader, nor to another concurrent transaction.
      assert.deepEqual(await valuesOf('bc_visible'), [0, 0]);
      await b.run('BEGIN CONCURRENT');
      assert.deepEqual((await b.query('SELECT v FROM bc_visible ORDER BY id')).rows.map((r) => r.v), [0, 0]);
      await b.run('ROLLBACK');
      await a.run('COMMIT');
    });
    assert.deepEqual(await valuesOf('bc_visible'), [5, 0, 7]);
  });

  test('ROLLBACK leaves no trace; get_autocommit is false inside BEGIN CONCURRENT', T, async () => {
    await makeAccounts('bc_rollback');
    await withStream(hc, async (s) => {
      assert.equal(await s.getAutocommit(), true);
      await s.run('BEGIN CONCURRENT');
      assert.equal(await s.getAutocommit(), false);
      await s.run('UPDATE bc_rollback SET v = 9 WHERE id = 1');
      await s.run('INSERT INTO bc_rollback (id, v) VALUES (3, 9)');
      await s.run('DELETE FROM bc_rollback WHERE id = 2');
      assert.equal(await s.getAutocommit(), false);
      await s.run('ROLLBACK');
      assert.equal(await s.getAutocommit(), true);
      await s.run('BEGIN CONCURRENT');
      assert.equal(await s.getAutocommit(), false);
      await s.run('COMMIT');
      assert.equal(await s.getAutocommit(), true);
    });
    assert.deepEqual(await valuesOf('bc_rollback'), [0, 0]);
  });

  test('raw JSON: the conflicting COMMIT answers code SQLITE_BUSY, extended_code SQLITE_BUSY_SNAPSHOT', T, async () => {
    const stmt = execute;
    const pipeline = (baton, ...requests) => pipelineJson(server, baton, ...requests);
    await makeAccounts('bc_raw');
    let a = await pipeline(null, stmt('BEGIN CONCURRENT'), stmt('SELECT v FROM bc_raw WHERE id = 1'));
    let b = await pipeline(null, stmt('BEGIN CONCURRENT'), stmt('SELECT v FROM bc_raw WHERE id = 1'));
    assert.ok([...a.results, ...b.results].every((r) => r.type === 'ok'), JSON.stringify([a, b]));
    a = await pipeline(a.baton, stmt('UPDATE bc_raw SET v = v + 1 WHERE id = 1'));
    b = await pipeline(b.baton, stmt('UPDATE bc_raw SET v = v + 10 WHERE id = 1'));
    a = await pipeline(a.baton, stmt('COMMIT'), { type: 'close' });
    assert.ok(a.results.every((r) => r.type === 'ok'), JSON.stringify(a));
    b = await pipeline(b.baton, stmt('COMMIT'), stmt('ROLLBACK'), { type: 'close' });
    const [commit, rollback] = b.results;
    assert.equal(commit.type, 'error', JSON.stringify(commit));
    assert.equal(commit.error.code, 'SQLITE_BUSY', JSON.stringify(commit));
    if ('extended_code' in commit.error) assert.equal(commit.error.extended_code, 'SQLITE_BUSY_SNAPSHOT', JSON.stringify(commit));
    assert.equal(rollback.type, 'ok', JSON.stringify(rollback));
    assert.deepEqual(await valuesOf('bc_raw'), [1, 0]);
  });
});

describe('BEGIN CONCURRENT: sequences, random(), WebSocket, legacy API', () => {
  const server = useServer();

  test('a sequence inside BEGIN CONCURRENT runs statement by statement, incl. DDL it depends on', T, async () => {
    const hc = hranaClient(server);
    try {
      await withStream(hc, async (s) => {
        await s.run('BEGIN CONCURRENT');
        await s.sequence('CREATE TABLE seq_cc (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO seq_cc (v) VALUES (\'a;b\'); INSERT INTO seq_cc (v) VALUES (\'c\');');
        const inside = await s.query('SELECT v FROM seq_cc ORDER BY id');
        assert.deepEqual(inside.rows.map((r) => r.v), ['a;b', 'c']);
        await s.run('COMMIT');
      });
      const after = await withStream(hc, (s) => s.query('SELECT count(*) AS n FROM seq_cc'));
      assert.equal(Number(after.rows[0].n), 2);
    } finally {
      hc.close();
    }
  });

  test('random() values the client read back survive a replay at COMMIT', T, async () => {
    const hc = hranaClient(server);
    try {
      await withStream(hc, (s) => s.run('CREATE TABLE rnd_cc (id INTEGER PRIMARY KEY, r INTEGER, b BLOB)'));
      await withStream(hc, async (s) => {
        await s.run('BEGIN CONCURRENT');
        await s.run('INSERT INTO rnd_cc (id, r, b) VALUES (1, random(), randomblob(8))');
        const seen = (await s.query('SELECT CAST(r AS TEXT) AS r, hex(b) AS h FROM rnd_cc WHERE id = 1')).rows[0];
        // Another client commits in between, so COMMIT really replays on a changed database.
        await withStream(hc, (o) => o.run('INSERT INTO rnd_cc (id, r) VALUES (2, 0)'));
        await s.run('COMMIT');
        const stored = await withStream(hc, (o) => o.query('SELECT CAST(r AS TEXT) AS r, hex(b) AS h FROM rnd_cc WHERE id = 1'));
        assert.equal(String(stored.rows[0].r), String(seen.r));
        assert.equal(stored.rows[0].h, seen.h);
      });
    } finally {
      hc.close();
    }
  });

  test('over WebSocket (hrana3): disjoint rows commit, the same row conflicts', T, async () => {
    const hc = openWs(wsUrl(server), undefined, 3);
    try {
      await withStream(hc, async (s) => {
        await s.run('CREATE TABLE ws_cc (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)');
        await s.run('INSERT INTO ws_cc VALUES (1, 0), (2, 0)');
      });
      const a = hc.openStream(), b = hc.openStream();
      try {
        await a.run('BEGIN CONCURRENT');
        await b.run('BEGIN CONCURRENT');
        await a.run('UPDATE ws_cc SET v = v + 1 WHERE id = 1');
        await b.run('UPDATE ws_cc SET v = v + 1 WHERE id = 2');
        await a.run('COMMIT');
        await b.run('COMMIT');
        await a.run('BEGIN CONCURRENT');
        await b.run('BEGIN CONCURRENT');
        await a.query('SELECT v FROM ws_cc WHERE id = 1');
        await b.query('SELECT v FROM ws_cc WHERE id = 1');
        await a.run('UPDATE ws_cc SET v = 10 WHERE id = 1');
        await b.run('UPDATE ws_cc SET v = 20 WHERE id = 1');
        await a.run('COMMIT');
        await expectCode(b.run('COMMIT'), 'SQLITE_BUSY', 'the second COMMIT');
        await b.run('ROLLBACK');
      } finally {
        a.close();
        b.close();
      }
      const rows = await withStream(hc, (s) => s.query('SELECT v FROM ws_cc ORDER BY id'));
      assert.deepEqual(rows.rows.map((r) => Number(r.v)), [10, 1]);
    } finally {
      hc.close();
    }
  });

  test('legacy POST /: BEGIN CONCURRENT ... COMMIT is the request\'s own transaction', T, async () => {
    const post = async (statements) => {
      const resp = await fetch(`${server.url}/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ statements }),
      });
      return { status: resp.status, body: await resp.json() };
    };
    let r = await post(['CREATE TABLE legacy_cc (id INTEGER PRIMARY KEY, v TEXT)']);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    r = await post(['BEGIN CONCURRENT', { q: 'INSERT INTO legacy_cc (v) VALUES (?)', params: ['x'] }, 'SELECT count(*) FROM legacy_cc', 'COMMIT']);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.length, 4);
    assert.deepEqual(r.body[2].results.rows, [[1]]);
    // A failing statement rolls the whole request back.
    r = await post(['BEGIN CONCURRENT', "INSERT INTO legacy_cc (v) VALUES ('y')", 'INSERT INTO nope VALUES (1)', 'COMMIT']);
    assert.ok(r.body.some((x) => x && x.error), JSON.stringify(r.body));
    r = await post(['SELECT count(*) FROM legacy_cc']);
    assert.deepEqual(r.body[0].results.rows, [[1]]);
    // Other transaction control is still refused, as sqld does.
    r = await post(['BEGIN IMMEDIATE', 'SELECT 1', 'COMMIT']);
    assert.equal(r.status, 400);
  });
});

// ------------------------------------------------------------------------------------------------
// F: bank transfers
// ------------------------------------------------------------------------------------------------

describe('bank transfers keep their invariants', () => {
  const server = useServer();
  let hc;
  before(() => { hc = hranaClient(server); });
  after(() => hc?.close());

  const ACCOUNTS = 20;
  const START = 1000;
  const WORKERS = 16;
  const TRANSFERS = 25;
  const MAX_RETRIES = 200;

  for (const begin of ['BEGIN CONCURRENT', 'BEGIN IMMEDIATE']) {
    test(`16 workers × 25 transfers with ${begin}`, { timeout: 60_000 }, async (t) => {
      const tag = begin === 'BEGIN CONCURRENT' ? 'conc' : 'imm';
      const acct = `bank_${tag}`;
      const log = `bank_log_${tag}`;
      await withStream(hc, async (s) => {
        await s.run(`CREATE TABLE ${acct} (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)`);
        await s.run(`CREATE TABLE ${log} (id INTEGER PRIMARY KEY, worker INTEGER NOT NULL, seq INTEGER NOT NULL,
                                          src INTEGER NOT NULL, dst INTEGER NOT NULL, amt INTEGER NOT NULL)`);
        for (let id = 1; id <= ACCOUNTS; id++) await s.run([`INSERT INTO ${acct} (id, balance) VALUES (?, ?)`, [id, START]]);
      });

      const stats = { committed: 0, moved: 0, insufficient: 0, retries: 0, maxRetries: 0 };
      const moves = []; // what the workers saw committed: { src, dst, amt }

      /** One transfer; retried from BEGIN on SQLITE_BUSY. Returns the committed move or null. */
      async function transfer(s, worker, seq) {
        const src = 1 + Math.floor(Math.random() * ACCOUNTS);
        const dst = 1 + ((src - 1 + 1 + Math.floor(Math.random() * (ACCOUNTS - 1))) % ACCOUNTS);
        const amt = 1 + Math.floor(Math.random() * 300);
        for (let attempt = 0; ; attempt++) {
          if (attempt > MAX_RETRIES) {
            throw new Error(`worker ${worker} transfer ${seq}: still conflicting after ${MAX_RETRIES} retries`);
          }
          try {
            await s.run(begin);
            const from = (await s.queryValue([`SELECT balance FROM ${acct} WHERE id = ?`, [src]])).value;
            const to = (await s.queryValue([`SELECT balance FROM ${acct} WHERE id = ?`, [dst]])).value;
            let move = null;
            if (from >= amt) {
              // Written from the values read: a lost update would break the invariants below.
              await s.run([`UPDATE ${acct} SET balance = ? WHERE id = ?`, [from - amt, src]]);
              await s.run([`UPDATE ${acct} SET balance = ? WHERE id = ?`, [to + amt, dst]]);
              await s.run([`INSERT INTO ${log} (worker, seq, src, dst, amt) VALUES (?, ?, ?, ?, ?)`,
                           [worker, seq, src, dst, amt]]);
              move = { src, dst, amt };
            }
            await s.run('COMMIT');
            stats.retries += attempt;
            stats.maxRetries = Math.max(stats.maxRetries, attempt);
            return move;
          } catch (err) {
            if (codeOf(err) !== 'SQLITE_BUSY') throw err;
            await s.run('ROLLBACK').catch(() => {});
            await sleep(Math.random() * 3);
          }
        }
      }

      const t0 = performance.now();
      await Promise.all(Array.from({ length: WORKERS }, (_, worker) => withStream(hc, async (s) => {
        for (let seq = 0; seq < TRANSFERS; seq++) {
          const move = await transfer(s, worker, seq);
          stats.committed++;
          if (move) {
            stats.moved++;
            moves.push(move);
          } else {
            stats.insufficient++;
          }
        }
      })));
      t.diagnostic(`${begin}: ${stats.committed} commits (${stats.moved} transfers, ${stats.insufficient} refused), ` +
                   `${stats.retries} retries (max ${stats.maxRetries} for one transfer), ` +
                   `${elapsedSince(t0).toFixed(0)} ms`);

      assert.equal(stats.committed, WORKERS * TRANSFERS);
      await withStream(hc, async (s) => {
        const balances = (await s.query(`SELECT id, balance FROM ${acct} ORDER BY id`)).rows.map((r) => [r.id, r.balance]);
        assert.equal(balances.length, ACCOUNTS);
        assert.equal(balances.reduce((sum, [, b]) => sum + b, 0), ACCOUNTS * START, 'money was created or destroyed');
        assert.deepEqual(balances.filter(([, b]) => b < 0), [], 'negative balances');
        assert.equal((await s.queryValue(`SELECT count(*) FROM ${log}`)).value, stats.moved,
                     'the transfer log does not match the commits the workers saw');
        // The balances are exactly what the committed transfers add up to.
        const expected = new Map(Array.from({ length: ACCOUNTS }, (_, i) => [i + 1, START]));
        for (const { src, dst, amt } of moves) {
          expected.set(src, expected.get(src) - amt);
          expected.set(dst, expected.get(dst) + amt);
        }
        assert.deepEqual(balances, [...expected.entries()], 'balances differ from the sum of the committed transfers');
        const logged = (await s.query(`SELECT src, dst, amt FROM ${log}`)).rows.map((r) => `${r.src}>${r.dst}:${r.amt}`).sort();
        assert.deepEqual(logged, moves.map((m) => `${m.src}>${m.dst}:${m.amt}`).sort());
      });
    });
  }
});
