// The `quire` command line beside the server: `quire token keygen|create` (files, output,
// the claims of the JWT and its signature) and `quire db ...` against a real server's admin API
// (--json round trips, human output, exit codes 0/1/2, the admin key).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { quireBin, startServer } from './server.mjs';

/** Runs `quire ARGS`; resolves to { code, stdout, stderr }. `env` adds to a clean environment. */
function quire(args, { env = {}, input } = {}) {
  return new Promise((resolve, reject) => {
    const baseEnv = { ...process.env };
    delete baseEnv.QUIRE_ADMIN_URL;
    delete baseEnv.QUIRE_ADMIN_AUTH_KEY;
    // stdin is /dev/null unless `input` is given: never a terminal either way.
    const stdin = input === undefined ? 'ignore' : 'pipe';
    const child = spawn(quireBin(), args, { env: { ...baseEnv, ...env }, stdio: [stdin, 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => { stdout += c; });
    child.stderr.setEncoding('utf8').on('data', (c) => { stderr += c; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (child.stdin) {
      child.stdin.on('error', () => {});  // EPIPE when quire exits without reading: fine
      child.stdin.end(input);
    }
  });
}

/** Like quire() but asserts exit 0 and returns stdout. */
async function ok(args, options) {
  const r = await quire(args, options);
  assert.equal(r.code, 0, `quire ${args.join(' ')} exited ${r.code}\n${r.stderr}`);
  return r.stdout;
}

const decode = (segment) => JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));

const tmpDirs = [];
function tmp() {
  const dir = mkdtempSync(path.join(tmpdir(), 'quire-cli-'));
  tmpDirs.push(dir);
  return dir;
}
after(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

describe('help', () => {
  test('quire --help lists serve, token and db', async () => {
    const out = await ok(['--help']);
    for (const word of ['serve', 'token', 'db']) assert.match(out, new RegExp(`\\n  ${word} `));
  });

  test('quire token --help and quire db --help name every subcommand', async () => {
    const token = await ok(['token', '--help']);
    for (const word of ['keygen', 'create']) assert.match(token, new RegExp(`\\n  ${word} `));
    const db = await ok(['db', '--help']);
    for (const word of ['create', 'list', 'delete', 'fork', 'config', 'stats', 'checkpoint']) {
      assert.match(db, new RegExp(`\\n  ${word} `));
    }
    assert.match(db, /QUIRE_ADMIN_URL/);
    assert.match(db, /QUIRE_ADMIN_AUTH_KEY/);
  });

  test('a usage error exits 2', async () => {
    assert.equal((await quire(['token'])).code, 2);
    assert.equal((await quire(['db', 'stats'])).code, 2);
    assert.equal((await quire(['db', 'list', '--no-such-option'])).code, 2);
  });
});

describe('quire token keygen', () => {
  test('--json writes a 0600 private key and a public key, and prints the raw key', async () => {
    const dir = path.join(tmp(), 'keys');  // created on demand
    const out = JSON.parse(await ok(['token', 'keygen', '--out-dir', dir, '--json']));
    assert.deepEqual(Object.keys(out).sort(), ['private_key_file', 'public_key_base64url', 'public_key_file']);
    assert.equal(out.private_key_file, path.join(dir, 'jwt_private.pem'));
    assert.equal(out.public_key_file, path.join(dir, 'jwt_public.pem'));
    assert.equal(statSync(out.private_key_file).mode & 0o777, 0o600);
    assert.match(readFileSync(out.private_key_file, 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
    const publicPem = readFileSync(out.public_key_file, 'utf8');
    assert.match(publicPem, /^-----BEGIN PUBLIC KEY-----\n/);
    // The raw key is the last 32 bytes of the SPKI structure, in unpadded base64url.
    assert.match(out.public_key_base64url, /^[A-Za-z0-9_-]{43}$/);
    const spki = createPublicKey(publicPem).export({ format: 'der', type: 'spki' });
    assert.equal(Buffer.from(out.public_key_base64url, 'base64url').toString('hex'),
                 spki.subarray(-32).toString('hex'));
  });

  test('refuses to overwrite existing files unless --force', async () => {
    const dir = tmp();
    await ok(['token', 'keygen', '--out-dir', dir, '--json']);
    const before = readFileSync(path.join(dir, 'jwt_private.pem'), 'utf8');
    const again = await quire(['token', 'keygen', '--out-dir', dir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists/);
    assert.equal(readFileSync(path.join(dir, 'jwt_private.pem'), 'utf8'), before);

    await ok(['token', 'keygen', '--out-dir', dir, '--force']);
    assert.notEqual(readFileSync(path.join(dir, 'jwt_private.pem'), 'utf8'), before);
  });

  test('the human output shows the raw key and how to start the server', async () => {
    const dir = tmp();
    const out = await ok(['token', 'keygen', '--out-dir', dir]);
    assert.match(out, /\n  [A-Za-z0-9_-]{43}\n/);
    assert.ok(out.includes(`quire serve --auth-jwt-key-file ${path.join(dir, 'jwt_public.pem')}`), out);
  });
});

describe('quire token create', () => {
  let dir;
  let keyFile;
  let publicKey;
  before(async () => {
    dir = tmp();
    await ok(['token', 'keygen', '--out-dir', dir, '--json']);
    keyFile = path.join(dir, 'jwt_private.pem');
    publicKey = createPublicKey(readFileSync(path.join(dir, 'jwt_public.pem')));
  });

  /** Runs token create with `args`; checks the output is one signed JWT; returns its payload. */
  async function create(args) {
    const out = await ok(['token', 'create', '--private-key', keyFile, ...args]);
    assert.match(out, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/, 'only the token and a newline');
    const [header, payload, signature] = out.trimEnd().split('.');
    assert.deepEqual(decode(header), { alg: 'EdDSA', typ: 'JWT' });
    assert.ok(verify(null, Buffer.from(`${header}.${payload}`), publicKey,
                     Buffer.from(signature, 'base64url')), 'Ed25519 signature');
    return decode(payload);
  }

  test('defaults: read-write, every namespace, expires in 7 days', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = await create([]);
    assert.equal(claims.a, 'rw');
    assert.equal(claims.id, undefined);
    assert.equal(claims.p, undefined);
    assert.ok(Math.abs(claims.exp - (now + 7 * 86400)) <= 5, `exp ${claims.exp}`);
  });

  test('one namespace becomes id, with the access level and lifetime given', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = await create(['--namespace', 'app', '--access', 'ro', '--expires', '15m']);
    assert.equal(claims.a, 'ro');
    assert.equal(claims.id, 'app');
    assert.ok(Math.abs(claims.exp - (now + 900)) <= 5, `exp ${claims.exp}`);
  });

  test('several namespaces become a permission map under the access level', async () => {
    const claims = await create(['--namespace', 'a', '--namespace', 'b', '--access', 'roa']);
    assert.equal(claims.a, 'roa');
    assert.equal(claims.id, undefined);
    assert.deepEqual(claims.p, { roa: { ns: ['a', 'b'] } });
  });

  test('--expires never leaves exp out', async () => {
    const claims = await create(['--expires', 'never']);
    assert.equal(claims.exp, undefined);
  });

  test('bad arguments exit 2 and print nothing on stdout', async () => {
    for (const args of [['--expires', '7'], ['--expires', '0s'], ['--access', 'admin'], ['--namespace', '']]) {
      const r = await quire(['token', 'create', '--private-key', keyFile, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
    }
    assert.equal((await quire(['token', 'create'])).code, 2);  // --private-key is required
  });

  test('an unreadable key file exits 1', async () => {
    const r = await quire(['token', 'create', '--private-key', path.join(dir, 'missing.pem')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /missing\.pem/);
    assert.equal(r.stdout, '');
  });

  test('a server started with the public key accepts the token and refuses a request without one', async () => {
    const server = await startServer({ args: ['--auth-jwt-key-file', path.join(dir, 'jwt_public.pem')] });
    try {
      const token = (await ok(['token', 'create', '--private-key', keyFile, '--expires', '1h'])).trim();
      const body = JSON.stringify({ requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }, { type: 'close' }] });
      const denied = await fetch(`${server.url}/v2/pipeline`, { method: 'POST', body });
      assert.equal(denied.status, 401);
      const allowed = await fetch(`${server.url}/v2/pipeline`, {
        method: 'POST', body, headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(allowed.status, 200, await allowed.text());
    } finally {
      await server.stop();
    }
  });
});

/** The admin URL of a server started with --admin-listen (from server.mjs, else its stdout). */
function adminUrlOf(server) {
  if (server.adminUrl) return server.adminUrl;
  const match = /admin listening on (http:\/\/\S+)/.exec(server.logs());
  assert.ok(match, `no "admin listening on" line:\n${server.logs()}`);
  return match[1].replace(/\/+$/, '');
}

describe('quire db against the admin API', () => {
  const key = 'cli-test-admin-key';
  let server;
  let env;
  before(async () => {
    server = await startServer({ args: ['--admin-listen', '127.0.0.1:0', '--admin-auth-key', key] });
    env = { QUIRE_ADMIN_URL: adminUrlOf(server), QUIRE_ADMIN_AUTH_KEY: key };
  });
  after(async () => {
    if (server) await server.stop();
  });

  const db = (args, options = {}) => quire(['db', ...args], { env, ...options });
  const json = async (args) => {
    const r = await db([...args, '--json']);
    assert.equal(r.code, 0, `quire db ${args.join(' ')} exited ${r.code}\n${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const names = async () => (await json(['list'])).namespaces.map((n) => n.name).sort();

  /** Rows of `sql` run in namespace `ns` through the main port. */
  async function query(ns, sql) {
    const res = await fetch(`${server.url}/v2/pipeline`, {
      method: 'POST',
      headers: { 'x-namespace': ns },
      body: JSON.stringify({ requests: [{ type: 'execute', stmt: { sql } }, { type: 'close' }] }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const out = await res.json();
    assert.equal(out.results[0].type, 'ok', JSON.stringify(out.results[0]));
    return out.results[0].response.result.rows.map((row) => row.map((v) => v.value));
  }

  test('create from a dump, list, fork, stats, config, checkpoint, delete (--json)', async () => {
    const dump = path.join(tmp(), 'app.sql');
    writeFileSync(dump, "CREATE TABLE t(x INTEGER);\nINSERT INTO t VALUES (1), (2), (3);\n");
    assert.deepEqual(await json(['create', 'app', '--from-dump', dump, '--max-db-size', '10MB',
                                 '--txn-timeout', '3']), {});
    assert.deepEqual(await query('app', 'SELECT count(*) FROM t'), [['3']]);

    const listed = (await json(['list'])).namespaces.find((n) => n.name === 'app');
    assert.ok(listed, 'app is listed');
    assert.equal(typeof listed.size_bytes, 'number');
    assert.ok(listed.size_bytes > 0);
    assert.equal(typeof listed.open, 'boolean');
    assert.ok(listed.last_access === null || !Number.isNaN(Date.parse(listed.last_access)));

    assert.deepEqual(await json(['fork', 'app', 'app-copy']), {});
    assert.deepEqual(await names(), ['app', 'app-copy', 'default']);
    assert.deepEqual(await query('app-copy', 'SELECT x FROM t ORDER BY x'), [['1'], ['2'], ['3']]);

    const stats = await json(['stats', 'app']);
    assert.equal(stats.id, 'app');
    for (const k of ['rows_read_count', 'rows_written_count', 'query_count', 'storage_bytes_used']) {
      assert.equal(typeof stats[k], 'number', k);
    }
    assert.ok(stats.query_count >= 1);

    const config = await json(['config', 'app']);
    assert.equal(config.max_db_size, 10_000_000);  // 10MB is decimal, as the admin API reads it
    assert.equal(config.txn_timeout_s, 3);
    assert.equal(config.block_writes, false);

    const changed = await json(['config', 'app', '--set', 'block_writes=true',
                                '--set', 'block_reason=read-only for a migration', '--set', 'max_db_size=']);
    assert.equal(changed.block_writes, true);
    assert.equal(changed.block_reason, 'read-only for a migration');
    assert.equal(changed.max_db_size, null);
    assert.deepEqual(await json(['config', 'app']), changed);

    assert.deepEqual(await json(['checkpoint', 'app']), {});

    assert.deepEqual(await json(['delete', 'app-copy', '--yes']), {});
    assert.deepEqual(await json(['delete', 'app', '--yes']), {});
    assert.deepEqual(await names(), ['default']);
  });

  test('human output: a table for list, key/value lines for stats and config', async () => {
    assert.equal((await db(['create', 'human'])).stdout, "created namespace 'human'\n");
    const list = (await db(['list'])).stdout.split('\n');
    assert.match(list[0], /^NAME +SIZE +LAST ACCESS +OPEN$/);
    assert.ok(list.some((line) => /^human +\d+(\.\d)? (B|KiB|MiB) +\S+ +(yes|no)$/.test(line)), list.join('\n'));

    const stats = (await db(['stats', 'human'])).stdout;
    assert.match(stats, /^id +human$/m);
    assert.match(stats, /^storage_bytes_used +\d+ \(\d+(\.\d)? (B|KiB|MiB)\)$/m);

    assert.match((await db(['config', 'human'])).stdout, /^block_writes +false$/m);
    assert.equal((await db(['fork', 'human', 'human2'])).stdout, "forked 'human' to 'human2'\n");
    assert.equal((await db(['checkpoint', 'human'])).stdout, "checkpointed 'human'\n");
    assert.equal((await db(['delete', 'human2', '--yes'])).stdout, "deleted namespace 'human2'\n");
    assert.equal((await db(['delete', 'human', '--yes'])).code, 0);
  });

  test("server errors exit 1 with the server's message on stderr", async () => {
    const missing = await db(['stats', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope/);
    assert.match(missing.stderr, /HTTP 404/);
    assert.equal(missing.stdout, '');

    await db(['create', 'twice']);
    const twice = await db(['create', 'twice', '--json']);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /already exists.*HTTP 409/);
    assert.equal(twice.stdout, '');
    await db(['delete', 'twice', '--yes']);

    const bad = await db(['create', 'bad.name']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /HTTP 400/);
  });

  test('usage errors exit 2 without calling the server', async () => {
    for (const args of [['config', 'default', '--set', 'no_such_key=1'],
                        ['config', 'default', '--set', 'block_writes=maybe'],
                        ['create', 'x', '--max-db-size', 'lots'],
                        ['create', 'x', '--txn-timeout', '-1'],
                        ['list', '--admin-url', 'https://127.0.0.1:1'],
                        ['fork', 'only-one']]) {
      const r = await db(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
    assert.deepEqual(await names(), ['default']);
  });

  test('delete without --yes refuses when stdin is not a terminal', async () => {
    await db(['create', 'keep']);
    const r = await db(['delete', 'keep'], { input: 'keep\n' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--yes/);
    assert.ok((await names()).includes('keep'));
    await db(['delete', 'keep', '--yes']);
  });

  test('the admin key: missing or wrong is 401 (exit 1); --admin-auth-key beats the env', async () => {
    const none = await quire(['db', 'list'], { env: { QUIRE_ADMIN_URL: env.QUIRE_ADMIN_URL } });
    assert.equal(none.code, 1);
    assert.match(none.stderr, /HTTP 401/);
    const wrong = await db(['list', '--admin-auth-key', 'wrong']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /HTTP 401/);
    const flag = await quire(['db', 'list', '--admin-url', env.QUIRE_ADMIN_URL, '--admin-auth-key', key]);
    assert.equal(flag.code, 0, flag.stderr);
  });

  test('an unreachable admin URL exits 1 and says so', async () => {
    const r = await quire(['db', 'list', '--admin-url', 'http://127.0.0.1:1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot connect to http:\/\/127\.0\.0\.1:1/);
  });
});
