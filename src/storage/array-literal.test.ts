import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import '../testing/harness.ts';
import { arrayLiteral } from './array-literal.ts';
import { createStorage, type Storage } from './database.ts';

describe('Array literals for array parameters', () => {
  let storage: Storage;
  before(async () => {
    // Note: the storage the suite runs on (PostgreSQL with DATABASE_URL, else PGlite), read back by the server's own array input.
    storage = await createStorage(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL, poolSize: 1 } : { dataDir: 'memory://' });
  });
  after(() => storage.close());

  async function readBack(literal: string, type: 'text' | 'bigint' | 'numeric' | 'integer'): Promise<unknown[]> {
    const { rows } = await sql<{ element: unknown }>`select element from unnest(${literal}::${sql.raw(type)}[]) with ordinality as a(element, position) order by position`.execute(storage.db);
    return rows.map((row) => row.element);
  }

  it('carry text elements exactly, however they are spelled, and null as SQL NULL', async () => {
    const values = ['0xAbC123', '', 'null', 'NULL', 'Null', ' padded ', 'a,b', '{braces}', 'say "hi"', 'back\\slash', 'tab\there', 'naïve €', null, '2026-12-03T19:00:00.000Z', '-1.5e3'];
    assert.deepEqual(await readBack(arrayLiteral(values), 'text'), values);
  });

  it('carry ids, counts and exact amounts as numbers of the array type', async () => {
    assert.deepEqual(await readBack(arrayLiteral([1, 9_007_199_254_740_991, null, -4]), 'bigint'), [1, 9_007_199_254_740_991, null, -4]);
    assert.deepEqual(await readBack(arrayLiteral([0, -1, 2_147_483_647]), 'integer'), [0, -1, 2_147_483_647]);
    const amounts = [123456789012345678901234567890n.toString(), '0.000000000000000001', 10n ** 30n];
    assert.deepEqual(await readBack(arrayLiteral(amounts), 'numeric'), ['123456789012345678901234567890', '0.000000000000000001', (10n ** 30n).toString()]);
  });

  it('make an empty array of an empty list', async () => {
    assert.equal(arrayLiteral([]), '{}');
    assert.deepEqual(await readBack(arrayLiteral([]), 'text'), []);
  });
});
