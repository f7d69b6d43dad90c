import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import '../testing/harness.ts';
import { createStorage, type Storage } from './database.ts';

const postgresUrl = process.env.DATABASE_URL;

describe('PostgreSQL connections', { skip: postgresUrl ? false : 'runs with DATABASE_URL set' }, () => {
  let storage: Storage;
  before(async () => {
    storage = await createStorage({ databaseUrl: postgresUrl, poolSize: 3 });
  });
  after(() => storage.close());

  it('run without JIT compilation, on every connection of the pool', async () => {
    // Note: three at once, so that the pool opens three connections.
    const settings = await Promise.all(
      [1, 2, 3].map(() => storage.db.transaction().execute(async (trx) => (await sql<{ jit: string }>`show jit`.execute(trx)).rows[0]!.jit)),
    );
    assert.deepEqual(settings, ['off', 'off', 'off']);
  });
});
