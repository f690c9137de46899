// A real S3-compatible server for integration tests: s3rver 3.7.1 (a devDependency of this
// package) started on 127.0.0.1 on a free port with one bucket, and stopped by its pid.
// A missing s3rver fails the test that asked for it; nothing is skipped.
//
//   const s3 = await startS3rver({ bucket: 'backups' });
//   s3.url('prefix')   -> 's3://backups/prefix'
//   s3.env             -> AWS_* variables that point quire at it (spread into a child's env)
//   s3.stop(), s3.kill(), s3.restart()   (restart keeps the data directory and the port)

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const S3RVER = path.join(here, 'node_modules', '.bin', 's3rver');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('connect', () => { sock.destroy(); resolve(true); });
    sock.on('error', () => resolve(false));
  });
}

export async function startS3rver({ bucket = 'quire-test', port: givenPort } = {}) {
  if (!existsSync(S3RVER)) {
    throw new Error(`s3rver is not installed at ${S3RVER}: run scripts/install-deps (npm ci in tests/integration)`);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'quire-s3rver-'));
  const port = givenPort ?? await freePort();
  let child = null;
  let log = '';

  const launch = async () => {
    log = '';
    child = spawn('node', [S3RVER, '-d', dir, '-a', '127.0.0.1', '-p', String(port),
      '--service-endpoint', 'localhost', '--configure-bucket', bucket], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // s3rver encrypts ListObjectsV2 continuation tokens with DES (OpenSSL 3's legacy provider).
      env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
    });
    const mine = child;
    mine.stdout.setEncoding('utf8').on('data', (c) => { log = (log + c).slice(-8192); });
    mine.stderr.setEncoding('utf8').on('data', (c) => { log = (log + c).slice(-8192); });
    let exited = null;
    mine.on('exit', (code, signal) => { exited = { code, signal }; });
    const deadline = Date.now() + 20000;
    while (!(await portOpen(port))) {
      if (exited) throw new Error(`s3rver exited during start-up (${JSON.stringify(exited)})\n${log}`);
      if (Date.now() > deadline) throw new Error(`s3rver did not listen on ${port} within 20 s\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const halt = (signal) => new Promise((resolve) => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return resolve();
    c.once('exit', () => resolve());
    c.kill(signal);
  });

  const killOnExit = () => { if (child) child.kill('SIGKILL'); };
  process.on('exit', killOnExit);
  await launch();

  const endpoint = `http://127.0.0.1:${port}`;
  return {
    bucket,
    port,
    endpoint,
    dir,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
    },
    url: (prefix = '') => `s3://${bucket}${prefix ? `/${prefix}` : ''}`,
    logs: () => log,
    /** Stops the process (the store is "down") and keeps its data. */
    kill: () => halt('SIGKILL'),
    /** Starts it again on the same port with the same data. */
    restart: async () => { await halt('SIGKILL'); await launch(); },
    stop: async () => {
      await halt('SIGTERM');
      process.off('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
