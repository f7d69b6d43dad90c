import pg from 'pg';

/**
 * The benchmark's own PostgreSQL database: created fresh for one run on the
 * server named by `DATABASE_URL` (or the local default) and dropped at the
 * end, so a run starts from nothing and leaves nothing behind (unless
 * `BENCH_KEEP_DATABASE=1`).
 */

export const defaultAdminUrl = 'postgres://postgres@127.0.0.1:5432/postgres';

export type BenchDatabase = {
  name: string;
  url: string;
  /** A connection for the benchmark's own SQL (set-up, seeding, checkpoints). */
  client: pg.Client;
  serverVersion: string;
  drop(): Promise<void>;
};

export async function createBenchDatabase(adminUrl: string, name: string): Promise<BenchDatabase> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  let serverVersion: string;
  try {
    serverVersion = (await admin.query<{ server_version: string }>('show server_version')).rows[0]!.server_version;
    await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }

  const url = databaseUrlFor(adminUrl, name);
  const client = new pg.Client({ connectionString: url });
  let dropped = false;
  async function drop() {
    if (dropped) return;
    dropped = true;
    await client.end().catch(() => {});
    // Note: `BENCH_KEEP_DATABASE=1` leaves it for a look at its tables and plans after the run.
    if (process.env.BENCH_KEEP_DATABASE === '1') {
      console.error(`kept the database ${name} (BENCH_KEEP_DATABASE=1); drop it by hand`);
      return;
    }
    await dropDatabase(adminUrl, name);
  }
  try {
    await client.connect();
    client.on('error', () => {});
  } catch (error) {
    await drop();
    throw error;
  }
  return { name, url, client, serverVersion, drop };
}

/** The admin URL with its database name replaced. */
export function databaseUrlFor(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Where the database lives, for the report, without credentials. */
export function describeServer(adminUrl: string): string {
  const url = new URL(adminUrl);
  return `${url.hostname}:${url.port || '5432'}`;
}

async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // Note: a server process killed mid-run may leave sessions behind; they would block the drop.
    await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
    await admin.query(`drop database if exists ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
}

/** The baseline server's table: the columns a created payment needs, one unique key, nothing else. */
export async function createBaselineTable(client: pg.Client): Promise<void> {
  await client.query(`
    create table baseline_payments (
      id bigserial primary key,
      transaction_id text not null unique,
      status text not null,
      amount numeric(78,0) not null,
      currency text not null,
      crypto_currency text,
      created_at timestamptz not null default now()
    )`);
}

/**
 * Inserts `count` payments for one merchant in one statement, spread evenly
 * over the last `days` days and over every status and both methods, counts
 * them, then VACUUM ANALYZE so the planner and the visibility map know about them, as
 * they would on a table that grew over months.
 */
export async function seedPayments(client: pg.Client, input: { merchantId: number; count: number; days: number }): Promise<void> {
  await client.query(
    `insert into payments (
       transaction_id, merchant_id, type, method, status, amount, currency, currency_decimals,
       crypto_amount, crypto_currency, crypto_network, crypto_decimals,
       quote_crypto_usd, quote_fiat_usd, quote_fee_bps, quote_source, quoted_at,
       client_reference, description, created_at, updated_at)
     select
       'pay_seed' || lpad(g::text, 12, '0'),
       $1,
       case when g % 10 = 0 then 'withdraw' else 'deposit' end,
       case when g % 7 = 0 then 'bank' else 'crypto' end,
       (array['pending', 'approved', 'completed', 'completed', 'completed', 'failed', 'rejected', 'cancelled'])[1 + g % 8],
       amount,
       'USD', 2,
       case when g % 7 = 0 then null else amount * 10000 end,
       case when g % 7 = 0 then null else 'USDT' end,
       case when g % 7 = 0 then null else 'TRC20' end,
       case when g % 7 = 0 then null else 6 end,
       case when g % 7 = 0 then null else 1.00 end,
       case when g % 7 = 0 then null else 1 end,
       case when g % 7 = 0 then null else 50 end,
       case when g % 7 = 0 then null else 'table' end,
       case when g % 7 = 0 then null else created_at end,
       'order-' || g,
       null,
       created_at,
       created_at
     from generate_series(1, $2::int) as g,
       lateral (select 100 + (g::bigint * 7919) % 1000000 as amount,
                       now() - make_interval(secs => ($2::int - g) * ($3::float8 * 86400 / $2::int)) as created_at) as v`,
    [input.merchantId, input.count, input.days],
  );
  // Note: payments inserted behind the gateway's back are counted here, as insertPayment counts its own (see payment-counts.ts).
  await client.query(
    `insert into payment_count_changes (merchant_id, status, change)
     select merchant_id, status, count(*) from payments where merchant_id = $1 and transaction_id like 'pay_seed%' group by merchant_id, status`,
    [input.merchantId],
  );
  await client.query('vacuum analyze payments');
}

/**
 * Writes dirty pages out before a throughput run, so that neither the gateway
 * nor the baseline pays for a checkpoint the other's writes (or the seeding)
 * made due. Needs a superuser or pg_checkpoint; skipped without.
 */
export async function checkpoint(client: pg.Client): Promise<void> {
  await client.query('checkpoint').catch(() => {});
}
