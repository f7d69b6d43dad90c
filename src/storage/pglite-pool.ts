import { PGlite } from '@electric-sql/pglite';
import type { PostgresPool, PostgresPoolClient } from 'kysely';

/**
 * A `pg`-shaped pool of one connection over embedded PGlite, so Kysely's own
 * PostgresDialect drives both storage kinds with the same SQL.
 *
 * @dev PGlite is a single session: a transaction holds it from `begin` to
 * `commit`. `connect()` therefore hands out the one client to one caller at a
 * time and queues the rest, exactly as a pool of size one would.
 */
export function createPglitePool(pglite: PGlite): PostgresPool {
  let busy = false;
  const waiting: Array<() => void> = [];

  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else busy = false;
  };

  const client: PostgresPoolClient = {
    async query(sql: string, parameters: ReadonlyArray<unknown>) {
      // Note: without parameters the simple protocol runs the text as is, so a
      // migration may hold several statements (as it may on `pg`).
      const result =
        parameters.length === 0
          ? (await pglite.exec(sql)).at(-1) ?? { rows: [], affectedRows: 0 }
          : await pglite.query<Record<string, unknown>>(sql, parameters as unknown[]);
      return {
        command: commandOf(sql),
        rowCount: result.affectedRows ?? 0,
        rows: result.rows,
      };
    },
    release,
  } as unknown as PostgresPoolClient;

  return {
    async connect() {
      if (busy) await new Promise<void>((resolve) => waiting.push(resolve));
      busy = true;
      return client;
    },
    async end() {
      await pglite.close();
    },
  };
}

function commandOf(sql: string): 'INSERT' | 'UPDATE' | 'DELETE' | 'MERGE' | 'SELECT' {
  // Note: Kysely reads `command` only to decide whether rowCount is an
  // affected-row count. A leading CTE (`with … insert`) counts as its verb.
  const verb = /\b(insert|update|delete|merge)\b/i.exec(sql.slice(0, 4096))?.[1]?.toUpperCase();
  const first = /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase();
  if (first === 'SELECT') return 'SELECT';
  return (verb as 'INSERT' | 'UPDATE' | 'DELETE' | 'MERGE' | undefined) ?? 'SELECT';
}
