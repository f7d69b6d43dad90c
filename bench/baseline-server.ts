import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import pg from 'pg';
import { serveUntilStopped } from './server-process.ts';

/**
 * The baseline: what one INSERT per request costs on the same stack — the
 * same HTTP framework, the same pg pool of the same size, the same database —
 * with none of the gateway's work (authentication, validation, quoting, the
 * transaction with its outbox event, exact JSON). The gateway's create is
 * measured against it. Its table is created by bench/database.ts.
 */

type Body = { amount?: unknown; currency?: unknown; crypto_currency?: unknown };

async function main(): Promise<void> {
  const pool = new pg.Pool({ connectionString: requireEnv('BENCH_DATABASE_URL'), max: Number(requireEnv('BENCH_DB_POOL_SIZE')) });
  pool.on('error', () => {});
  const app = Fastify({ logger: false });

  app.post('/payments', async (request, reply) => {
    const body = (request.body ?? {}) as Body;
    // Note: the amount is stored in minor units, as the gateway stores it.
    const { rows } = await pool.query(
      `insert into baseline_payments (transaction_id, status, amount, currency, crypto_currency)
       values ($1, 'pending', $2, $3, $4)
       returning id, transaction_id, status, amount, currency, crypto_currency, created_at`,
      [`pay_${randomUUID()}`, Math.round(Number(body.amount) * 100), String(body.currency), body.crypto_currency ?? null],
    );
    return reply.code(201).send(rows[0]);
  });

  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  serveUntilStopped({ type: 'ready', url }, async () => {
    await app.close();
    await pool.end();
  });
}

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

await main();
