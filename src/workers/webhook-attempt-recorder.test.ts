import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { appendEvents } from '../core/events.ts';
import { createMerchant } from '../core/merchants.ts';
import { type ClaimedDelivery, claimDueDeliveries, recordAttempts, type SettledAttempt } from '../core/webhooks/delivery-queue.ts';
import { putWebhookSettings } from '../core/webhooks/endpoints.ts';
import { inTransaction, type Storage } from '../storage/database.ts';
import { createTestDatabase, openTestStorage } from '../testing/harness.ts';
import { createAttemptRecorder } from './webhook-attempt-recorder.ts';

const master = { key: Buffer.alloc(32, 7) };
const url = 'http://127.0.0.1:9/hooks';

describe('the attempt recorder', () => {
  let storage: Storage;
  // Note: on PostgreSQL a database of its own, so that the claims take only these tests' deliveries.
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let merchantId: number;
  let nextPayment = 1;

  before(async () => {
    database = await createTestDatabase();
    storage = await openTestStorage(database?.url);
    const { merchant } = await createMerchant(storage.db, master, { name: 'Recorder' });
    merchantId = merchant.id;
    await putWebhookSettings(storage.db, master, { merchantId, policy: 'any', url, enabled: true });
  });
  after(async () => {
    await storage.close();
    await database?.drop();
  });

  /** `count` new deliveries, claimed for their first attempt, as the dispatcher holds them while it sends. */
  async function claimed(count: number): Promise<ClaimedDelivery[]> {
    const at = new Date(Date.now() - 1_000);
    const first = nextPayment;
    nextPayment += count;
    await inTransaction(storage.db, (trx) =>
      appendEvents(
        trx,
        Array.from({ length: count }, (_, index) => ({ merchantId, paymentId: first + index, type: 'payment.created', data: { index }, at })),
      ),
    );
    const now = new Date();
    const deliveries = await claimDueDeliveries(storage.db, { now, limit: count, leaseUntil: new Date(now.getTime() + 60_000), endpointLimit: count });
    assert.equal(deliveries.length, count);
    return deliveries;
  }

  function succeeded(delivery: ClaimedDelivery): SettledAttempt {
    return {
      delivery,
      outcome: { url, startedAt: new Date(), durationMs: 2, statusCode: 200, responseExcerpt: '', error: null, succeeded: true },
      retryAt: undefined,
    };
  }

  /** A recorder writing through `recordAttempts` (batches of 128 unless told), noting how many attempts each statement wrote. */
  function countingRecorder(options: { answersComing: () => boolean; gatherMs?: number; batchTarget?: number }) {
    const statements: number[] = [];
    const recorder = createAttemptRecorder({
      batchTarget: 128,
      ...options,
      write: (attempts) => {
        statements.push(attempts.length);
        return recordAttempts(storage.db, attempts);
      },
    });
    return { recorder, statements };
  }

  async function states(deliveries: readonly ClaimedDelivery[]): Promise<string[]> {
    const rows = await storage.db
      .selectFrom('webhook_deliveries')
      .select('state')
      .where('id', 'in', deliveries.map((delivery) => delivery.id))
      .execute();
    return rows.map((row) => row.state);
  }

  it('writes an attempt at once when no other request is in flight, without waiting to gather more', async () => {
    // Note: a minute's gathering would time the test out; the attempt must not wait for it.
    const { recorder, statements } = countingRecorder({ answersComing: () => false, gatherMs: 60_000 });
    const [delivery] = await claimed(1);
    await recorder.record(succeeded(delivery!));
    assert.deepEqual(statements, [1]);
    assert.deepEqual(await states([delivery!]), ['succeeded']);
  });

  it('while requests are in flight, waits for their answers and writes them in one statement once none is left', async () => {
    let inFlight = 4;
    const { recorder, statements } = countingRecorder({ answersComing: () => inFlight > 0, gatherMs: 60_000 });
    const deliveries = await claimed(4);
    const written: Array<Promise<void>> = [];
    for (const delivery of deliveries) {
      inFlight -= 1;
      written.push(recorder.record(succeeded(delivery)));
      // Note: each answer in a turn of its own, as they come from the network.
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(written);
    assert.deepEqual(statements, [4]);
    assert.deepEqual(await states(deliveries), ['succeeded', 'succeeded', 'succeeded', 'succeeded']);
  });

  it('writes a batch as soon as it is full, while more answers are still coming', async () => {
    const { recorder, statements } = countingRecorder({ answersComing: () => true, gatherMs: 60_000, batchTarget: 5 });
    const deliveries = await claimed(5);
    await Promise.all(deliveries.map((delivery) => recorder.record(succeeded(delivery))));
    assert.deepEqual(statements, [5]);
    assert.deepEqual(new Set(await states(deliveries)), new Set(['succeeded']));
  });

  it('writes what it gathered once it has waited gatherMs, even if answers are still coming', async () => {
    const { recorder, statements } = countingRecorder({ answersComing: () => true, gatherMs: 20 });
    const deliveries = await claimed(2);
    await Promise.all(deliveries.map((delivery) => recorder.record(succeeded(delivery))));
    assert.deepEqual(statements, [2]);
    assert.deepEqual(await states(deliveries), ['succeeded', 'succeeded']);
  });

  it('takes the attempts that end while a batch is being written into the next statement', async () => {
    const { recorder, statements } = countingRecorder({ answersComing: () => false });
    const deliveries = await claimed(3);
    const first = recorder.record(succeeded(deliveries[0]!));
    // Note: the first batch starts at the next turn; these two end while it is being written.
    await new Promise((resolve) => setImmediate(resolve));
    await Promise.all([first, recorder.record(succeeded(deliveries[1]!)), recorder.record(succeeded(deliveries[2]!))]);
    assert.deepEqual(statements, [1, 2]);
  });

  it('writes the attempts of a failed batch one by one, so that one bad row does not hold back the others', async () => {
    const { recorder, statements } = countingRecorder({ answersComing: () => false });
    const deliveries = await claimed(2);
    const good = succeeded(deliveries[0]!);
    // Note: a duration past the log's integer column fails the statement that holds it.
    const bad = succeeded(deliveries[1]!);
    bad.outcome.durationMs = 2 ** 40;
    const results = await Promise.allSettled([recorder.record(good), recorder.record(bad)]);
    assert.equal(results[0].status, 'fulfilled');
    assert.equal(results[1].status, 'rejected');
    assert.deepEqual(statements, [2, 1, 1]);
    assert.deepEqual(await states(deliveries.slice(0, 1)), ['succeeded']);
    assert.deepEqual(await states(deliveries.slice(1)), ['pending']);
  });
});
