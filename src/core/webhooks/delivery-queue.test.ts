import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { inTransaction, type Storage } from '../../storage/database.ts';
import { createTestDatabase, openTestStorage, updatesInTransaction } from '../../testing/harness.ts';
import { appendEvents } from '../events.ts';
import { createMerchant } from '../merchants.ts';
import { claimDueDeliveries, dueCandidatesQuery } from './delivery-queue.ts';
import { putWebhookSettings } from './endpoints.ts';

const master = { key: Buffer.alloc(32, 7) };
const backlog = 3_000;
const batch = 20;

type PlanNode = { 'Node Type': string; Alias?: string; 'Actual Rows': number; 'Actual Loops': number; Plans?: PlanNode[] };

/** A claim's parameter (a time, a list of endpoint ids or a count) as SQL text. */
function literal(parameter: unknown): string {
  if (parameter instanceof Date) return `'${parameter.toISOString()}'`;
  if (Array.isArray(parameter)) return `'{${parameter.join(',')}}'`;
  return String(parameter);
}

function nodes(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(nodes)];
}

describe("a claim's candidates", () => {
  let storage: Storage;

  /**
   * The executed plan of one claim's candidates, rolled back so that nothing
   * stays locked: planned for its parameters' values (`custom`), or as a
   * prepared statement plans it once it has run five times (`generic`: the
   * claim is one, and PostgreSQL then plans without the values).
   */
  async function claimPlan(kind: 'custom' | 'generic'): Promise<PlanNode[]> {
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
      const plan = await claimPlan(kind);
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
      const plan = await claimPlan(kind);
      const read = plan.filter((node) => node.Alias === 'd');
      assert.ok(read.length > 0, JSON.stringify(plan));
      // Every second delivery waits behind its payment's first, so about twice the batch is read; never the backlog.
      for (const node of read) assert.ok(node['Actual Rows'] * node['Actual Loops'] <= 4 * batch, `${node['Node Type']} read ${node['Actual Rows']} of ${backlog} due deliveries`);
      assert.equal(plan.filter((node) => node['Node Type'] === 'Sort').length, 0, JSON.stringify(plan));
    });
  }
});

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
    const now = new Date();
    const { claimed, updates } = await inTransaction(storage.db, async (trx) => {
      const claimed = await claimDueDeliveries(trx, { now, limit: 128, leaseUntil: new Date(now.getTime() + 60_000), endpointLimit: 1_000 });
      return { claimed, updates: await updatesInTransaction(trx, 'webhook_deliveries') };
    });
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
    const now = new Date();
    const claimed = await claimDueDeliveries(storage.db, { now, limit: 30, leaseUntil: new Date(now.getTime() + 60_000), endpointLimit: 100 });
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
