// Runs examples/drizzle/main.mjs (Drizzle ORM + @libsql/client) against a fresh server, twice:
// the second run must find the migration applied and still pass.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import { useServer } from './server.mjs';

const example = fileURLToPath(new URL('../../examples/drizzle/main.mjs', import.meta.url));

function runExample(url) {
  return new Promise((resolve) => {
    execFile(process.execPath, [example], { env: { ...process.env, QUIRE_URL: url }, timeout: 30_000 },
             (error, stdout, stderr) => resolve({ code: error ? error.code ?? error.signal : 0, stdout, stderr }));
  });
}

describe('Drizzle ORM example', () => {
  const server = useServer();

  for (const run of ['first', 'second']) {
    test(`the example passes its checks (${run} run)`, async () => {
      const { code, stdout, stderr } = await runExample(server.url);
      const output = `--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;
      assert.equal(code, 0, output);
      assert.doesNotMatch(stdout, /^FAIL /m, output);
      assert.match(stdout, /^users: Ada Lovelace <ada@example\.com>, Alan Turing <alan@example\.com>$/m, output);
      assert.match(stdout, /^post: "Computing machinery and intelligence" by Alan Turing$/m, output);
      assert.match(stdout, /^transaction committed: Grace Hopper with 1 post\(s\)$/m, output);
      assert.match(stdout, /^failed transaction rolled back: SQLITE_CONSTRAINT$/m, output);
      assert.match(stdout, /^all checks passed$/m, output);
    });
  }
});
