// Read replicas over WebSocket: a replica's WS stream answers its reads itself; from its first
// write (or transaction, or script) on, the stream continues at the primary as an HTTP pipeline
// stream, and answers come back only once the replica has applied them (read-your-writes). Two
// real quire processes, driven with the real @libsql/client over ws:// (which picks
// hrana3-protobuf) and with hand-made JSON (hrana3) messages.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { createClient } from '@libsql/client';

import { eventually, rows, startServer } from './server.mjs';
import { HranaConn, integer, stmt, wsUrl } from './ws-helpers.mjs';

/** The first row of a JSON execute result, as plain values. */
const firstRow = (result) => result.rows[0]?.map((v) => (v.type === 'null' ? null : v.value));

describe('replica mode over WebSocket', () => {
  let primary;
  let replica;
  let onPrimary;
  let onReplica;
  // Owned by the test (servers on a given dataDir leave it in place).
  const primaryDir = mkdtempSync(path.join(tmpdir(), 'quire-primary-ws-'));
  const replicaDir = mkdtempSync(path.join(tmpdir(), 'quire-replica-ws-'));

  before(async () => {
    primary = await startServer({ dataDir: primaryDir });
    onPrimary = createClient({ url: primary.url });
    await onPrimary.execute('CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)');
    await onPrimary.execute("INSERT INTO kv VALUES ('before-replica', 1)");
    replica = await startServer({ dataDir: replicaDir, args: ['--primary-url', primary.url] });
    onReplica = createClient({ url: replica.url.replace('http', 'ws') });
  });

  after(async () => {
    onPrimary?.close();
    onReplica?.close();
    await replica?.stop();
    await primary?.stop();
    rmSync(primaryDir, { recursive: true, force: true });
    rmSync(replicaDir, { recursive: true, force: true });
  });

  test('reads are served from the replica', async () => {
    assert.deepEqual(await rows(onReplica, "SELECT v FROM kv WHERE k = 'before-replica'"), [[1]]);
    await onPrimary.execute("INSERT INTO kv VALUES ('from-primary', 2)");
    await eventually(async () => (await rows(onReplica, "SELECT v FROM kv WHERE k = 'from-primary'"))[0]?.[0] === 2,
      10_000, 'the replica serves a row written on the primary');
  });

  test('a write is on the primary and read back at once (read-your-writes)', async () => {
    for (let i = 0; i < 20; i++) {
      const r = await onReplica.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: [`w${i}`, i] });
      assert.equal(r.rowsAffected, 1);
      // No waiting: the replica answered the write only once it had applied it.
      assert.deepEqual(await rows(onReplica, `SELECT v FROM kv WHERE k = 'w${i}'`), [[i]]);
    }
    assert.deepEqual(await rows(onPrimary, "SELECT count(*) FROM kv WHERE k LIKE 'w%'"), [[20]]);
  });

  test('batch(..., "write") runs at the primary; its results come back', async () => {
    const results = await onReplica.batch([
      { sql: 'INSERT INTO kv VALUES (?, ?)', args: ['b1', 1] },
      { sql: 'INSERT INTO kv VALUES (?, ?)', args: ['b2', 2] },
      "SELECT k, v FROM kv WHERE k IN ('b1', 'b2') ORDER BY k",
    ], 'write');
    assert.equal(results.length, 3);
    assert.equal(results[0].rowsAffected, 1);
    assert.deepEqual(results[2].rows.map((r) => [r.k, r.v]), [['b1', 1], ['b2', 2]]);
    assert.deepEqual(await rows(onReplica, "SELECT k FROM kv WHERE k IN ('b1','b2') ORDER BY k"), [['b1'], ['b2']]);
    // A read batch works as well (it is a transaction, so it too goes to the primary).
    const read = await onReplica.batch(["SELECT count(*) AS n FROM kv WHERE k IN ('b1', 'b2')"], 'read');
    assert.equal(read[0].rows[0].n, 2);
  });

  test('an interactive transaction commits, reading its own write inside', async () => {
    const tx = await onReplica.transaction('write');
    try {
      await tx.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['t1', 10] });
      assert.deepEqual((await tx.execute("SELECT v FROM kv WHERE k = 't1'")).rows.map((r) => r.v), [10]);
      await tx.commit();
    } finally {
      tx.close();
    }
    assert.deepEqual(await rows(onReplica, "SELECT v FROM kv WHERE k = 't1'"), [[10]]);
    assert.deepEqual(await rows(onPrimary, "SELECT v FROM kv WHERE k = 't1'"), [[10]]);
  });

  test('an interactive transaction rolls back', async () => {
    const tx = await onReplica.transaction('write');
    try {
      await tx.execute({ sql: 'INSERT INTO kv VALUES (?, ?)', args: ['t2', 20] });
      assert.deepEqual((await tx.execute("SELECT count(*) AS n FROM kv WHERE k = 't2'")).rows[0].n, 1);
      await tx.rollback();
    } finally {
      tx.close();
    }
    assert.deepEqual(await rows(onPrimary, "SELECT count(*) FROM kv WHERE k = 't2'"), [[0]]);
    assert.deepEqual(await rows(onReplica, "SELECT count(*) FROM kv WHERE k = 't2'"), [[0]]);
  });

  test("a failing write reports the primary's error, and the client goes on", async () => {
    await assert.rejects(onReplica.execute("INSERT INTO kv VALUES ('t1', 0)"), /UNIQUE constraint failed/);
    const tx = await onReplica.transaction('write');
    try {
      await assert.rejects(tx.execute("INSERT INTO kv VALUES ('t1', 0)"), /UNIQUE constraint failed/);
      await tx.execute("INSERT INTO kv VALUES ('t3', 30)");
      await tx.commit();
    } finally {
      tx.close();
    }
    assert.deepEqual(await rows(onReplica, "SELECT v FROM kv WHERE k IN ('t1', 't3') ORDER BY k"), [[10], [30]]);
  });

  test('executeMultiple (a script) runs at the primary', async () => {
    await onReplica.executeMultiple("INSERT INTO kv VALUES ('s1', 1); INSERT INTO kv VALUES ('s2', 2);");
    assert.deepEqual(await rows(onReplica, "SELECT count(*) FROM kv WHERE k IN ('s1', 's2')"), [[2]]);
  });

  test('JSON (hrana3): a stream reads here, then continues at the primary from its first write', async () => {
    const conn = await HranaConn.connect(wsUrl(replica), 'hrana3');
    try {
      await conn.hello();
      await conn.ok({ type: 'open_stream', stream_id: 1 });
      const read = await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt("SELECT v FROM kv WHERE k = 'before-replica'") });
      assert.deepEqual(firstRow(read.result), ['1']);
      // store_sql texts are the connection's: the replica sends the text itself to the primary.
      await conn.ok({ type: 'store_sql', sql_id: 7, sql: 'INSERT INTO kv VALUES (?, ?)' });
      const wrote = await conn.ok({ type: 'execute', stream_id: 1, stmt: { sql_id: 7, args: [{ type: 'text', value: 'j1' }, integer(5)], want_rows: false } });
      assert.equal(wrote.result.affected_row_count, 1);
      await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('BEGIN') });
      const ac = await conn.ok({ type: 'get_autocommit', stream_id: 1 });
      assert.equal(ac.is_autocommit, false, 'the transaction is held at the primary between requests');
      await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt("INSERT INTO kv VALUES ('j2', 6)") });
      const seen = await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt("SELECT count(*) FROM kv WHERE k IN ('j1', 'j2')") });
      assert.deepEqual(firstRow(seen.result), ['2']);

      // A cursor on the stream (inside its transaction): served from the primary's batch result.
      await conn.ok({
        type: 'open_cursor', stream_id: 1, cursor_id: 3,
        batch: { steps: [
          { stmt: stmt("SELECT k FROM kv WHERE k IN ('j1', 'j2') ORDER BY k") },
          { stmt: stmt("INSERT INTO kv VALUES ('j1', 0)") },
          { condition: { type: 'ok', step: 1 }, stmt: stmt('SELECT 1') },
        ] },
      });
      const fetched = await conn.ok({ type: 'fetch_cursor', cursor_id: 3, max_count: 100 });
      assert.equal(fetched.done, true);
      assert.deepEqual(fetched.entries.map((e) => e.type), ['step_begin', 'row', 'row', 'step_end', 'step_error']);
      assert.deepEqual(fetched.entries[1].row, [{ type: 'text', value: 'j1' }]);
      assert.match(fetched.entries[4].error.message, /UNIQUE constraint failed/);
      await conn.ok({ type: 'close_cursor', cursor_id: 3 });

      // Closing the stream leaves the transaction: the primary rolls it back (and its write lock
      // goes), the autocommitted j1 stays.
      await conn.ok({ type: 'close_stream', stream_id: 1 });
      await eventually(async () => {
        await onPrimary.execute("INSERT OR REPLACE INTO kv VALUES ('after-close', 1)");
        return true;
      }, 20_000, 'the primary writes again after the stream closed');
      assert.deepEqual(await rows(onPrimary, "SELECT k FROM kv WHERE k IN ('j1', 'j2') ORDER BY k"), [['j1']]);

      // Errors of a forwarded request are response_error, the connection stays.
      await conn.ok({ type: 'open_stream', stream_id: 2 });
      const dup = await conn.request({ type: 'execute', stream_id: 2, stmt: stmt("INSERT INTO kv VALUES ('j1', 0)") });
      assert.equal(dup.type, 'response_error');
      assert.match(dup.error.message, /UNIQUE constraint failed/);
      await conn.ok({ type: 'close_stream', stream_id: 2 });
    } finally {
      conn.close();
    }
  });

  test('closing the connection mid-transaction rolls it back at the primary', async () => {
    const conn = await HranaConn.connect(wsUrl(replica), 'hrana3');
    await conn.hello();
    await conn.ok({ type: 'open_stream', stream_id: 1 });
    await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt('BEGIN IMMEDIATE') });
    await conn.ok({ type: 'execute', stream_id: 1, stmt: stmt("INSERT INTO kv VALUES ('dropped', 1)") });
    conn.close();
    await conn.waitClose(10_000);
    await eventually(async () => {
      await onPrimary.execute("INSERT OR REPLACE INTO kv VALUES ('after-drop', 1)");
      return true;
    }, 20_000, 'the primary writes again after the connection closed');
    assert.deepEqual(await rows(onPrimary, "SELECT count(*) FROM kv WHERE k = 'dropped'"), [[0]]);
  });

  // Last: it stops the primary.
  test('the primary down: reads go on, writes fail clearly', async () => {
    onPrimary.close();
    onPrimary = undefined;
    await primary.stop();
    primary = undefined;
    const client = createClient({ url: replica.url.replace('http', 'ws') });
    try {
      assert.deepEqual(await rows(client, "SELECT v FROM kv WHERE k = 't1'"), [[10]]);
      await assert.rejects(client.execute("INSERT INTO kv VALUES ('down', 1)"), (e) => {
        assert.match(e.message, /could not reach its primary/);
        assert.match(String(e.code), /PRIMARY_UNAVAILABLE/);
        return true;
      });
      await assert.rejects(client.batch(["INSERT INTO kv VALUES ('down', 2)"], 'write'), /could not reach its primary/);
      // The replica keeps serving.
      assert.deepEqual(await rows(client, "SELECT v FROM kv WHERE k = 't1'"), [[10]]);
      assert.deepEqual(await rows(onReplica, "SELECT count(*) FROM kv WHERE k = 'down'"), [[0]]);
    } finally {
      client.close();
    }
  });
});
