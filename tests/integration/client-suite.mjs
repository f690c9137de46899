// The @libsql/client 0.18 test body, shared by client-http.test.mjs and client-ws.test.mjs so the
// very same tests run over every transport the client can pick: HTTP (Hrana v2 JSON on
// POST /v2/pipeline, no probing) and WebSocket (the client offers `hrana2, hrana1`, so Hrana 2
// JSON over one connection per client). This is the compatibility contract for the most common
// client, used exactly as applications use it.
//
// defineClientSuite() declares one describe() block with its own server (fresh database), so the
// table names the tests create never collide between transports.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { LibsqlError } from '@libsql/client';

import { sleep, useServer } from './server.mjs';

/**
 * title:        the describe() title; it names the transport, so test names differ per transport
 * createClient: the createClient of the entry point under test ('@libsql/client' or '@libsql/client/ws')
 * url:          (server) => the URL handed to createClient
 * protocol:     the transport that URL must lead to, 'http' or 'ws' (checked on the client object)
 */
export function defineClientSuite({ title, createClient, url, protocol }) {
  describe(title, () => {
    const server = useServer();
    let db; // default intMode "number"
    let dbBig; // intMode "bigint"

    before(() => {
      db = createClient({ url: url(server) });
      dbBig = createClient({ url: url(server), intMode: 'bigint' });
    });

    after(() => {
      db?.close();
      dbBig?.close();
    });

    /** Asserts that `promise` rejects with a LibsqlError whose code is `code`; returns the error. */
    async function rejectsWithCode(promise, code) {
      let caught;
      await assert.rejects(promise, (err) => {
        caught = err;
        return true;
      });
      assert.ok(caught instanceof LibsqlError, `expected a LibsqlError, got ${caught?.stack ?? caught}`);
      assert.equal(caught.code, code, `unexpected error code; message: ${caught.message}`);
      return caught;
    }

    test(`the client talks ${protocol === 'ws' ? 'WebSocket' : 'HTTP'}`, async () => {
      // createClient picks the transport from the URL scheme and the entry point; make sure this
      // variant really exercises the one it is named after.
      assert.equal(db.protocol, protocol);
      assert.equal(dbBig.protocol, protocol);
      const rs = await db.execute('SELECT 1 AS one');
      assert.equal(rs.rows[0].one, 1);
    });

    async function count(table, where = '1') {
      const rs = await db.execute(`SELECT count(*) AS n FROM ${table} WHERE ${where}`);
      return rs.rows[0].n;
    }

    describe('arguments', () => {
      test('positional arguments bind in order', async () => {
        const rs = await db.execute('SELECT ? AS a, ? AS b, ? AS c', ['x', 'y', 'z']);
        assert.deepEqual(Array.from(rs.rows[0]), ['x', 'y', 'z']);
      });

      test('numbered positional arguments bind by index', async () => {
        const rs = await db.execute('SELECT ?2 AS a, ?1 AS b, ?2 AS c', ['first', 'second']);
        assert.deepEqual(Array.from(rs.rows[0]), ['second', 'first', 'second']);
      });

      test('named arguments without a prefix match :name, @name and $name', async () => {
        const rs = await db.execute({
          sql: 'SELECT :a AS a, @b AS b, $c AS c, :a || @b AS ab',
          args: { a: 'alpha', b: 'beta', c: 'gamma' },
        });
        assert.deepEqual(rs.columns, ['a', 'b', 'c', 'ab']);
        assert.deepEqual(Array.from(rs.rows[0]), ['alpha', 'beta', 'gamma', 'alphabeta']);
      });

      test('named arguments given with their prefix also bind', async () => {
        const rs = await db.execute({
          sql: 'SELECT :a AS a, @b AS b, $c AS c',
          args: { ':a': 1n, '@b': 2n, $c: 3n },
        });
        assert.deepEqual(Array.from(rs.rows[0]), [1, 2, 3]);
      });

      test('named arguments work in INSERT and WHERE', async () => {
        await db.execute('CREATE TABLE named_t (id INTEGER PRIMARY KEY, name TEXT)');
        await db.execute({ sql: 'INSERT INTO named_t VALUES (:id, $name)', args: { id: 7n, name: 'seven' } });
        const rs = await db.execute({ sql: 'SELECT name FROM named_t WHERE id = @id', args: { id: 7n } });
        assert.equal(rs.rows.length, 1);
        assert.equal(rs.rows[0].name, 'seven');
      });
    });

    describe('value round trips', () => {
      before(async () => {
        // No declared type, so SQLite stores every value with the type it was bound with.
        await db.execute('CREATE TABLE vals (id INTEGER PRIMARY KEY, v)');
      });

      let nextId = 1;
      /** Inserts `value` through a parameter and reads it back with its SQLite storage class. */
      async function roundTrip(value, client = db) {
        const id = BigInt(nextId++);
        await client.execute({ sql: 'INSERT INTO vals (id, v) VALUES (?, ?)', args: [id, value] });
        const rs = await client.execute({ sql: 'SELECT v, typeof(v) AS t FROM vals WHERE id = ?', args: [id] });
        assert.equal(rs.rows.length, 1);
        return { v: rs.rows[0].v, t: rs.rows[0].t };
      }

      test('a JS number is bound as REAL (whole numbers too)', async () => {
        assert.deepEqual(await roundTrip(42), { v: 42, t: 'real' });
        assert.deepEqual(await roundTrip(-7), { v: -7, t: 'real' });
      });

      test('floats keep full double precision', async () => {
        for (const x of [0.1 + 0.2, Math.PI, -2.5e-300, 1.7976931348623157e308, 5e-324, 123456789.123456789, 0.5]) {
          assert.deepEqual(await roundTrip(x), { v: x, t: 'real' }, `sent ${x}`);
        }
      });

      test('200 pseudo-random doubles round trip bit for bit', async () => {
        // A fixed xorshift sequence of 64-bit patterns, read as doubles (NaN and infinities skipped).
        let state = 0x9e3779b97f4a7c15n;
        const view = new DataView(new ArrayBuffer(8));
        const doubles = [11.528280205449093, 6.5039496866316245e280, 5.20073866767531e-73];
        while (doubles.length < 200) {
          state ^= (state << 13n) & 0xffffffffffffffffn;
          state ^= state >> 7n;
          state ^= (state << 17n) & 0xffffffffffffffffn;
          view.setBigUint64(0, state);
          const x = view.getFloat64(0);
          if (Number.isFinite(x)) doubles.push(x);
        }
        await db.execute('CREATE TABLE doubles (i INTEGER PRIMARY KEY, x REAL)');
        await db.batch(doubles.map((x, i) => ({ sql: 'INSERT INTO doubles VALUES (?, ?)', args: [BigInt(i), x] })), 'write');
        const rs = await db.execute('SELECT x FROM doubles ORDER BY i');
        const wrong = doubles.filter((x, i) => !Object.is(rs.rows[i].x, x));
        assert.deepEqual(wrong.slice(0, 5).map((x) => `${x} came back as ${rs.rows[doubles.indexOf(x)].x}`), [],
                         `${wrong.length} of ${doubles.length} doubles changed`);
      });

      test('a bigint is bound as INTEGER and comes back as bigint in intMode "bigint"', async () => {
        for (const x of [0n, 1n, -1n, 9007199254740993n, 9223372036854775807n, -9223372036854775808n]) {
          assert.deepEqual(await roundTrip(x, dbBig), { v: x, t: 'integer' });
        }
      });

      test('integers come back as numbers in the default intMode', async () => {
        assert.deepEqual(await roundTrip(123n), { v: 123, t: 'integer' });
        const rs = await db.execute('SELECT 9007199254740991 AS max_safe, -42 AS neg');
        assert.equal(rs.rows[0].max_safe, 9007199254740991);
        assert.equal(rs.rows[0].neg, -42);
      });

      test('an integer beyond 2^53 is delivered exactly (the number intMode refuses it)', async () => {
        const rs = await dbBig.execute('SELECT 9007199254740993 AS big');
        assert.equal(rs.rows[0].big, 9007199254740993n);
        await assert.rejects(db.execute('SELECT 9007199254740993 AS big'), RangeError);
      });

      test('text round trips, including unicode, emoji and the empty string', async () => {
        for (const s of ['hello', '', 'héllo wörld', '日本語テキスト', '🦊 👩‍👩‍👧 🏳️‍🌈', 'quote " backslash \\ tab \t newline \n cr \r', '\u0001\u001f\u007f', 'a'.repeat(10_000)]) {
          assert.deepEqual(await roundTrip(s), { v: s, t: 'text' });
        }
      });

      test('text with an embedded NUL character survives', async () => {
        assert.deepEqual(await roundTrip('before\u0000after'), { v: 'before\u0000after', t: 'text' });
      });

      test('blobs round trip from Uint8Array and ArrayBuffer, including empty ones', async () => {
        const bytes = Uint8Array.from([0, 1, 2, 127, 128, 254, 255]);
        for (const input of [bytes, bytes.buffer.slice(0), new Uint8Array(0), new ArrayBuffer(0), Uint8Array.from([0xff]), Uint8Array.from([0xff, 0xfe])]) {
          const expected = new Uint8Array(input instanceof ArrayBuffer ? input : input.buffer.slice(input.byteOffset, input.byteOffset + input.byteLength));
          const { v, t } = await roundTrip(input);
          assert.equal(t, 'blob');
          assert.ok(v instanceof ArrayBuffer, `expected an ArrayBuffer, got ${Object.prototype.toString.call(v)}`);
          assert.deepEqual(new Uint8Array(v), expected);
        }
      });

      test('a blob literal comes back as bytes', async () => {
        const rs = await db.execute("SELECT x'DEADBEEF' AS b, x'' AS empty");
        assert.deepEqual(new Uint8Array(rs.rows[0].b), Uint8Array.from([0xde, 0xad, 0xbe, 0xef]));
        assert.equal(rs.rows[0].empty.byteLength, 0);
      });

      test('null round trips', async () => {
        assert.deepEqual(await roundTrip(null), { v: null, t: 'null' });
      });

      test('booleans are bound as INTEGER 1 and 0', async () => {
        assert.deepEqual(await roundTrip(true), { v: 1, t: 'integer' });
        assert.deepEqual(await roundTrip(false), { v: 0, t: 'integer' });
      });

      test('a Date is bound as REAL milliseconds since the epoch', async () => {
        const d = new Date(Date.UTC(2024, 1, 29, 12, 30, 45, 678));
        assert.deepEqual(await roundTrip(d), { v: d.getTime(), t: 'real' });
      });

      test('large text and blob values (1 MiB) round trip', async () => {
        const text = 'ünïcødé-'.repeat(131_072); // 1 MiB of UTF-16 units, more in UTF-8
        assert.deepEqual(await roundTrip(text), { v: text, t: 'text' });
        const blob = new Uint8Array(1 << 20);
        for (let i = 0; i < blob.length; i++) blob[i] = (i * 7919) & 0xff;
        const { v, t } = await roundTrip(blob);
        assert.equal(t, 'blob');
        assert.deepEqual(new Uint8Array(v), blob);
      });
    });

    describe('result shape', () => {
      before(async () => {
        await db.execute('CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, photo BLOB, note VARCHAR(20))');
      });

      test('INSERT reports rowsAffected, lastInsertRowid as bigint, and no columns', async () => {
        const rs = await db.execute({ sql: 'INSERT INTO people (name, score) VALUES (?, ?)', args: ['ann', 1.5] });
        assert.deepEqual(rs.columns, []);
        assert.deepEqual(rs.columnTypes, []);
        assert.deepEqual(rs.rows, []);
        assert.equal(rs.rowsAffected, 1);
        assert.equal(rs.lastInsertRowid, 1n);

        const multi = await db.execute("INSERT INTO people (name, score) VALUES ('bob', 2.5), ('cy', 3.5)");
        assert.equal(multi.rowsAffected, 2);
        assert.equal(multi.lastInsertRowid, 3n);

        const explicit = await db.execute("INSERT INTO people (id, name) VALUES (1000, 'dee')");
        assert.equal(explicit.lastInsertRowid, 1000n);
      });

      test('SELECT reports columns, declared types, rows by index and name, and rowsAffected 0', async () => {
        const rs = await db.execute('SELECT id, name, score, photo, note, score * 2 AS doubled FROM people WHERE id <= 3 ORDER BY id');
        assert.deepEqual(rs.columns, ['id', 'name', 'score', 'photo', 'note', 'doubled']);
        assert.deepEqual(rs.columnTypes, ['INTEGER', 'TEXT', 'REAL', 'BLOB', 'VARCHAR(20)', '']);
        assert.equal(rs.rows.length, 3);
        assert.equal(rs.rowsAffected, 0);
        assert.ok(rs.lastInsertRowid === undefined || rs.lastInsertRowid === 0n,
                  `lastInsertRowid of a SELECT should be absent, got ${rs.lastInsertRowid}`);
        const [first, second] = rs.rows;
        assert.equal(first.length, 6);
        assert.equal(first[0], 1);
        assert.equal(first[1], 'ann');
        assert.equal(first.name, 'ann');
        assert.equal(first.score, 1.5);
        assert.equal(first.photo, null);
        assert.equal(first.doubled, 3);
        assert.equal(second.id, 2);
        assert.equal(second.name, 'bob');
        assert.deepEqual(rs.toJSON().columns, rs.columns);
      });

      test('a SELECT with no matching rows still reports its columns', async () => {
        const rs = await db.execute('SELECT id, name FROM people WHERE id < 0');
        assert.deepEqual(rs.columns, ['id', 'name']);
        assert.deepEqual(rs.columnTypes, ['INTEGER', 'TEXT']);
        assert.equal(rs.rows.length, 0);
      });

      test('UPDATE and DELETE report rowsAffected', async () => {
        const upd = await db.execute("UPDATE people SET note = 'x' WHERE id IN (2, 3)");
        assert.equal(upd.rowsAffected, 2);
        assert.deepEqual(upd.columns, []);
        const none = await db.execute('UPDATE people SET note = ? WHERE id = -1', ['nothing']);
        assert.equal(none.rowsAffected, 0);
        const del = await db.execute('DELETE FROM people WHERE id = 1000');
        assert.equal(del.rowsAffected, 1);
      });

      test("a SELECT right after a write in a batch does not report the write's row count", async () => {
        const [upd, sel] = await db.batch([
          "UPDATE people SET note = 'y' WHERE id <= 3",
          'SELECT count(*) AS n FROM people',
        ], 'write');
        assert.equal(upd.rowsAffected, 3);
        assert.equal(sel.rowsAffected, 0);
        assert.equal(sel.rows[0].n, 3);
      });

      test('RETURNING returns rows from a write', async () => {
        const rs = await db.execute({ sql: 'INSERT INTO people (name) VALUES (?) RETURNING id, name', args: ['eve'] });
        assert.deepEqual(rs.columns, ['id', 'name']);
        assert.equal(rs.rows.length, 1);
        assert.equal(rs.rows[0].name, 'eve');
        assert.equal(rs.rowsAffected, 1);
        assert.equal(BigInt(rs.rows[0].id), rs.lastInsertRowid);
      });
    });

    describe('batch', () => {
      before(async () => {
        await db.execute('CREATE TABLE acct (id INTEGER PRIMARY KEY, owner TEXT UNIQUE, balance INTEGER)');
        await db.execute("INSERT INTO acct VALUES (1, 'root', 100)");
      });

      for (const mode of ['write', 'read', 'deferred']) {
        test(`a "${mode}" batch returns one result per statement`, async () => {
          const results = await db.batch([
            'SELECT id, owner FROM acct WHERE id = 1',
            { sql: 'SELECT ? + ? AS sum', args: [2n, 3n] },
          ], mode);
          assert.equal(results.length, 2);
          assert.deepEqual(results[0].columns, ['id', 'owner']);
          assert.equal(results[0].rows[0].owner, 'root');
          assert.equal(results[1].rows[0].sum, 5);
        });

        test(`a failing step rolls back the whole "${mode}" batch`, async () => {
          const owner = `batch-${mode}`;
          const err = await rejectsWithCode(db.batch([
            { sql: 'INSERT INTO acct (owner, balance) VALUES (?, 10)', args: [owner] },
            { sql: 'UPDATE acct SET balance = balance - 10 WHERE id = 1', args: [] },
            "INSERT INTO acct (owner, balance) VALUES ('root', 0)", // UNIQUE violation
            { sql: 'INSERT INTO acct (owner, balance) VALUES (?, 20)', args: [`${owner}-after`] },
          ], mode), 'SQLITE_CONSTRAINT');
          assert.equal(err.statementIndex, 2);
          assert.equal(await count('acct', `owner LIKE '${owner}%'`), 0);
          const rs = await db.execute('SELECT balance FROM acct WHERE id = 1');
          assert.equal(rs.rows[0].balance, 100);
        });
      }

      test('a successful write batch commits every statement', async () => {
        const results = await db.batch([
          { sql: 'INSERT INTO acct (owner, balance) VALUES (?, ?)', args: ['ok-1', 1n] },
          { sql: 'INSERT INTO acct (owner, balance) VALUES (?, ?)', args: ['ok-2', 2n] },
          "SELECT sum(balance) AS total FROM acct WHERE owner LIKE 'ok-%'",
        ], 'write');
        assert.equal(results[0].rowsAffected, 1);
        assert.equal(typeof results[0].lastInsertRowid, 'bigint');
        assert.equal(results[1].lastInsertRowid, results[0].lastInsertRowid + 1n);
        assert.equal(results[2].rows[0].total, 3);
        assert.equal(await count('acct', "owner LIKE 'ok-%'"), 2);
      });

      test('a batch that reuses one SQL text many times (the client caches it with store_sql)', async () => {
        const stmts = [];
        for (let i = 0; i < 100; i++) stmts.push({ sql: 'INSERT INTO acct (owner, balance) VALUES (?, ?)', args: [`many-${i}`, BigInt(i)] });
        const results = await db.batch(stmts, 'write');
        assert.equal(results.length, 100);
        const rs = await db.execute("SELECT count(*) AS n, sum(balance) AS s FROM acct WHERE owner LIKE 'many-%'");
        assert.equal(rs.rows[0].n, 100);
        assert.equal(rs.rows[0].s, 4950);
      });
    });

    describe('interactive transactions', () => {
      before(async () => {
        await db.execute('CREATE TABLE tx_t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)');
      });

      test('commit makes the writes visible to other connections, not before', async () => {
        const tx = await db.transaction('write');
        try {
          await tx.execute({ sql: 'INSERT INTO tx_t (v) VALUES (?)', args: ['committed'] });
          const inside = await tx.execute("SELECT count(*) AS n FROM tx_t WHERE v = 'committed'");
          assert.equal(inside.rows[0].n, 1);
          assert.equal(await count('tx_t', "v = 'committed'"), 0, 'an uncommitted row is visible outside its transaction');
          await tx.commit();
        } finally {
          tx.close();
        }
        assert.equal(tx.closed, true);
        assert.equal(await count('tx_t', "v = 'committed'"), 1);
      });

      test('rollback discards the writes', async () => {
        const tx = await db.transaction('write');
        try {
          await tx.execute("INSERT INTO tx_t (v) VALUES ('rolled-back')");
          const rs = await tx.execute("SELECT v FROM tx_t WHERE v = 'rolled-back'");
          assert.equal(rs.rows.length, 1);
          await tx.rollback();
        } finally {
          tx.close();
        }
        assert.equal(await count('tx_t', "v = 'rolled-back'"), 0);
      });

      test('an error inside a transaction does not roll it back', async () => {
        const tx = await db.transaction('write');
        try {
          await tx.execute("INSERT INTO tx_t (v) VALUES ('before-error')");
          await rejectsWithCode(tx.execute("INSERT INTO tx_t (v) VALUES ('before-error')"), 'SQLITE_CONSTRAINT');
          await assert.rejects(tx.execute('SELECT * FROM no_such_table'), /no such table/);
          await tx.execute("INSERT INTO tx_t (v) VALUES ('after-error')");
          await tx.commit();
        } finally {
          tx.close();
        }
        assert.equal(await count('tx_t', "v IN ('before-error', 'after-error')"), 2);
      });

      test('batch and executeMultiple inside a transaction', async () => {
        const tx = await db.transaction('write');
        try {
          const results = await tx.batch([
            "INSERT INTO tx_t (v) VALUES ('tb-1')",
            "INSERT INTO tx_t (v) VALUES ('tb-2')",
            "SELECT count(*) AS n FROM tx_t WHERE v LIKE 'tb-%'",
          ]);
          assert.equal(results[2].rows[0].n, 2);
          await tx.executeMultiple("INSERT INTO tx_t (v) VALUES ('tb-3'); INSERT INTO tx_t (v) VALUES ('tb-4');");
          await tx.rollback();
        } finally {
          tx.close();
        }
        assert.equal(await count('tx_t', "v LIKE 'tb-%'"), 0);
      });

      test('a read transaction and a write transaction are open at the same time, isolated', async () => {
        await db.execute("INSERT INTO tx_t (v) VALUES ('snapshot-base')");
        const base = await count('tx_t');
        const writer = await db.transaction('write');
        const reader = await db.transaction('read');
        try {
          await writer.execute("INSERT INTO tx_t (v) VALUES ('concurrent')");
          // The reader's snapshot starts here, before the writer commits.
          const before = await reader.execute('SELECT count(*) AS n FROM tx_t');
          assert.equal(before.rows[0].n, base);
          await writer.commit();
          const during = await reader.execute('SELECT count(*) AS n FROM tx_t');
          assert.equal(during.rows[0].n, base, 'a read transaction saw a commit made after it started');
          await reader.commit();
        } finally {
          writer.close();
          reader.close();
        }
        assert.equal(await count('tx_t'), base + 1);
      });

      test('a second write transaction waits for the first to commit, then proceeds', async () => {
        const first = await db.transaction('write');
        const second = await db.transaction('write');
        try {
          await first.execute("INSERT INTO tx_t (v) VALUES ('first')");
          // The second BEGIN IMMEDIATE has to wait for the write lock (busy timeout 5 s).
          let secondSettled = false;
          const secondInsert = second.execute("INSERT INTO tx_t (v) VALUES ('second')");
          secondInsert.then(() => { secondSettled = true; }, () => { secondSettled = true; });
          await sleep(300);
          assert.equal(secondSettled, false, 'the second write transaction ran while the first held the write lock');
          await first.commit();
          const rs = await secondInsert;
          assert.equal(rs.rowsAffected, 1);
          const seen = await second.execute("SELECT count(*) AS n FROM tx_t WHERE v IN ('first', 'second')");
          assert.equal(seen.rows[0].n, 2);
          await second.commit();
        } finally {
          first.close();
          second.close();
        }
        assert.equal(await count('tx_t', "v IN ('first', 'second')"), 2);
      });

      test('a deferred transaction commits', async () => {
        const tx = await db.transaction('deferred');
        try {
          const rs = await tx.execute('SELECT count(*) AS n FROM tx_t');
          assert.equal(typeof rs.rows[0].n, 'number');
          await tx.execute("INSERT INTO tx_t (v) VALUES ('deferred')");
          await tx.commit();
        } finally {
          tx.close();
        }
        assert.equal(await count('tx_t', "v = 'deferred'"), 1);
      });

      test('savepoints work inside a transaction', async () => {
        const tx = await db.transaction('write');
        try {
          await tx.execute("INSERT INTO tx_t (v) VALUES ('sp-outer')");
          await tx.execute('SAVEPOINT sp1');
          await tx.execute("INSERT INTO tx_t (v) VALUES ('sp-inner')");
          await tx.execute('ROLLBACK TO sp1');
          await tx.execute('RELEASE sp1');
          await tx.commit();
        } finally {
          tx.close();
        }
        assert.equal(await count('tx_t', "v = 'sp-outer'"), 1);
        assert.equal(await count('tx_t', "v = 'sp-inner'"), 0);
      });
    });

    describe('executeMultiple and migrate', () => {
      test('executeMultiple runs every statement of a script', async () => {
        await db.executeMultiple(`
          CREATE TABLE multi (a INTEGER);
          INSERT INTO multi VALUES (1);
          -- a comment between statements
          INSERT INTO multi VALUES (2);
          INSERT INTO multi VALUES ('three;with;semicolons');
        `);
        const rs = await db.execute('SELECT a FROM multi ORDER BY rowid');
        assert.deepEqual(rs.rows.map((r) => r.a), [1, 2, 'three;with;semicolons']);
      });

      test('executeMultiple stops at the first error and keeps what ran before it', async () => {
        await db.execute('CREATE TABLE multi_err (a INTEGER PRIMARY KEY)');
        await rejectsWithCode(db.executeMultiple(
          'INSERT INTO multi_err VALUES (1); INSERT INTO multi_err VALUES (1); INSERT INTO multi_err VALUES (2);',
        ), 'SQLITE_CONSTRAINT');
        const rs = await db.execute('SELECT a FROM multi_err ORDER BY a');
        assert.deepEqual(rs.rows.map((r) => r.a), [1]);
      });

      test('migrate applies schema changes atomically with foreign keys off', async () => {
        const results = await db.migrate([
          'CREATE TABLE mig_parent (id INTEGER PRIMARY KEY)',
          'CREATE TABLE mig_child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES mig_parent(id))',
          'INSERT INTO mig_child VALUES (1, 999)', // dangling reference: allowed with foreign_keys=off
        ]);
        assert.equal(results.length, 3);
        assert.equal(results[2].rowsAffected, 1);
        assert.equal(await count('mig_child'), 1);
      });

      test('a failing migration leaves no trace', async () => {
        await rejectsWithCode(db.migrate([
          'CREATE TABLE mig_bad (a UNIQUE)',
          'INSERT INTO mig_bad VALUES (1)',
          'INSERT INTO mig_bad VALUES (1)',
        ]), 'SQLITE_CONSTRAINT');
        const rs = await db.execute("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'mig_bad'");
        assert.equal(rs.rows[0].n, 0);
      });
    });

    describe('errors', () => {
      before(async () => {
        await db.execute('CREATE TABLE cons (id INTEGER PRIMARY KEY, u TEXT UNIQUE, nn TEXT NOT NULL, c INTEGER CHECK (c > 0))');
        await db.execute("INSERT INTO cons VALUES (1, 'u1', 'x', 1)");
      });

      test('PRIMARY KEY, UNIQUE, NOT NULL and CHECK violations surface as SQLITE_CONSTRAINT', async () => {
        const cases = [
          ["INSERT INTO cons VALUES (1, 'u2', 'x', 1)", /UNIQUE constraint failed: cons\.id/],
          ["INSERT INTO cons VALUES (2, 'u1', 'x', 1)", /UNIQUE constraint failed: cons\.u/],
          ["INSERT INTO cons VALUES (3, 'u3', NULL, 1)", /NOT NULL constraint failed: cons\.nn/],
          ["INSERT INTO cons VALUES (4, 'u4', 'x', 0)", /CHECK constraint failed/],
        ];
        for (const [sql, message] of cases) {
          const err = await rejectsWithCode(db.execute(sql), 'SQLITE_CONSTRAINT');
          assert.match(err.message, message);
        }
        assert.equal(await count('cons'), 1);
      });

      test('a syntax error is reported with SQLite\'s message', async () => {
        let caught;
        await assert.rejects(db.execute('SELEC 1'), (err) => { caught = err; return true; });
        assert.ok(caught instanceof LibsqlError, `expected a LibsqlError, got ${caught}`);
        assert.match(caught.message, /near "SELEC": syntax error/);
        assert.equal(typeof caught.code, 'string');
        assert.notEqual(caught.code, 'SERVER_ERROR', 'a SQL error must be a Hrana error, not an HTTP failure');
        assert.notEqual(caught.code, 'HRANA_PROTO_ERROR');
      });

      test('a reference to a missing table or column is reported', async () => {
        await assert.rejects(db.execute('SELECT * FROM no_such_table'), (err) => {
          assert.ok(err instanceof LibsqlError);
          assert.match(err.message, /no such table: no_such_table/);
          return true;
        });
        await assert.rejects(db.execute('SELECT no_such_column FROM cons'), /no such column: no_such_column/);
      });

      test('execute takes exactly one statement', async () => {
        await rejectsWithCode(db.execute('SELECT 1; SELECT 2'), 'SQL_MANY_STATEMENTS');
        await rejectsWithCode(db.execute(''), 'SQL_NO_STATEMENT');
        await rejectsWithCode(db.execute('  -- only a comment'), 'SQL_NO_STATEMENT');
        const rs = await db.execute('SELECT 1 AS one;  -- a trailing semicolon and comment are fine\n');
        assert.equal(rs.rows[0].one, 1);
      });

      test('arguments that match no parameter are rejected', async () => {
        await rejectsWithCode(db.execute('SELECT ?', [1n, 2n]), 'ARGS_INVALID');
        await rejectsWithCode(db.execute({ sql: 'SELECT :a', args: { b: 1n } }), 'ARGS_INVALID');
      });

      test('the client keeps working after errors', async () => {
        const rs = await db.execute('SELECT 1 AS one');
        assert.equal(rs.rows[0].one, 1);
      });
    });

    describe('large results', () => {
      test('10,000 rows come back intact', async () => {
        await db.execute('CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT, half REAL)');
        await db.execute(`
          WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 10000)
          INSERT INTO big SELECT i, 'row-' || i || '-' || hex(randomblob(8)), i / 2.0 FROM seq`);
        const rs = await db.execute('SELECT id, label, half FROM big ORDER BY id');
        assert.equal(rs.rows.length, 10_000);
        let sum = 0;
        rs.rows.forEach((row, i) => {
          assert.equal(row.id, i + 1);
          assert.ok(row.label.startsWith(`row-${i + 1}-`), `row ${i + 1} has label ${row.label}`);
          assert.equal(row.label.length, `row-${i + 1}-`.length + 16);
          assert.equal(row.half, (i + 1) / 2);
          sum += row.id;
        });
        assert.equal(sum, 50_005_000);
      });

      test('a result over the response size limit is an error, not a truncated answer', async () => {
        await rejectsWithCode(db.execute('SELECT randomblob(20 * 1024 * 1024) AS b'), 'RESPONSE_TOO_LARGE');
        const rs = await db.execute('SELECT count(*) AS n FROM big');
        assert.equal(rs.rows[0].n, 10_000);
      });

      test('many concurrent requests are all answered correctly', async () => {
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) =>
          db.execute({ sql: 'SELECT ? * 2 AS d, (SELECT count(*) FROM big) AS n', args: [BigInt(i)] })));
        results.forEach((rs, i) => {
          assert.equal(rs.rows[0].d, i * 2);
          assert.equal(rs.rows[0].n, 10_000);
        });
      });
    });
  });
}
