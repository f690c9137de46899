// Running the quire binary's commands from tests: `quire(args, { env })` resolves to
// { code, stdout, stderr }; `ok(args)` asserts exit 0 and returns stdout. Plus small helpers
// the backup tests share: a recursive file listing, rows read from a database file, and
// temporary directories removed after the file's tests.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';

import Database from 'libsql';

import { quireBin } from './server.mjs';

export function quire(args, { env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(quireBin(), args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: env ? { ...process.env, ...env } : process.env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => { stdout += c; });
    child.stderr.setEncoding('utf8').on('data', (c) => { stderr += c; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export async function ok(args, options) {
  const r = await quire(args, options);
  assert.equal(r.code, 0, `quire ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export function walk(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

/** Every row of `table` (ordered by its first column), with BLOBs as hex. */
export function readRows(file, sql = 'SELECT id, name, hex(body) AS body FROM t ORDER BY id') {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all().map((r) => ({ ...r, id: Number(r.id) }));
  } finally {
    db.close();
  }
}

const tmpDirs = [];
after(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/** A temporary directory, removed after this file's tests. */
export function tmp(prefix = 'quire-it-') {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  tmpDirs.push(dir);
  return dir;
}
