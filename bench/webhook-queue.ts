import { sql } from 'kysely';
import { appendEvents, type NewEvent } from '../src/core/events.ts';
import { createMerchant } from '../src/core/merchants.ts';
import { paymentSnapshot } from '../src/core/payments/payment.ts';
import { claimDueDeliveries, recordAttempts } from '../src/core/webhooks/delivery-queue.ts';
import { putWebhookSettings } from '../src/core/webhooks/endpoints.ts';
import { createStorage, inTransaction } from '../src/storage/database.ts';
import { migrateToLatest } from '../src/storage/migrations/index.ts';
import { type CpuPerRequest, cpuPerRequest, readCpu } from './cpu-time.ts';
import { createBenchDatabase, defaultAdminUrl, describeServer } from './database.ts';

/**
 * `npm run bench:webhook-queue`: what the webhook queue's own statements cost
 * per delivery, without HTTP, beside the least any queue must write.
 *
 * The webhook benchmark's throughput is bound by CPU per delivery (its
 * gateway, PostgreSQL and receiver share two cores), and its runs vary by a
 * third from one minute to the next. This one runs the queue's functions as
 * the dispatcher calls them, one statement at a time, and reads the CPU that
 * this process (Node) and the local PostgreSQL server's processes spent:
 *
 * - today's queue, as in the webhook benchmark's rounds: the events are
 *   appended while the endpoint is switched off (their deliveries queued
 *   paused), the endpoint is switched on (which leaves them paused: the claims
 *   take them as they are), then claims of 256 and records of 120 successful
 *   attempts, about as the dispatcher makes them under load, until the queue
 *   is empty;
 * - the floor, for comparison: the same events appended for a merchant with no
 *   endpoint (no deliveries), then read back in order, a claim's worth at a
 *   time, with one attempt-log row each (in a table of this run's own, keyed
 *   by event and attempt) and one position row updated per record's worth
 *   of them. The attempt log is what the issue asks to keep of every attempt,
 *   so no queue writes less; this is not a design that could replace today's
 *   as it stands (it has no leases, no retries, and reads events in sequence
 *   order, which is not commit order).
 *
 * Rounds alternate the two, each on a fresh backlog. BENCH_QUEUE_CLAIM and
 * BENCH_QUEUE_RECORD set the sizes of the claims and records, to see what
 * a statement costs beside the rows it handles. No target: the webhook
 * benchmark is the measurement of record. `DATABASE_URL` is an admin
 * connection; the run creates `paycrypt_bench_webhook_queue_<pid>` and drops it.
 */

const settings = {
  events: Number(process.env.BENCH_QUEUE_EVENTS ?? 10_000),
  rounds: 3,
  claim: Number(process.env.BENCH_QUEUE_CLAIM ?? 256),
  record: Number(process.env.BENCH_QUEUE_RECORD ?? 120),
  appendBatch: 1_000,
  // Note: the dispatcher's per-endpoint lookahead at PAYCRYPT_WEBHOOK_ENDPOINT_CONCURRENCY=64.
  endpointLookahead: 10 * 64,
};
const master = { key: Buffer.alloc(32, 7) };
const adminUrl = process.env.DATABASE_URL ?? defaultAdminUrl;

type Step = { wallUs: number; cpu: CpuPerRequest };
const steps = ['fan-out', 'switch-on', 'claims + records', 'floor: events', 'floor: reads + attempt rows'] as const;
type StepName = (typeof steps)[number];

const database = await createBenchDatabase(adminUrl, `paycrypt_bench_webhook_queue_${process.pid}`);
const storage = await createStorage({ databaseUrl: database.url, poolSize: 4 });
const db = storage.db;

/** Runs `work`, which handles `count` deliveries, and returns its wall time and CPU per delivery. */
async function measured(count: number, work: () => Promise<void>): Promise<Step> {
  const before = readCpu(process.pid);
  const started = performance.now();
  await work();
  const wallUs = ((performance.now() - started) * 1000) / count;
  return { wallUs, cpu: cpuPerRequest(before, readCpu(process.pid), count) };
}

/** Vacuumed, analyzed and checkpointed, so that one step's dead rows and dirty pages are not the next one's cost. */
async function settle(): Promise<void> {
  await sql`vacuum analyze webhook_deliveries, webhook_attempts, events, bench_floor_attempts`.execute(db);
  await sql`checkpoint`.execute(db);
}

/** A `payment.created` event as the API appends it: the payment's snapshot, of the size real ones have. */
function events(merchantId: number, firstPaymentId: number): NewEvent[] {
  const now = new Date();
  return Array.from({ length: settings.events }, (_, index) => {
    const id = firstPaymentId + index;
    const payment = paymentSnapshot({
      id,
      transactionId: `txn_${id.toString(16).padStart(24, '0')}`,
      merchantId,
      type: 'deposit',
      method: 'crypto',
      status: 'pending',
      amount: 10_000n,
      currency: 'USD',
      currencyDecimals: 2,
      crypto: { currency: 'USDT', network: 'ERC20', amount: 100_000_000n, decimals: 6 },
      quote: null,
      clientReference: `order-${id}`,
      description: 'Order from the webhook queue benchmark',
      createdAt: now,
      updatedAt: now,
      deposit: { chain: 'ethereum', address: `0x${id.toString(16).padStart(40, '0')}`, expiresAt: now, requiredConfirmations: 12 },
      amountPaid: 0n,
      amountDetected: 0n,
      settlement: 'awaiting_payment',
    });
    return { merchantId, paymentId: id, type: 'payment.created', data: { payment }, at: now };
  });
}

async function append(all: NewEvent[]): Promise<void> {
  for (let start = 0; start < all.length; start += settings.appendBatch) {
    await inTransaction(db, (trx) => appendEvents(trx, all.slice(start, start + settings.appendBatch)));
  }
}

const succeeded = { url: 'http://127.0.0.1:9/hooks', durationMs: 3, statusCode: 200, responseExcerpt: '', error: null, succeeded: true };

try {
  await migrateToLatest(db);
  await sql`
    create table bench_floor_attempts (
      event_id text not null, attempt integer not null, url text not null, started_at timestamptz not null, duration_ms integer not null,
      status_code integer, response_excerpt text, error text, primary key (event_id, attempt)
    )`.execute(db);
  await sql`create table bench_floor_position (id integer primary key, event_seq bigint not null) with (fillfactor = 50)`.execute(db);
  await sql`insert into bench_floor_position values (1, 0)`.execute(db);
  const { merchant } = await createMerchant(db, master, { name: 'Queue' });
  const { merchant: floorMerchant } = await createMerchant(db, master, { name: 'Floor' });
  const webhook = (enabled: boolean) => putWebhookSettings(db, master, { merchantId: merchant.id, policy: 'any', url: succeeded.url, enabled });
  await webhook(false);
  const bytes = Buffer.byteLength(JSON.stringify(events(merchant.id, 1)[0]!.data));

  console.log('PayCrypt webhook queue benchmark (no HTTP; CPU read from /proc)');
  console.log(`database:  ${database.name} on ${describeServer(adminUrl)}, PostgreSQL ${database.serverVersion}, created for this run and dropped at its end`);
  console.log(`per round: ${settings.events.toLocaleString('en-US')} payment.created events (data ${bytes} bytes of JSON each), claims of ${settings.claim}, records of ${settings.record}`);
  const results = new Map<StepName, Step[]>(steps.map((step) => [step, []]));
  let paymentIds = 1;
  let floorPosition = 0;
  for (let round = 0; round < settings.rounds; round++) {
    const queued = events(merchant.id, paymentIds);
    const floor = events(floorMerchant.id, paymentIds);
    paymentIds += settings.events;
    await settle();
    results.get('fan-out')!.push(await measured(settings.events, () => append(queued)));
    await settle();
    results.get('switch-on')!.push(await measured(settings.events, async () => void (await webhook(true))));
    await settle();
    results.get('claims + records')!.push(
      await measured(settings.events, async () => {
        let delivered = 0;
        const leaseUntil = new Date(Date.now() + 10 * 60_000);
        for (;;) {
          const claimed = await claimDueDeliveries(db, { now: new Date(), limit: settings.claim, leaseUntil, endpointLimit: settings.endpointLookahead });
          if (claimed.length === 0) break;
          for (let start = 0; start < claimed.length; start += settings.record) {
            const batch = claimed.slice(start, start + settings.record);
            await recordAttempts(db, batch.map((delivery) => ({ delivery, outcome: { ...succeeded, startedAt: new Date() }, retryAt: undefined })));
          }
          delivered += claimed.length;
        }
        if (delivered !== settings.events) throw new Error(`the queue delivered ${delivered} of ${settings.events}`);
      }),
    );
    await webhook(false);

    await settle();
    results.get('floor: events')!.push(await measured(settings.events, () => append(floor)));
    await settle();
    results.get('floor: reads + attempt rows')!.push(
      await measured(settings.events, async () => {
        let read = 0;
        for (;;) {
          const { rows } = await sql<{ id: string; seq: string; type: string; data: unknown; created_at: Date }>`
            select id, seq, type, data, created_at from events where merchant_id = ${floorMerchant.id} and seq > ${floorPosition} order by seq limit ${settings.claim}
          `.execute(db);
          if (rows.length === 0) break;
          for (let start = 0; start < rows.length; start += settings.record) {
            const batch = rows.slice(start, start + settings.record);
            await sql`
              with logged as (
                insert into bench_floor_attempts (event_id, attempt, url, started_at, duration_ms, status_code, response_excerpt, error)
                select event_id, 1, ${succeeded.url}, started_at, ${succeeded.durationMs}, ${succeeded.statusCode}, '', null
                from unnest(${batch.map((row) => row.id)}::text[], ${batch.map(() => new Date().toISOString())}::timestamptz[]) as v(event_id, started_at)
              )
              update bench_floor_position set event_seq = ${batch.at(-1)!.seq} where id = 1
            `.execute(db);
            floorPosition = Number(batch.at(-1)!.seq);
          }
          read += rows.length;
        }
        if (read !== settings.events) throw new Error(`the floor read ${read} of ${settings.events}`);
      }),
    );
  }

  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const us = (value: number) => value.toFixed(0).padStart(5);
  console.log('\nper delivery, median of the rounds (each round: wall / PostgreSQL CPU / Node CPU, µs)');
  console.log('step                            wall   PostgreSQL   Node    rounds');
  const medians = new Map<StepName, { wall: number; postgres: number; node: number }>();
  for (const step of steps) {
    const runs = results.get(step)!;
    const m = { wall: median(runs.map((run) => run.wallUs)), postgres: median(runs.map((run) => run.cpu.postgres)), node: median(runs.map((run) => run.cpu.loadGenerator)) };
    medians.set(step, m);
    const each = runs.map((run) => `${run.wallUs.toFixed(0)}/${run.cpu.postgres.toFixed(0)}/${run.cpu.loadGenerator.toFixed(0)}`).join(', ');
    console.log(`${step.padEnd(28)} ${us(m.wall)}   ${us(m.postgres)}       ${us(m.node)}    ${each}`);
  }
  const sum = (names: StepName[], key: 'postgres' | 'node') => names.reduce((total, name) => total + medians.get(name)![key], 0);
  const window: StepName[] = ['switch-on', 'claims + records'];
  const floorWindow: StepName[] = ['floor: reads + attempt rows'];
  console.log(`\ninside the webhook benchmark's timed window (switch-on, claims and records): PostgreSQL ${us(sum(window, 'postgres'))} µs, Node ${us(sum(window, 'node'))} µs per delivery`);
  console.log(`the floor (reads and attempt rows):                                        PostgreSQL ${us(sum(floorWindow, 'postgres'))} µs, Node ${us(sum(floorWindow, 'node'))} µs per delivery`);
  console.log(`when the events are appended: with deliveries PostgreSQL ${us(medians.get('fan-out')!.postgres)} µs, without ${us(medians.get('floor: events')!.postgres)} µs per event`);
} finally {
  await storage.close();
  await database.drop();
}
