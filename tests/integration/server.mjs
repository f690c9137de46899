// Starts and stops a real quire server for one test file.
//
// Each call to startServer() gets a fresh temporary data directory, spawns
// `$QUIRE_BIN serve --data <dir> --listen 127.0.0.1:0`, and waits for the
// `listening on http://127.0.0.1:PORT` line the server prints once it accepts
// connections. stop() sends SIGTERM, waits for the exit (SIGKILL after 5 s), and
// removes the directory. A server that needed SIGKILL, exited with a non-zero
// status, or died before stop() was called makes stop() throw, with the server's
// output attached, because all of those are server bugs.
//
// useServer() wires this into node:test's before()/after() hooks of the current
// file or describe() block.
//
// Crash tests: startServer({ dataDir }) runs a server on an existing data directory (which
// that server then never removes), and kill() SIGKILLs a server on purpose and waits for it
// to exit without throwing; a later stop() of a killed server only removes its directory.

import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';

const START_TIMEOUT_MS = 10_000;
// How long a server may take to exit after SIGTERM before the test fails. A sanitizer build checks
// for leaks on the way out, which on a loaded machine takes seconds (scripts/test-all gives it
// QUIRE_TEST_STOP_TIMEOUT_MS=20000).
const STOP_TIMEOUT_MS = Number(process.env.QUIRE_TEST_STOP_TIMEOUT_MS ?? 5_000);
const LOG_TAIL_BYTES = 64 * 1024;

/** The server binary from $QUIRE_BIN; throws (never skips) when it is unset or unusable. */
export function quireBin() {
  const bin = process.env.QUIRE_BIN;
  if (!bin) {
    throw new Error('QUIRE_BIN is not set: point it at the quire server binary, e.g. ' +
                    'QUIRE_BIN=$PWD/build/release/quire tests/integration/run');
  }
  if (!path.isAbsolute(bin)) {
    throw new Error(`QUIRE_BIN must be an absolute path, got ${JSON.stringify(bin)}`);
  }
  try {
    accessSync(bin, fsConstants.X_OK);
  } catch (err) {
    throw new Error(`QUIRE_BIN=${bin} is not an executable file (${err.code})`);
  }
  return bin;
}

/** Keeps the last `limit` bytes of a stream of chunks, for error messages. */
class Tail {
  constructor(limit) {
    this.limit = limit;
    this.text = '';
  }
  push(chunk) {
    this.text += chunk;
    if (this.text.length > this.limit) this.text = this.text.slice(-this.limit);
  }
}

/**
 * Starts a server. Options: `args` (extra command-line arguments after the defaults);
 * `dataDir` (an existing data directory to serve instead of a fresh temporary one; it is
 * left in place on stop()); `listen` (HOST:PORT instead of 127.0.0.1:0, to restart a server
 * on the port another process knows it by); `env` (variables added to the server's environment,
 * e.g. an S3 store's AWS_*).
 * Resolves to { url, adminUrl, port, host, pid, dataDir, stop(), kill(), logs(), isRunning() };
 * adminUrl is set when `args` turn the admin API on (it waits for `admin listening on URL`).
 */
export async function startServer({ args = [], dataDir: givenDataDir, listen = '127.0.0.1:0', env } = {}) {
  const bin = quireBin();
  const ownsDataDir = givenDataDir === undefined;
  const dataDir = ownsDataDir ? mkdtempSync(path.join(tmpdir(), 'quire-it-')) : givenDataDir;
  const removeDataDir = () => {
    if (ownsDataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  const argv = ['serve', '--data', dataDir, '--listen', listen, ...args];
  const wantsAdmin = args.some((a) => /^--admin-listen(-addr)?(=|$)/.test(a));
  const child = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: env ? { ...process.env, ...env } : process.env });
  const stdout = new Tail(LOG_TAIL_BYTES);
  const stderr = new Tail(LOG_TAIL_BYTES);
  const logs = () =>
    `command: ${bin} ${argv.join(' ')}\n--- stdout ---\n${stdout.text}\n--- stderr ---\n${stderr.text}`;

  // The pipes are drained for the server's whole life: a full pipe would block its logging.
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => stderr.push(chunk));

  let exitInfo = null;
  let stopping = false;
  let killedOnPurpose = false;
  // If the test process goes away without stop() (a crash, Ctrl-C), don't leave a server behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      process.off('exit', killOnExit);
      resolve(exitInfo);
    });
  });

  let url;
  let adminUrl;
  try {
    [url, adminUrl] = await new Promise((resolve, reject) => {
      let pending = '';
      let found = false;
      const timer = setTimeout(() => {
        reject(new Error(`quire did not print "listening on" within ${START_TIMEOUT_MS} ms\n${logs()}`));
      }, START_TIMEOUT_MS);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`could not start quire: ${err.message}\n${logs()}`));
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`quire exited before listening (code ${code}, signal ${signal})\n${logs()}`));
      });
      child.stdout.on('data', (chunk) => {
        stdout.push(chunk);
        if (found) return;
        pending += chunk;
        const match = /(?:^|\n)listening on (http:\/\/\S+)/.exec(pending);
        const admin = /(?:^|\n)admin listening on (http:\/\/\S+)/.exec(pending);
        if (match && (admin || !wantsAdmin)) {
          found = true;
          clearTimeout(timer);
          resolve([match[1].replace(/\/+$/, ''), admin?.[1].replace(/\/+$/, '')]);
        }
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    removeDataDir();
    throw err;
  }

  const { hostname: host, port } = new URL(url);

  /**
   * SIGKILLs the server (a crash, as far as the data directory is concerned) and resolves to
   * its { code, signal } once it has exited. Never throws; keeps the data directory.
   */
  async function kill() {
    if (exitInfo === null && !stopping) {
      killedOnPurpose = true;
      child.kill('SIGKILL');
    }
    return exited;
  }

  async function stop() {
    if (stopping) return;
    stopping = true;
    if (killedOnPurpose) {
      await exited;
      removeDataDir();
      return;
    }
    const diedEarly = exitInfo !== null;
    let killed = false;
    if (!diedEarly) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    removeDataDir();
    if (diedEarly) {
      throw new Error(`quire died during the tests (code ${exitInfo.code}, signal ${exitInfo.signal})\n${logs()}`);
    }
    if (killed) {
      throw new Error(`quire ignored SIGTERM for ${STOP_TIMEOUT_MS} ms and was killed\n${logs()}`);
    }
    if (exitInfo.code !== 0) {
      throw new Error(`quire exited with code ${exitInfo.code} (signal ${exitInfo.signal}) after SIGTERM\n${logs()}`);
    }
  }

  return {
    url, adminUrl, host, port: Number(port), pid: child.pid, dataDir, stop, kill, logs, isRunning: () => exitInfo === null,
  };
}

/**
 * Starts a server in before() and stops it in after() of the enclosing scope. Returns an
 * object that holds the fields of startServer()'s result once before() has run.
 */
export function useServer(options) {
  const server = {};
  before(async () => {
    Object.assign(server, await startServer(options));
  });
  after(async () => {
    if (server.stop) await server.stop();
  });
  return server;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` until it returns a truthy value or `ms` pass; returns that value, else throws. */
export async function eventually(fn, ms = 10_000, what = 'condition') {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(10);
  }
  throw new Error(`${what} not reached within ${ms} ms (last: ${last?.stack ?? JSON.stringify(last)})`);
}

/** A query's rows as arrays of values (via @libsql/client). */
export async function rows(client, sql) {
  return (await client.execute(sql)).rows.map((r) => Object.values(r));
}
