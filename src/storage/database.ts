import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, type Transaction as KyselyTransaction } from 'kysely';
import pg from 'pg';
import { createPglitePool } from './pglite-pool.ts';
import { parseTimestamptz, TIMESTAMPTZ_OID } from './timestamps.ts';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;
/** Functions that must run inside a transaction take this type, so the compiler enforces it. */
export type Transaction = KyselyTransaction<Database>;

export type Storage = {
  db: Db;
  kind: 'postgres' | 'pglite';
  /**
   * Calls `onNotify` on each `NOTIFY channel` (sent when the notifying
   * transaction commits). Returns the function that stops listening. A lost
   * listening connection is re-opened; notifications sent meanwhile are lost,
   * so listeners also poll.
   */
  listen(channel: string, onNotify: () => void): Promise<() => Promise<void>>;
  /**
   * Takes the named leadership lock if no other process holds it (a
   * PostgreSQL session advisory lock on a connection of its own). `lost`
   * resolves if that connection drops, so the holder stops acting as leader;
   * the lock is then free for another process. Embedded PGlite admits one
   * process, which always gets it.
   */
  tryLock(name: string): Promise<LeaderLock | undefined>;
  close(): Promise<void>;
};

/**
 * The mark that makes a statement the gateway runs often, always with the
 * same text, a prepared statement of each PostgreSQL connection: parsed and
 * planned once instead of on every call (the create-payment statement spends
 * more time being planned than being run). Put it first in the statement's
 * text. A name stands for one text: `pg` refuses to run another text under a
 * name it has prepared. PGlite ignores the mark (it is a comment).
 */
export function preparedStatementMark(name: string): string {
  if (!/^[a-z_]+$/.test(name)) throw new Error(`prepared statement names are lower-case words: ${name}`);
  return `/* prepared ${name} */ `;
}

const preparedMark = /^\/\* prepared ([a-z_]+) \*\/ /;

/** Sends the statements marked by `preparedStatementMark` as named (prepared) statements of this connection. */
function prepareMarkedStatements(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (config: unknown, values?: unknown) => unknown;
  client.query = ((config: unknown, values?: unknown) => {
    const name = typeof config === 'string' ? preparedMark.exec(config)?.[1] : undefined;
    return name === undefined ? query(config, values) : query({ name, text: config, values });
  }) as typeof client.query;
}

/** Runs `work` in `db` when it is already a transaction, otherwise in a transaction of its own. */
export function inTransaction<T>(db: Db, work: (trx: Transaction) => Promise<T>): Promise<T> {
  return db.isTransaction ? work(db as Transaction) : db.transaction().execute(work);
}

export type LeaderLock = { lost: Promise<void>; release(): Promise<void> };

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/**
 * Opens the gateway's storage: the PostgreSQL server at `databaseUrl`, or
 * embedded PGlite persisted in `dataDir` (in memory when `dataDir` is
 * `memory://`, for tests).
 *
 * @dev Both drivers are told to return int8 as a number (ids, counts) and
 * numeric as its exact decimal text, never as a float. `pg` reads timestamptz
 * with a parser of ours (`parseTimestamptz`), three times as fast as its own.
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
          oid === INT8_OID
            ? Number
            : oid === NUMERIC_OID
              ? (value: string) => value
              : oid === TIMESTAMPTZ_OID && format !== 'binary'
                ? parseTimestamptz
                : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    // Note: a client that loses its server emits 'error'; without a listener
    // that would crash the process. The pool listens on idle clients only, so
    // each client gets its own listener for while it is checked out (mid-
    // transaction): its queries fail, and the pool drops it on release. The
    // next query reconnects.
    pool.on('error', () => {});
    pool.on('connect', (client) => {
      client.on('error', () => {});
      // Note: the gateway's statements touch a few thousand rows at most, and
      // JIT compiling one costs more than running it. PostgreSQL compiles any
      // statement its planner costs above jit_above_cost, and a bulk statement
      // planned on stale statistics gets there: settling a 5,000-transfer
      // block spent 330–450 ms compiling one select that runs in 130. Sent
      // first on every new connection (a client runs its queries in order);
      // a server without JIT accepts the setting as well.
      client.query('set jit = off').catch(() => {});
      prepareMarkedStatements(client);
    });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return {
      db,
      kind: 'postgres',
      listen: (channel, onNotify) => listenPostgres(options.databaseUrl!, channel, onNotify),
      tryLock: (name) => tryAdvisoryLock(options.databaseUrl!, name),
      close: () => db.destroy(),
    };
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
  return {
    db,
    kind: 'pglite',
    async listen(channel, onNotify) {
      const unsubscribe = await pglite.listen(channel, onNotify);
      return async () => {
        if (!pglite.closed) await unsubscribe();
      };
    },
    async tryLock() {
      let release!: () => void;
      const lost = new Promise<void>((resolve) => (release = resolve));
      return { lost, release: async () => release() };
    },
    close: () => db.destroy(),
  };
}

async function tryAdvisoryLock(connectionString: string, name: string): Promise<LeaderLock | undefined> {
  const client = new pg.Client({ connectionString });
  let markLost!: () => void;
  const lost = new Promise<void>((resolve) => (markLost = resolve));
  client.on('error', () => markLost());
  client.on('end', () => markLost());
  await client.connect();
  try {
    const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock(hashtext($1)) as locked', [name]);
    if (!rows[0]?.locked) {
      await client.end();
      return undefined;
    }
  } catch (error) {
    await client.end().catch(() => {});
    throw error;
  }
  return {
    lost,
    async release() {
      // Note: ending the session releases its advisory locks.
      await client.end().catch(() => {});
    },
  };
}

/** LISTEN on a dedicated connection, re-opened after a second when it drops. */
async function listenPostgres(connectionString: string, channel: string, onNotify: () => void): Promise<() => Promise<void>> {
  let client: pg.Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const connect = async () => {
    const next = new pg.Client({ connectionString });
    next.on('notification', onNotify);
    next.on('error', () => {
      next.end().catch(() => {});
      if (!stopped) retry = setTimeout(() => void connect().catch(() => {}), 1_000);
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      client = next;
      // Note: anything sent while the connection was down is caught by polling; wake once to look.
      onNotify();
    } catch {
      await next.end().catch(() => {});
      if (!stopped) retry = setTimeout(() => void connect().catch(() => {}), 1_000);
    }
  };
  await connect();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    await client?.end().catch(() => {});
  };
}
