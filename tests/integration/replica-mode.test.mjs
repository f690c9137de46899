// Read replicas (issue 6): `quire serve --primary-url` follows a primary's namespaces, serves
// reads from its own copy, forwards writes and transactions, and gives read-your-writes. Two
// real quire processes, driven with the real @libsql/client over HTTP.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { createClient } from '@libsql/client';

import { eventually, rows, sleep, startServer } from './server.mjs';

async function raw(url, body, headers = {}) {
  const res = await fetch(`${url}/v2/pipeline`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

describe('replica mode: two quire processes', () => {
  let primary;
  let replica;
  let onPrimary;
  let onReplica;
  // Owned by the test (servers on a given dataDir leave it in place), so that both can restart.
  const primaryDir = mkdtempSync(path.join(tmpdir(), 'quire-primary-'));
  const replicaDir = mkdtempSync(path.join(tmpdir(), 'quire-replica-'));

  before(async () => {
    primary = await startServer({ dataDir: primaryDir, args: ['--admin-listen', '127.0.0.1:0'] });
    onPrimary = createClient({ url: primary.url });
    await onPrimary.execute('CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER, pad BLOB)');
    await onPrimary.execute("INSERT INTO kv VALUES ('before-replica', 1, NULL)");
    replica = await startServer({ dataDir: replicaDir, args: ['--primary-url', primary.url, '--admin-listen', '127.0.0.1:0'] });
    onReplica = createClient({ url: replica.url });
  });

  after(async () => {
    onPrimary?.close();
    onReplica?.close();
    await replica?.stop();
    await primary?.stop();
    rmSync(primaryDir, { recursive: true, force: true });
    rmSync(replicaDir, { recursive: true, force: true });
  });

  test('bootstraps from the primary and serves its rows', async () => {
    assert.deepEqual(await rows(onReplica, "SELECT v FROM kv WHERE k = 'before-replica'"), [[1]]);
    const integrity = await rows(onReplica, 'PRAGMA integrity_check');
    assert.deepEqual(integrity, [['ok']]);
  });

  test('follows writes made on the primary', async () => {
    for (let i = 0; i < 20; i++) {
      await onPrimary.execute({ sql: 'INSERT INTO kv VALUES (?, ?, NULL)', args: [`p${i}`, i] });
    }
    await eventually(async () => (await rows(onReplica, "SELECT count(*) FROM kv WHERE k LIKE 'p%'"))[0][0] === 20,
      10_000, 'replica sees 20 primary writes');
  });

  test('a write through the replica is on the primary and read back at once (read-your-writes)', async () => {
    for (let i = 0; i < 30; i++) {
      const r = await onReplica.execute({ sql: 'INSERT INTO kv VALUES (?, ?, NULL)', args: [`r${i}`, i] });
      assert.equal(r.rowsAffected, 1);
      // No waiting: the replica answered the write only once it had applied it.
      assert.deepEqual(await rows(onReplica, `SELECT v FROM kv WHERE k = 'r${i}'`), [[i]]);
    }
    assert.deepEqual(await rows(onPrimary, "SELECT count(*) FROM kv WHERE k LIKE 'r%'"), [[30]]);
  });

  test('prepared statements, batches and interactive transactions go to the primary', async () => {
    await onReplica.batch([
      { sql: 'INSERT INTO kv VALUES (?, ?, NULL)', args: ['b1', 1] },
      { sql: 'INSERT INTO kv VALUES (?, ?, NULL)', args: ['b2', 2] },
    ], 'write');
    assert.deepEqual(await rows(onReplica, "SELECT k FROM kv WHERE k IN ('b1','b2') ORDER BY k"), [['b1'], ['b2']]);

    const tx = await onReplica.transaction('write');
    await tx.execute({ sql: 'INSERT INTO kv VALUES (?, ?, NULL)', args: ['t1', 10] });
    // Inside the transaction its own write is visible (it runs on the primary as a whole).
    assert.deepEqual((await tx.execute("SELECT v FROM kv WHERE k = 't1'")).rows.map((r) => r.v), [10]);
    await tx.commit();
    assert.deepEqual(await rows(onReplica, "SELECT v FROM kv WHERE k = 't1'"), [[10]]);

    const rolled = await onReplica.transaction('write');
    await rolled.execute({ sql: 'INSERT INTO kv VALUES (?, ?, NULL)', args: ['t2', 20] });
    await rolled.rollback();
    assert.deepEqual(await rows(onPrimary, "SELECT count(*) FROM kv WHERE k = 't2'"), [[0]]);
    assert.deepEqual(await rows(onReplica, "SELECT count(*) FROM kv WHERE k = 't2'"), [[0]]);

    // A failing write reports the primary's SQLite error.
    await assert.rejects(onReplica.execute("INSERT INTO kv VALUES ('t1', 0, NULL)"), /UNIQUE constraint failed/);
  });

  test('reads run on the replica; writes are forwarded (the primary stamps its frame)', async () => {
    const read = await raw(replica.url, { requests: [{ type: 'execute', stmt: { sql: 'SELECT count(*) FROM kv' } }, { type: 'close' }] });
    assert.equal(read.status, 200);
    assert.equal(read.headers.get('x-quire-frame'), null, 'a read is answered by the replica itself');
    const write = await raw(replica.url, { requests: [{ type: 'execute', stmt: { sql: "INSERT INTO kv VALUES ('raw', 1, NULL)" } }, { type: 'close' }] });
    assert.equal(write.status, 200);
    assert.ok(Number(write.headers.get('x-quire-frame')) > 0, 'the write was answered by the primary');
  });

  test('namespaces created on the primary are served by the replica', async () => {
    const res = await fetch(`${primary.adminUrl}/v1/namespaces/tenant1/create`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
    });
    assert.equal(res.status, 200, await res.text());
    const pipeline = (sql) => ({ requests: [{ type: 'execute', stmt: { sql } }, { type: 'close' }] });
    let r = await raw(primary.url, pipeline('CREATE TABLE only_here (x)'), { 'x-namespace': 'tenant1' });
    assert.equal(r.status, 200);
    r = await raw(replica.url, pipeline('INSERT INTO only_here VALUES (42)'), { 'x-namespace': 'tenant1' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    r = await raw(replica.url, pipeline('SELECT x FROM only_here'), { 'x-namespace': 'tenant1' });
    assert.deepEqual(r.body.results[0].response.result.rows, [[{ type: 'integer', value: '42' }]]);
    r = await raw(replica.url, pipeline('SELECT 1'), { 'x-namespace': 'nosuchns' });
    assert.equal(r.status, 404);
    assert.equal(r.body.code, 'NAMESPACE_DOESNT_EXIST');
  });

  test('lag under load: 2,000 writes on the primary, the replica ends with all of them', async () => {
    const writers = [];
    const started = Date.now();
    for (let w = 0; w < 8; w++) {
      writers.push((async () => {
        for (let i = 0; i < 250; i++) {
          await onPrimary.execute({ sql: 'INSERT INTO kv VALUES (?, ?, NULL)', args: [`load-${w}-${i}`, i] });
        }
      })());
    }
    // Meanwhile the replica keeps answering reads.
    let reads = 0;
    let done = false;
    const reader = (async () => {
      while (!done) {
        await onReplica.execute("SELECT count(*) FROM kv WHERE k LIKE 'load-%'");
        reads++;
      }
    })();
    await Promise.all(writers);
    const wrote = Date.now();
    await eventually(async () => (await rows(onReplica, "SELECT count(*) FROM kv WHERE k LIKE 'load-%'"))[0][0] === 2000,
      15_000, 'replica holds all 2,000 writes');
    done = true;
    await reader;
    console.log(`# 2,000 writes in ${wrote - started} ms; replica caught up ${Date.now() - wrote} ms after the last; ${reads} replica reads meanwhile`);
  });

  test('admin stats say how each side stands in replication', async () => {
    const p = await (await fetch(`${primary.adminUrl}/v1/namespaces/default/stats`)).json();
    assert.equal(p.replication.role, 'primary');
    assert.ok(p.replication.last_frame > 0);
    const r = await (await fetch(`${replica.adminUrl}/v1/namespaces/default/stats`)).json();
    assert.equal(r.replication.role, 'replica');
    assert.equal(r.replication.primary, primary.url);
    assert.equal(r.replication.log_id, p.replication.log_id);
    assert.ok(r.replication.applied_frame > 0 && r.replication.applied_frame <= p.replication.last_frame);
    const create = await fetch(`${replica.adminUrl}/v1/namespaces/nope/create`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
    });
    assert.equal(create.status, 400, 'a replica refuses to create namespaces');
    assert.match(await create.text(), /read replica of/);
  });

  test('a replica restart resumes from its copy', async () => {
    const dataDir = replica.dataDir;
    onReplica.close();
    await replica.kill();
    for (let i = 0; i < 10; i++) {
      await onPrimary.execute({ sql: 'INSERT INTO kv VALUES (?, ?, NULL)', args: [`while-down-${i}`, i] });
    }
    replica = await startServer({ dataDir, args: ['--primary-url', primary.url] });
    onReplica = createClient({ url: replica.url });
    await eventually(async () => (await rows(onReplica, "SELECT count(*) FROM kv WHERE k LIKE 'while-down-%'"))[0][0] === 10,
      10_000, 'restarted replica catches up');
    assert.deepEqual(await rows(onReplica, 'PRAGMA integrity_check'), [['ok']]);
    assert.deepEqual(await rows(onReplica, 'SELECT count(*) FROM kv'), await rows(onPrimary, 'SELECT count(*) FROM kv'));
  });

  test('the primary down: reads go on, writes fail clearly; after its restart both go on', async () => {
    const dataDir = primary.dataDir;
    const port = primary.port;
    onPrimary.close();
    await primary.stop();
    const before = await rows(onReplica, 'SELECT count(*) FROM kv');
    assert.ok(before[0][0] > 0);
    const w = await raw(replica.url, { requests: [{ type: 'execute', stmt: { sql: "INSERT INTO kv VALUES ('down', 1, NULL)" } }, { type: 'close' }] });
    assert.equal(w.status, 502);
    assert.equal(w.body.code, 'PRIMARY_UNAVAILABLE');

    const restarted = await startServer({ dataDir, listen: `127.0.0.1:${port}`, args: ['--admin-listen', '127.0.0.1:0'] });
    primary = restarted;
    onPrimary = createClient({ url: primary.url });
    await onReplica.execute("INSERT INTO kv VALUES ('after-primary-restart', 1, NULL)");
    assert.deepEqual(await rows(onReplica, "SELECT v FROM kv WHERE k = 'after-primary-restart'"), [[1]]);
    await onPrimary.execute("INSERT INTO kv VALUES ('direct-after-restart', 2, NULL)");
    await eventually(async () => (await rows(onReplica, "SELECT count(*) FROM kv WHERE k = 'direct-after-restart'"))[0][0] === 1,
      10_000, 'replica follows the restarted primary');
  });

  test('a replica far behind a compacted log re-bootstraps from a snapshot', async () => {
    const dataDir = replica.dataDir;
    onReplica.close();
    await replica.kill();
    // ~31,000 frames of 4 KiB pages over a database of ~16,000: past the primary's
    // snapshot-and-compact interval (16,384 frames, and at least the database's size).
    const blob = new Uint8Array(400 * 1024).fill(7);
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < 150; i++) {
        await onPrimary.execute({ sql: 'INSERT INTO kv VALUES (?, ?, ?)', args: [`big-${i}`, i, blob] });
      }
      await onPrimary.execute("DELETE FROM kv WHERE k LIKE 'big-%'");
    }
    await onPrimary.execute("INSERT INTO kv VALUES ('after-compaction', 1, NULL)");
    replica = await startServer({ dataDir, args: ['--primary-url', primary.url] });
    onReplica = createClient({ url: replica.url });
    await eventually(async () => (await rows(onReplica, "SELECT count(*) FROM kv WHERE k = 'after-compaction'"))[0][0] === 1,
      20_000, 'replica catches up past the compaction');
    assert.match(replica.logs(), /installed the primary's snapshot at frame/, 'the catch-up took a snapshot');
    assert.deepEqual(await rows(onReplica, 'PRAGMA integrity_check'), [['ok']]);
    assert.deepEqual(await rows(onReplica, 'SELECT k, v FROM kv ORDER BY k'), await rows(onPrimary, 'SELECT k, v FROM kv ORDER BY k'));
  });

  test('kill -9 of the primary while the replica follows: both agree, nothing acknowledged lost', async () => {
    const acked = [];
    let stop = false;
    const writers = [];
    for (let w = 0; w < 4; w++) {
      writers.push((async () => {
        for (let i = 0; !stop; i++) {
          const k = `crash-${w}-${i}`;
          try {
            await onPrimary.execute({ sql: 'INSERT INTO kv VALUES (?, ?, NULL)', args: [k, i] });
            acked.push(k);
          } catch {
            return;  // the primary is gone
          }
        }
      })());
    }
    await sleep(300 + Math.floor(Math.random() * 400));
    const dataDir = primary.dataDir;
    const port = primary.port;
    await primary.kill();
    stop = true;
    await Promise.all(writers);
    assert.ok(acked.length > 0, 'some writes were acknowledged before the kill');
    onPrimary.close();

    const restarted = await startServer({ dataDir, listen: `127.0.0.1:${port}`, args: ['--admin-listen', '127.0.0.1:0'] });
    primary = restarted;
    onPrimary = createClient({ url: primary.url });
    await onPrimary.execute("INSERT INTO kv VALUES ('after-kill', 1, NULL)");
    await eventually(async () => (await rows(onReplica, "SELECT count(*) FROM kv WHERE k = 'after-kill'"))[0][0] === 1,
      15_000, 'replica follows the primary after its kill -9');
    const onP = new Set((await rows(onPrimary, "SELECT k FROM kv WHERE k LIKE 'crash-%'")).map((r) => r[0]));
    const onR = new Set((await rows(onReplica, "SELECT k FROM kv WHERE k LIKE 'crash-%'")).map((r) => r[0]));
    const lostP = acked.filter((k) => !onP.has(k));
    const lostR = acked.filter((k) => !onR.has(k));
    assert.deepEqual(lostP.slice(0, 5), [], `${lostP.length} acknowledged rows missing on the primary`);
    assert.deepEqual(lostR.slice(0, 5), [], `${lostR.length} acknowledged rows missing on the replica`);
    assert.deepEqual(await rows(onReplica, 'SELECT k, v FROM kv ORDER BY k'), await rows(onPrimary, 'SELECT k, v FROM kv ORDER BY k'));
    assert.deepEqual(await rows(onPrimary, 'PRAGMA integrity_check'), [['ok']]);
    assert.deepEqual(await rows(onReplica, 'PRAGMA integrity_check'), [['ok']]);
    console.log(`# ${acked.length} writes acknowledged before the kill; primary and replica agree`);
  });
});
