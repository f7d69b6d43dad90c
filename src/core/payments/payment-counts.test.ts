import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { parseDecimal } from '../../internal/decimal.ts';
import type { Storage } from '../../storage/database.ts';
import { openTestStorage } from '../../testing/harness.ts';
import { noDepositChains } from '../deposits/deposit-chains.ts';
import { createMerchant } from '../merchants.ts';
import { createQuoter } from '../rates/quote.ts';
import { createTableRateSource } from '../rates/table-rate-source.ts';
import { insertPayment, preparePayment } from './create-payment.ts';
import { type PaymentStatus, paymentStatuses } from './payment.ts';
import { countPayments, foldPaymentCountChanges } from './payment-counts.ts';
import { transitionPayment } from './transitions.ts';

const master = { key: Buffer.alloc(32, 9) };
const quoter = createQuoter({ rates: createTableRateSource(), feeBps: 0 });

describe('payment counts', () => {
  let storage: Storage;
  let merchantId: number;
  let otherMerchantId: number;

  before(async () => {
    storage = await openTestStorage();
    merchantId = (await createMerchant(storage.db, master, { name: 'Counted' })).merchant.id;
    otherMerchantId = (await createMerchant(storage.db, master, { name: 'Counted too' })).merchant.id;
  });
  after(() => storage.close());

  async function newPayment(merchant = merchantId) {
    const prepared = await preparePayment(
      { db: storage.db, quoter, chains: noDepositChains },
      { merchantId: merchant, type: 'deposit', method: 'bank', amount: parseDecimal('5')!, currency: 'USD' },
    );
    return insertPayment(storage.db, prepared);
  }

  /** What counting the table says, per status and in all. */
  async function counted(merchant: number): Promise<Record<PaymentStatus | 'all', number>> {
    const rows = await storage.db
      .selectFrom('payments')
      .select(['status', (eb) => eb.fn.countAll<number>().as('count')])
      .where('merchant_id', '=', merchant)
      .groupBy('status')
      .execute();
    const result = Object.fromEntries([...paymentStatuses, 'all'].map((status) => [status, 0])) as Record<PaymentStatus | 'all', number>;
    for (const row of rows) {
      result[row.status as PaymentStatus] = Number(row.count);
      result.all += Number(row.count);
    }
    return result;
  }

  async function assertCountsAgree(merchant: number) {
    const expected = await counted(merchant);
    assert.equal(await countPayments(storage.db, { merchantId: merchant }), expected.all, 'all payments');
    for (const status of paymentStatuses) assert.equal(await countPayments(storage.db, { merchantId: merchant, status }), expected[status], status);
  }

  it('counts every payment as it is created, before and after the changes are folded', async () => {
    for (let index = 0; index < 5; index++) await newPayment();
    await newPayment(otherMerchantId);
    await assertCountsAgree(merchantId);
    assert.ok((await foldPaymentCountChanges(storage.db)) > 0);
    await assertCountsAgree(merchantId);
    await assertCountsAgree(otherMerchantId);
    assert.equal(await foldPaymentCountChanges(storage.db), 0, 'nothing left to fold');
  });

  it('moves a payment from one status count to another on each transition', async () => {
    const payment = await newPayment();
    await storage.db.transaction().execute((trx) => transitionPayment(trx, { payment: payment.id, to: 'approved' }));
    await assertCountsAgree(merchantId);
    await foldPaymentCountChanges(storage.db);
    await storage.db.transaction().execute((trx) => transitionPayment(trx, { payment: payment.id, to: 'completed' }));
    await assertCountsAgree(merchantId);
  });

  it('follows a statement that changes many payments at once, and one that changes none of their statuses', async () => {
    for (let index = 0; index < 4; index++) await newPayment();
    await storage.db.updateTable('payments').set({ status: 'cancelled' }).where('merchant_id', '=', merchantId).where('status', '=', 'pending').execute();
    await assertCountsAgree(merchantId);
    await storage.db.updateTable('payments').set({ description: 'touched' }).where('merchant_id', '=', merchantId).execute();
    await assertCountsAgree(merchantId);
    await foldPaymentCountChanges(storage.db);
    await assertCountsAgree(merchantId);
  });

  it('leaves out the changes of a transaction that rolled back', async () => {
    const before = await countPayments(storage.db, { merchantId });
    await assert.rejects(
      storage.db.transaction().execute(async (trx) => {
        await insertPayment(trx, await preparePayment({ db: trx, quoter, chains: noDepositChains }, { merchantId, type: 'deposit', method: 'bank', amount: parseDecimal('1')!, currency: 'USD' }));
        throw new Error('roll back');
      }),
      /roll back/,
    );
    assert.equal(await countPayments(storage.db, { merchantId }), before);
    await assertCountsAgree(merchantId);
  });

  it('stays exact when several folds run at once while payments are created', async () => {
    const writes = Array.from({ length: 20 }, () => newPayment());
    const folds = Array.from({ length: 4 }, () => foldPaymentCountChanges(storage.db));
    await Promise.all([...writes, ...folds]);
    await foldPaymentCountChanges(storage.db);
    await assertCountsAgree(merchantId);
    const { rows } = await sql<{ rows: number }>`select count(*)::int8 as rows from payment_count_changes`.execute(storage.db);
    assert.equal(Number(rows[0]!.rows), 0);
  });
});
