import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type RawBuilder, type Selectable, sql } from 'kysely';
import { inTransaction, type Storage } from '../../storage/database.ts';
import { openTestStorage, updatesInTransaction } from '../../testing/harness.ts';
import { createMerchant } from '../merchants.ts';
import { initCursor, recordBlocks, recordTransfersQuery, watchedAddresses, watchedAddressesQuery } from './chain-ledger.ts';
import type { PaymentTable } from '../../storage/schema.ts';
import { paymentFromRow, paymentSnapshot } from '../payments/payment.ts';
import { settlePayments } from './settlement.ts';

const master = { key: Buffer.alloc(32, 7) };
/** Watched on both chains, as the same seed derives it on every EVM chain. */
const shared = '0x1111111111111111111111111111111111111111';
/** Watched on `ethereum` only. */
const ethereumOnly = '0x2222222222222222222222222222222222222222';
const unknown = '0x3333333333333333333333333333333333333333';

/**
 * Inserts `count` open USDT deposits of 10.000000 each on `chain`, addressed
 * 0x…1, 0x…2 and so on, and watches their addresses; returns their ids.
 * Written in SQL, as the chain benchmark copies its payments.
 */
async function insertOpenDeposits(
  storage: Storage,
  input: { merchantId: number; chain: string; prefix: string; count: number; expiresAt: RawBuilder<unknown> },
): Promise<number[]> {
  const { rows } = await sql<{ id: number }>`
    insert into payments (transaction_id, merchant_id, type, method, status, amount, currency, currency_decimals,
      crypto_amount, crypto_currency, crypto_network, crypto_decimals, chain, address, expires_at, required_confirmations, settlement)
    select ${input.prefix} || lpad(n::text, 6, '0'), ${input.merchantId}, 'deposit', 'crypto', 'pending', 1000, 'USD', 2,
      10000000, 'USDT', 'ERC20', 6, ${input.chain}, '0x' || lpad(to_hex(n), 40, '0'), ${input.expiresAt}, 2, 'awaiting_payment'
    from generate_series(1, ${input.count}) as n
    returning id
  `.execute(storage.db);
  const ids = rows.map((row) => Number(row.id));
  // Note: the addresses are watched as the gateway watches them, each made for its payment.
  await sql`
    insert into deposit_addresses (chain, address, derivation_index, merchant_id, payment_id)
    select chain, address, id, merchant_id, id from payments where id = any(${ids}::bigint[])
  `.execute(storage.db);
  return ids;
}

describe('the watched-address lookup', () => {
  let storage: Storage;
  before(async () => {
    storage = await openTestStorage();
    const { merchant } = await createMerchant(storage.db, master, { name: 'Ledger' });
    // Note: chains of this file's own, padded with 20,000 other addresses so
    // that the planner weighs its indexes as it would on a real table.
    await sql`
      insert into deposit_addresses (chain, address, derivation_index, merchant_id)
      values ('ledger-ethereum', ${shared}, 0, ${merchant.id}), ('ledger-ethereum', ${ethereumOnly}, 1, ${merchant.id}), ('ledger-bsc', ${shared}, 0, ${merchant.id})
    `.execute(storage.db);
    await sql`
      insert into deposit_addresses (chain, address, derivation_index, merchant_id)
      select 'ledger-ethereum', '0x' || lpad(to_hex(n), 40, '0'), n + 2, ${merchant.id} from generate_series(1, 20000) as n
    `.execute(storage.db);
    await sql`analyze deposit_addresses`.execute(storage.db);
  });
  after(() => storage.close());

  it("finds a block's recipients that are watched on the block's chain, and no others", async () => {
    const onBsc = await watchedAddresses(storage.db, 'ledger-bsc', [shared, ethereumOnly, unknown]);
    assert.deepEqual([...onBsc.keys()], [shared]);
    const onEthereum = await watchedAddresses(storage.db, 'ledger-ethereum', [shared, ethereumOnly, unknown]);
    assert.deepEqual([...onEthereum.keys()].sort(), [shared, ethereumOnly]);
  });

  it("probes the addresses' hash index, a third the size of their key", async () => {
    const { rows } = await sql<{ 'QUERY PLAN': string }>`explain ${watchedAddressesQuery('ledger-ethereum', [shared, ethereumOnly, unknown])}`.execute(storage.db);
    const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
    assert.match(plan, /deposit_addresses_address_hash/, plan);
  });

  it("matches a block's transfers to the watched addresses by the same probes, in the statement that records them", async () => {
    const block = { number: 7, hash: '0xblock', parentHash: '0xparent' };
    const transfers = [shared, ethereumOnly, unknown].map((to, logIndex) => ({ block, transfer: { txHash: '0xtx', logIndex, from: null, to, asset: 'USDT', amount: 1n } }));
    const { rows } = await sql<{ 'QUERY PLAN': string }>`explain ${recordTransfersQuery('ledger-ethereum', transfers, new Date())}`.execute(storage.db);
    const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
    assert.match(plan, /deposit_addresses_address_hash/, plan);
  });
});

describe('settling a block that pays thousands of payments', () => {
  const chain = 'ledger-busy';
  const count = 2_500;
  let storage: Storage;
  let merchantId: number;
  let paymentIds: number[];
  before(async () => {
    storage = await openTestStorage();
    merchantId = (await createMerchant(storage.db, master, { name: 'Busy block' })).merchant.id;
    paymentIds = (await insertOpenDeposits(storage, { merchantId, chain, prefix: 'pay_ledgerbusy', count, expiresAt: sql`now() + interval '1 hour'` })).sort((a, b) => a - b);
    await initCursor(storage.db, chain, { number: 100, hash: '0xparent', parentHash: '0xgrandparent' });
  });
  after(() => storage.close());

  it('detects every payment once, each with one payment.detected event, in payment order', async () => {
    const { rows: due } = await sql<{ id: number; address: string }>`select id, address from payments where id = any(${paymentIds}::bigint[]) order by id desc`.execute(storage.db);
    const transfers = due.map((payment, index) => ({
      txHash: `0x${(index % 10).toString(16).padStart(64, '0')}`,
      logIndex: index,
      from: null,
      to: payment.address,
      asset: 'USDT',
      amount: index === 0 ? 4_000_000n : 10_000_000n,
    }));
    // Note: a transfer to an address nobody watches, as most of a busy chain's are.
    transfers.push({ txHash: `0x${'f'.repeat(64)}`, logIndex: count, from: null, to: unknown, asset: 'USDT', amount: 10_000_000n });
    const affected = await recordBlocks(storage.db, { chain, blocks: [{ number: 101, hash: '0xblock', parentHash: '0xparent', transfers }], reorgWindow: 10 });
    assert.deepEqual([...affected].sort((a, b) => a - b), paymentIds);
    const { rows: recorded } = await sql<{ n: number; unwatched: number }>`
      select count(*)::int as n, count(*) filter (where to_address = ${unknown})::int as unwatched from chain_transfers where chain = ${chain}
    `.execute(storage.db);
    assert.deepEqual(recorded, [{ n: count, unwatched: 0 }]);

    const { rows: settlements } = await sql<{ settlement: string; detected: string; n: number }>`
      select settlement, amount_detected as detected, count(*)::int as n from payments where merchant_id = ${merchantId} group by 1, 2 order by 1, 2
    `.execute(storage.db);
    assert.deepEqual(settlements, [
      { settlement: 'detected', detected: '4000000', n: 1 },
      { settlement: 'detected', detected: '10000000', n: count - 1 },
    ]);
    const { rows: events } = await sql<{ payment_id: number; type: string }>`
      select payment_id, type from events where merchant_id = ${merchantId} order by seq
    `.execute(storage.db);
    assert.deepEqual(
      events.map((event) => event.type),
      Array.from({ length: count }, () => 'payment.detected'),
    );
    assert.deepEqual(
      events.map((event) => Number(event.payment_id)),
      paymentIds,
    );
  });

  it('completes them once their transfers confirm; each event carries the payment as stored, its transactions and why', async () => {
    await sql`update chain_transfers set state = 'confirmed' where chain = ${chain}`.execute(storage.db);
    await inTransaction(storage.db, (trx) => settlePayments(trx, paymentIds, new Date()));
    const { rows } = await sql<Selectable<PaymentTable> & { event_type: string; data: { payment: unknown; tx_hashes: string[]; reason?: string } }>`
      select p.*, e.type as event_type, e.data from events e join payments p on p.id = e.payment_id
      where e.merchant_id = ${merchantId} and e.type <> 'payment.detected' order by e.seq
    `.execute(storage.db);
    assert.equal(rows.length, count);
    const [underpaid, ...completed] = [...rows].sort((a, b) => Number(a.amount_paid) - Number(b.amount_paid));
    assert.equal(underpaid!.event_type, 'payment.underpaid');
    assert.equal(underpaid!.settlement, 'underpaid');
    assert.equal(underpaid!.data.reason, undefined);
    assert.deepEqual(new Set(completed.map((row) => `${row.event_type} ${row.status} ${row.data.reason}`)), new Set(['payment.completed completed paid']));
    for (const row of [underpaid!, completed[0]!, completed.at(-1)!]) {
      assert.deepEqual(row.data.payment, JSON.parse(JSON.stringify(paymentSnapshot(paymentFromRow(row)))));
      const { rows: hashes } = await sql<{ tx_hash: string }>`select tx_hash from chain_transfers where payment_id = ${row.id}`.execute(storage.db);
      assert.deepEqual(row.data.tx_hashes, hashes.map((hash) => hash.tx_hash));
    }
  });
});

describe("a block's detections", () => {
  const chain = 'ledger-in-place';
  const count = 1_000;
  let storage: Storage;
  let paymentIds: number[];
  before(async () => {
    storage = await openTestStorage();
    const merchantId = (await createMerchant(storage.db, master, { name: 'In place' })).merchant.id;
    // Note: made together, as a block's payments mostly are, so they share pages; the expiry in
    // microseconds, which a JavaScript Date cannot hold and the settling update must leave as it is.
    paymentIds = await insertOpenDeposits(storage, {
      merchantId,
      chain,
      prefix: 'pay_ledgerinplace',
      count,
      expiresAt: sql`date_trunc('second', now()) + interval '1 hour 0.123456 seconds'`,
    });
  });
  after(() => storage.close());

  it("update their payments in place: each stays on its page, writing no index entry, and keeps its expiry", async () => {
    const before = await sql<{ expires_at: string }>`select expires_at::text from payments where id = any(${paymentIds}::bigint[]) order by id`.execute(storage.db);
    const updates = await inTransaction(storage.db, async (trx) => {
      await sql`
        insert into chain_transfers (chain, tx_hash, log_index, block_number, block_hash, to_address, asset, amount, payment_id, state, confirmations, created_at, updated_at)
        select ${chain}, '0xtx', p.n::int, 101, '0xblock', '0x' || lpad(to_hex(p.n::int), 40, '0'), 'USDT', 10000000, p.id, 'detected', 1, now(), now()
        from unnest(${paymentIds}::bigint[]) with ordinality as p(id, n)
      `.execute(trx);
      await settlePayments(trx, paymentIds, new Date());
      return updatesInTransaction(trx, 'payments');
    });
    assert.equal(updates.updated, count);
    assert.equal(updates.hot, count, `${updates.hot} of ${count} updates were HOT`);
    const settled = await sql<{ settlement: string; expires_at: string }>`select settlement, expires_at::text from payments where id = any(${paymentIds}::bigint[]) order by id`.execute(storage.db);
    assert.deepEqual(new Set(settled.rows.map((row) => row.settlement)), new Set(['detected']));
    assert.deepEqual(settled.rows.map((row) => row.expires_at), before.rows.map((row) => row.expires_at));
  });
});
