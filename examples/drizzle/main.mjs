// Drizzle ORM on a quire server: migrate, insert, join, aggregate, and transactions.
//
//   QUIRE_URL=http://127.0.0.1:8080 node main.mjs
//
// Prints what it does and exits with status 1 if anything differs from what it expects.
// It empties the users and posts tables first, so it can be run again and again.

import { isDeepStrictEqual } from 'node:util';
import { fileURLToPath } from 'node:url';

import { createClient } from '@libsql/client';
import { asc, count, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/libsql';
import { migrate } from 'drizzle-orm/libsql/migrator';

import { posts, users } from './schema.mjs';

const url = process.env.QUIRE_URL ?? 'http://127.0.0.1:8080';
const client = createClient({ url });
const db = drizzle({ client });

let failures = 0;
/** Prints one check; a mismatch is remembered and makes the process exit with status 1. */
function expect(label, actual, expected) {
  if (isDeepStrictEqual(actual, expected)) {
    console.log(`ok   ${label}`);
  } else {
    failures++;
    console.log(`FAIL ${label}\n     expected ${JSON.stringify(expected)}\n     actual   ${JSON.stringify(actual)}`);
  }
}

async function main() {
  console.log(`connecting to ${url}`);

  // 1. Migrations: drizzle/meta/_journal.json lists drizzle/0000_init.sql. A second run of
  // migrate() finds it already applied and does nothing.
  const migrationsFolder = fileURLToPath(new URL('./drizzle', import.meta.url));
  await migrate(db, { migrationsFolder });
  await migrate(db, { migrationsFolder });
  const applied = await db.all(sql`SELECT hash FROM __drizzle_migrations`);
  expect('migrations applied once', applied.length, 1);

  // Start from empty tables so every run prints the same thing.
  await db.delete(posts);
  await db.delete(users);

  // 2. Inserts, with RETURNING.
  const [ada, alan] = await db.insert(users).values([
    { name: 'Ada Lovelace', email: 'ada@example.com' },
    { name: 'Alan Turing', email: 'alan@example.com' },
  ]).returning();
  expect('inserted users', [ada.name, alan.name], ['Ada Lovelace', 'Alan Turing']);
  expect('user ids are increasing', alan.id > ada.id, true);

  await db.insert(posts).values([
    { userId: ada.id, title: 'Notes on the Analytical Engine', body: 'It might act upon other things besides number.' },
    { userId: ada.id, title: 'Poetical science', body: 'Imagination is the discovering faculty.' },
    { userId: alan.id, title: 'Computing machinery and intelligence', body: 'Can machines think?' },
  ]);

  const everyone = await db.select().from(users).orderBy(asc(users.id));
  console.log(`users: ${everyone.map((u) => `${u.name} <${u.email}>`).join(', ')}`);
  expect('users by id', everyone.map((u) => u.email), ['ada@example.com', 'alan@example.com']);

  // 3. A join.
  const joined = await db
    .select({ author: users.name, title: posts.title, createdAt: posts.createdAt })
    .from(posts)
    .innerJoin(users, eq(posts.userId, users.id))
    .orderBy(asc(posts.id));
  for (const row of joined) console.log(`post: "${row.title}" by ${row.author}`);
  expect('join', joined.map((r) => [r.author, r.title]), [
    ['Ada Lovelace', 'Notes on the Analytical Engine'],
    ['Ada Lovelace', 'Poetical science'],
    ['Alan Turing', 'Computing machinery and intelligence'],
  ]);
  expect('created_at defaults to now', joined.every((r) => r.createdAt instanceof Date &&
    Math.abs(r.createdAt.getTime() - Date.now()) < 24 * 3600 * 1000), true);

  // 4. An aggregate over a left join.
  const perUser = await db
    .select({ name: users.name, posts: count(posts.id) })
    .from(users)
    .leftJoin(posts, eq(posts.userId, users.id))
    .groupBy(users.id)
    .orderBy(asc(users.id));
  expect('posts per user', perUser, [{ name: 'Ada Lovelace', posts: 2 }, { name: 'Alan Turing', posts: 1 }]);

  // 5. A transaction that commits: a new user and her first post, all or nothing.
  const grace = await db.transaction(async (tx) => {
    const [user] = await tx.insert(users).values({ name: 'Grace Hopper', email: 'grace@example.com' }).returning();
    await tx.insert(posts).values({ userId: user.id, title: 'On bugs', body: 'It was a moth.' });
    // A nested transaction is a savepoint; this one is rolled back, the outer one goes on.
    await tx.transaction(async (nested) => {
      await nested.insert(posts).values({ userId: user.id, title: 'Draft', body: 'never published' });
      nested.rollback();
    }).catch((err) => console.log(`nested transaction rolled back (${err.constructor.name})`));
    return user;
  });
  const gracePosts = await db.select({ title: posts.title }).from(posts).where(eq(posts.userId, grace.id));
  console.log(`transaction committed: ${grace.name} with ${gracePosts.length} post(s)`);
  expect('committed transaction', gracePosts, [{ title: 'On bugs' }]);

  // 6. A transaction that fails half way is rolled back entirely.
  let failure;
  try {
    await db.transaction(async (tx) => {
      await tx.insert(users).values({ name: 'Mallory', email: 'mallory@example.com' });
      await tx.insert(users).values({ name: 'Impostor', email: 'ada@example.com' }); // UNIQUE violation
    });
  } catch (err) {
    failure = err;
  }
  const constraintError = failure?.cause?.code ?? failure?.code;
  console.log(`failed transaction rolled back: ${constraintError}`);
  expect('the failing transaction raised SQLITE_CONSTRAINT', constraintError, 'SQLITE_CONSTRAINT');
  const mallory = await db.select().from(users).where(eq(users.name, 'Mallory'));
  expect('nothing from the failed transaction was kept', mallory, []);

  // 7. Updates and deletes report what they touched.
  const renamed = await db.update(users).set({ name: 'Augusta Ada King' }).where(eq(users.id, ada.id)).returning({ name: users.name });
  expect('update', renamed, [{ name: 'Augusta Ada King' }]);
  const totals = await db.select({ users: count() }).from(users);
  expect('user count', totals, [{ users: 3 }]);
}

try {
  await main();
} catch (err) {
  failures++;
  console.error('error:', err);
} finally {
  client.close();
}
if (failures > 0) {
  console.log(`${failures} check(s) failed`);
  process.exit(1);
}
console.log('all checks passed');
