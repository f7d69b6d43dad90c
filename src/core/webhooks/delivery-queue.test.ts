import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { inTransaction, type Storage } from '../../storage/database.ts';
import { createTestDatabase, openTestStorage, updatesInTransaction } from '../../testing/harness.ts';
import { appendEvents } from '../events.ts';
import { createMerchant } from '../merchants.ts';
import { type AttemptOutcome, claimDueDeliveries, clearDrainedPauseFlags, dueCandidatesQuery, recordAttempts } from './delivery-queue.ts';
import { putWebhookSettings, setWebhookEnabled } from './endpoints.ts';

const master = { key: Buffer.alloc(32, 7) };
const backlog = 3_000;
const offMerchants = 3_000;
const batch = 20;

type PlanNode = {
  'Node Type': string;
  Alias?: string;
  'Index Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
};

/** A claim's parameter (a time, a list of endpoint ids or a count) as SQL text. */
function literal(parameter: unknown): string {
  if (parameter instanceof Date) return `'${parameter.toISOString()}'`;
  if (Array.isArray(parameter)) return `'{${parameter.join(',')}}'`;
  return String(parameter);
}

function nodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(nodes)];
}

/**
 * The executed plan of one claim's candidates, rolled back so that nothing
 * stays locked: planned for its parameters' values (`custom`), or as a
 * prepared statement plans it once it has run five times (`generic`: the
 * claim is one, and PostgreSQL then plans without the values).
 */
async function claimPlan(storage: Storage, kind: 'custom' | 'generic'): Promise<PlanNode[]> {
  const rolledBack = new Error('rolled back');
  let plan: PlanNode[] = [];
  await inTransaction(storage.db, async (trx) => {
    const query = dueCandidatesQuery({ now: new Date(), limit: batch, full: [] });
    let explained = sql<{ 'QUERY PLAN': unknown }>`explain (analyze, format json) ${query}`;
    if (kind === 'generic') {
      const { sql: text, parameters } = query.compile(trx);
      await sql`${sql.raw(`prepare claim_candidates as ${text}`)}`.execute(trx);
      await sql`set local plan_cache_mode = force_generic_plan`.execute(trx);
      // Note: EXECUTE takes its arguments as SQL text, not as the outer statement's parameters.
      explained = sql`explain (analyze, format json) execute claim_candidates(${sql.raw(parameters.map(literal).join(', '))})`;
    }
    const { rows } = await explained.execute(trx);
    // Note: a prepared statement outlives the transaction, and the connection goes back to the pool.
    if (kind === 'generic') await sql`deallocate claim_candidates`.execute(trx);
    const document = rows[0]!['QUERY PLAN'];
    const [{ Plan }] = (typeof document === 'string' ? JSON.parse(document) : document) as [{ Plan: PlanNode }];
    plan = nodes(Plan);
    throw rolledBack;
  }).catch((error: unknown) => {
    if (error !== rolledBack) throw error;
  });
  return plan;
}

/** Claims up to `limit` deliveries due now, leased for a minute, at most `endpointLimit` per endpoint. */
function claimNow(db: Parameters<typeof claimDueDeliveries>[0], limit: number, endpointLimit = 1_000) {
  const now = new Date();
  return claimDueDeliveries(db, { now, limit, leaseUntil: new Date(now.getTime() + 60_000), endpointLimit });
}

/** A claim of `limit` in a transaction of its own, with the row updates it made to the queue and how many of them were HOT. */
function claimCountingUpdates(storage: Storage, limit: number) {
  return inTransaction(storage.db, async (trx) => {
    const claimed = await claimNow(trx, limit);
    return { claimed, updates: await updatesInTransaction(trx, 'webhook_deliveries') };
  });
}

/** Sorts in a claim's plan may only merge the heads of its two sources, never sort the backlog. */
function assertNoBacklogSort(plan: PlanNode[]): void {
  for (const node of plan.filter((candidate) => candidate['Node Type'] === 'Sort')) {
    assert.ok(node['Actual Rows'] * node['Actual Loops'] <= 2 * batch, `a sort of ${node['Actual Rows']} rows: ${JSON.stringify(plan)}`);
  }
}

describe("a claim's candidates", () => {
  let storage: Storage;

  before(async () => {
    storage = await openTestStorage();
    const { merchant } = await createMerchant(storage.db, master, { name: 'Backlog' });
    await putWebhookSettings(storage.db, master, { merchantId: merchant.id, policy: 'any', url: 'http://127.0.0.1:9/hooks', enabled: true });
    const at = new Date(Date.now() - 60_000);
    // Two events per payment, so every second delivery waits behind its payment's first.
    const events = (first: number) =>
      Array.from({ length: backlog }, (_, index) => ({ merchantId: merchant.id, paymentId: first + Math.floor(index / 2), type: 'payment.created', data: { index }, at }));
    // Note: the statistics are taken while nothing waits (a backlog delivered), as on a server where no ANALYZE ran since the next one built up.
    await inTransaction(storage.db, (trx) => appendEvents(trx, events(1)));
    await sql`update webhook_deliveries set state = 'succeeded', completed_at = now()`.execute(storage.db);
    await sql`analyze webhook_deliveries`.execute(storage.db);
    await inTransaction(storage.db, (trx) => appendEvents(trx, events(1 + backlog)));
  });
  after(() => storage.close());

  for (const kind of ['custom', 'generic'] as const) {
    it(`check each one for an earlier waiting delivery of its payment with one probe, even on statistics of an empty queue (${kind} plan)`, async () => {
      const plan = await claimPlan(storage, kind);
      const earlier = plan.filter((node) => node.Alias === 'earlier');
      assert.ok(earlier.length > 0, JSON.stringify(plan));
      // A join here would scan the whole waiting backlog for every candidate.
      for (const node of earlier) assert.ok(node['Actual Rows'] <= 1, `${node['Node Type']} read ${node['Actual Rows']} rows per loop`);
      const claimed = plan[0]!;
      assert.equal(claimed['Actual Rows'], batch);
    });
  }

  for (const kind of ['custom', 'generic'] as const) {
    it(`read only the head of the queue once the statistics know the backlog (${kind} plan)`, async () => {
      await sql`analyze webhook_deliveries`.execute(storage.db);
      const plan = await claimPlan(storage, kind);
      const read = plan.filter((node) => node.Alias === 'd');
      assert.ok(read.length > 0, JSON.stringify(plan));
      // Every second delivery waits behind its payment's first, so about twice the batch is read; never the backlog.
      for (const node of read) assert.ok(node['Actual Rows'] * node['Actual Loops'] <= 4 * batch, `${node['Node Type']} read ${node['Actual Rows']} of ${backlog} due deliveries`);
      assertNoBacklogSort(plan);
    });
  }
});

describe("a switched-on endpoint's paused deliveries", () => {
  let storage: Storage;
  let merchantId: number;
  // Note: on PostgreSQL a database of its own, so that the claims take only this test's deliveries.
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  const states = async () =>
    (await sql<{ state: string; count: number }>`select state, count(*)::int as count from webhook_deliveries group by state order by state`.execute(storage.db)).rows;
  const flagged = async () =>
    (await sql<{ flagged: boolean }>`select has_paused_deliveries as flagged from webhook_endpoints where merchant_id = ${merchantId}`.execute(storage.db)).rows[0]!.flagged;

  before(async () => {
    database = await createTestDatabase();
    storage = await openTestStorage(database?.url);
    // Note: beside many merchants who keep webhooks off, and so keep their endpoints flagged.
    await sql`insert into merchants (name) select 'Webhooks off ' || n from generate_series(1, ${offMerchants}) as n`.execute(storage.db);
    await sql`
      insert into webhook_endpoints (id, merchant_id, url, enabled, secret_sealed, has_paused_deliveries)
      select 'whe_off' || id, id, 'http://127.0.0.1:9/off', false, 'unused', true from merchants
    `.execute(storage.db);
    const { merchant } = await createMerchant(storage.db, master, { name: 'Paused backlog' });
    merchantId = merchant.id;
    await putWebhookSettings(storage.db, master, { merchantId, policy: 'any', url: 'http://127.0.0.1:9/hooks', enabled: false });
    const at = new Date(Date.now() - 60_000);
    // Two events per payment, so every second delivery waits behind its payment's first.
    await inTransaction(storage.db, (trx) =>
      appendEvents(trx, Array.from({ length: backlog }, (_, index) => ({ merchantId, paymentId: 1 + Math.floor(index / 2), type: 'payment.created', data: { index }, at }))),
    );
    await sql`analyze webhook_deliveries, webhook_endpoints`.execute(storage.db);
  });
  after(async () => {
    await storage.close();
    await database?.drop();
  });

  it('wait paused while it is off, and none is claimed', async () => {
    assert.deepEqual(await states(), [{ state: 'paused', count: backlog }]);
    assert.equal(await flagged(), true);
    assert.equal((await claimNow(storage.db, batch)).length, 0);
  });

  it('are not rewritten when it is switched back on, however many wait', async () => {
    await putWebhookSettings(storage.db, master, { merchantId, policy: 'any', url: 'http://127.0.0.1:9/hooks', enabled: true });
    assert.deepEqual(await states(), [{ state: 'paused', count: backlog }]);
    assert.equal(await flagged(), true);
  });

  for (const kind of ['custom', 'generic'] as const) {
    it(`are claimed from the head of the endpoint's paused index, one probe each for an earlier delivery (${kind} plan)`, async () => {
      const plan = await claimPlan(storage, kind);
      assert.equal(plan[0]!['Actual Rows'], batch);
      const read = plan.filter((node) => node['Index Name'] === 'webhook_deliveries_paused');
      assert.ok(read.length > 0, JSON.stringify(plan));
      for (const node of read) assert.ok(node['Actual Rows'] * node['Actual Loops'] <= 4 * batch, `${node['Node Type']} read ${node['Actual Rows']} of ${backlog} paused deliveries`);
      const earlier = plan.filter((node) => node.Alias?.startsWith('earlier'));
      for (const node of earlier) assert.ok(node['Actual Rows'] <= 1, `${node['Node Type']} read ${node['Actual Rows']} rows per loop`);
      assertNoBacklogSort(plan);
    });
  }

  for (const kind of ['custom', 'generic'] as const) {
    it(`are looked for only at endpoints that are on, not at the ${offMerchants} flagged ones that are off (${kind} plan)`, async () => {
      const plan = await claimPlan(storage, kind);
      const endpoints = plan.filter((node) => node.Alias === 'e');
      assert.equal(endpoints.length, 1, JSON.stringify(plan));
      const [read] = endpoints;
      assert.equal(read!['Actual Rows'], 1);
      assert.ok((read!['Rows Removed by Filter'] ?? 0) <= 1, `${read!['Node Type']} read past ${read!['Rows Removed by Filter']} endpoints`);
      assert.notEqual(read!['Node Type'], 'Seq Scan', JSON.stringify(read));
    });
  }

  it('are leased as they are, in queue order (each payment\'s first only), their leases writing no index entry', async () => {
    const { claimed, updates } = await claimCountingUpdates(storage, 128);
    assert.equal(claimed.length, 128);
    assert.deepEqual(updates, { updated: 128, hot: 128 });
    const indexes = claimed.map((delivery) => (delivery.event.data as { index: number }).index);
    assert.deepEqual(indexes, Array.from({ length: 128 }, (_, position) => 2 * position));
    assert.deepEqual(await states(), [{ state: 'paused', count: backlog }]);

    // Note: with their attempts recorded, their payments' second events come next.
    await recordAttempts(storage.db, claimed.map((delivery) => ({ delivery, outcome: succeeded, retryAt: undefined })));
    const next = await claimNow(storage.db, 1);
    assert.equal((next[0]!.event.data as { index: number }).index, 1);
  });

  it('leave the endpoint flagged until none is left, then the sweep clears the flag', async () => {
    assert.equal(await clearDrainedPauseFlags(storage.db), 0);
    assert.equal(await flagged(), true);
    await sql`update webhook_deliveries set state = 'succeeded', completed_at = now(), locked_until = null`.execute(storage.db);
    assert.equal(await clearDrainedPauseFlags(storage.db), 1);
    assert.equal(await flagged(), false);
  });

  it('flag it again when it is switched off', async () => {
    await setWebhookEnabled(storage.db, master, { merchantId, enabled: false });
    assert.equal(await flagged(), true);
    assert.equal(await clearDrainedPauseFlags(storage.db), 0, 'an endpoint that is off keeps its flag');
  });
});

const succeeded: AttemptOutcome = { url: 'http://127.0.0.1:9/hooks', startedAt: new Date(), durationMs: 1, statusCode: 200, responseExcerpt: '', error: null, succeeded: true };

describe("a claim's leases", () => {
  let storage: Storage;
  before(async () => {
    storage = await openTestStorage();
    const { merchant } = await createMerchant(storage.db, master, { name: 'Leases' });
    await putWebhookSettings(storage.db, master, { merchantId: merchant.id, policy: 'any', url: 'http://127.0.0.1:9/hooks', enabled: true });
    const at = new Date(Date.now() - 60_000);
    await inTransaction(storage.db, (trx) =>
      appendEvents(trx, Array.from({ length: 1_000 }, (_, index) => ({ merchantId: merchant.id, paymentId: index + 1, type: 'payment.created', data: { index }, at }))),
    );
  });
  after(() => storage.close());

  it("stay on their deliveries' pages, writing no index entry", async () => {
    const { claimed, updates } = await claimCountingUpdates(storage, 128);
    assert.equal(claimed.length, 128);
    assert.deepEqual(updates, { updated: 128, hot: 128 });
  });
});

describe("a claim's deliveries", () => {
  let storage: Storage;
  // Note: on PostgreSQL a database of its own, so that the claim takes only this test's deliveries.
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  after(async () => {
    await storage.close();
    await database?.drop();
  });

  it("each carry their own endpoint's row, also when a claim takes several endpoints' deliveries in turn", async () => {
    database = await createTestDatabase();
    storage = await openTestStorage(database?.url);
    const merchants: Array<{ id: number; name: string }> = [];
    for (const name of ['First', 'Second', 'Third']) {
      const { merchant } = await createMerchant(storage.db, master, { name });
      await putWebhookSettings(storage.db, master, { merchantId: merchant.id, policy: 'any', url: `http://127.0.0.1:9/${name}`, enabled: true });
      merchants.push(merchant);
    }
    const at = new Date(Date.now() - 60_000);
    await inTransaction(storage.db, (trx) =>
      appendEvents(
        trx,
        Array.from({ length: 30 }, (_, index) => ({ merchantId: merchants[index % 3]!.id, paymentId: index + 1, type: 'payment.created', data: { index }, at })),
      ),
    );
    const claimed = await claimNow(storage.db, 30, 100);
    assert.equal(claimed.length, 30);
    for (const delivery of claimed) {
      const merchant = merchants.find((candidate) => candidate.id === delivery.merchantId)!;
      assert.equal(delivery.endpoint.id, delivery.endpointId);
      assert.equal(delivery.endpoint.merchant_id, merchant.id);
      assert.equal(delivery.endpoint.url, `http://127.0.0.1:9/${merchant.name}`);
      assert.ok(delivery.endpoint.secret_sealed.length > 0);
    }
    assert.equal(new Set(claimed.map((delivery) => delivery.endpointId)).size, 3);
  });
});
