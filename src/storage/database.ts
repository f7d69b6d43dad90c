import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, type Transaction as KyselyTransaction } from 'kysely';
import pg from 'pg';
import { createPglitePool } from './pglite-pool.ts';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;
/** Functions that must run inside a transaction take this type, so the compiler enforces it. */
export type Transaction = KyselyTransaction<Database>;

export type Storage = {
  db: Db;
  kind: 'postgres' | 'pglite';
  close(): Promise<void>;
};

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/**
 * Opens the gateway's storage: the PostgreSQL server at `databaseUrl`, or
 * embedded PGlite persisted in `dataDir` (in memory when `dataDir` is
 * `memory://`, for tests).
 *
 * @dev Both drivers are told to return int8 as a number (ids, counts) and
 * numeric as its exact decimal text, never as a float.
 */
export async function createStorage(options: {
  databaseUrl?: string | undefined;
  dataDir?: string;
  poolSize?: number;
}): Promise<Storage> {
  if (options.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 5_000,
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === INT8_OID ? Number : oid === NUMERIC_OID ? (value: string) => value : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    // Note: an idle client that loses its server emits 'error'; without a
    // listener that would crash the process. The next query reconnects.
    pool.on('error', () => {});
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return { db, kind: 'postgres', close: () => db.destroy() };
  }

  const dataDir = options.dataDir ?? 'memory://';
  if (!dataDir.startsWith('memory://')) fs.mkdirSync(path.dirname(path.resolve(dataDir)), { recursive: true });
  const pglite = await PGlite.create(dataDir, {
    parsers: {
      [INT8_OID]: (value: string) => Number(value),
      [NUMERIC_OID]: (value: string) => value,
    },
  });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: createPglitePool(pglite) }) });
  return { db, kind: 'pglite', close: () => db.destroy() };
}
