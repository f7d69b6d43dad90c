import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PayCryptError } from '../../internal/errors.ts';
import { parseDecimal } from '../../internal/decimal.ts';
import type { Storage } from '../../storage/database.ts';
import { openTestStorage } from '../../testing/harness.ts';
import { noDepositChains } from '../deposits/deposit-chains.ts';
import { createMerchant } from '../merchants.ts';
import { createQuoter } from '../rates/quote.ts';
import { createTableRateSource } from '../rates/table-rate-source.ts';
import { insertPayment, preparePayment } from './create-payment.ts';
import { type PaymentStatus, paymentStatuses } from './payment.ts';
import { canTransition, paymentTransitions, transitionPayment } from './transitions.ts';

const master = { key: Buffer.alloc(32, 7) };
const quoter = createQuoter({ rates: createTableRateSource(), feeBps: 50 });

describe('payment state machine', () => {
  let storage: Storage;
  let merchantId: number;

  before(async () => {
    storage = await openTestStorage();
    merchantId = (await createMerchant(storage.db, master, { name: 'State machine' })).merchant.id;
  });
  after(() => storage.close());

  async function newPayment() {
    const prepared = await preparePayment({ db: storage.db, quoter, chains: noDepositChains }, { merchantId, type: 'deposit', method: 'crypto', amount: parseDecimal('10')!, currency: 'USD' });
    return storage.db.transaction().execute((trx) => insertPayment(trx, prepared));
  }

  /** A payment brought to `status` through allowed moves only. */
  async function paymentIn(status: PaymentStatus) {
    const payment = await newPayment();
    const path: PaymentStatus[] = status === 'pending' ? [] : paymentTransitions.pending.includes(status) ? [status] : ['approved', status];
    for (const step of path) await storage.db.transaction().execute((trx) => transitionPayment(trx, { payment: payment.id, to: step }));
    return payment;
  }

  async function eventsOf(paymentId: number) {
    return storage.db.selectFrom('events').select(['type', 'data']).where('payment_id', '=', paymentId).orderBy('seq').execute();
  }

  it('allows exactly the documented moves and no way back from a final status', () => {
    assert.deepEqual(paymentTransitions, {
      pending: ['approved', 'completed', 'failed', 'rejected', 'cancelled'],
      approved: ['completed', 'failed', 'cancelled'],
      completed: [],
      failed: [],
      rejected: [],
      cancelled: [],
    });
    assert.equal(canTransition('completed', 'pending'), false);
  });

  for (const from of paymentStatuses) {
    for (const to of paymentStatuses) {
      const allowed = canTransition(from, to);
      it(`${allowed ? 'moves' : 'refuses to move'} a payment from ${from} to ${to}`, async () => {
        const payment = await paymentIn(from);
        const before = await eventsOf(payment.id);
        const attempt = storage.db.transaction().execute((trx) => transitionPayment(trx, { payment: payment.id, to }));
        if (allowed) {
          const moved = await attempt;
          assert.equal(moved.status, to);
          const events = await eventsOf(payment.id);
          assert.equal(events.length, before.length + 1);
          assert.equal(events.at(-1)!.type, `payment.${to}`);
          assert.equal((events.at(-1)!.data as { payment: { status: string } }).payment.status, to);
        } else {
          await assert.rejects(attempt, (error: unknown) => error instanceof PayCryptError && error.code === 'invalid_state_transition');
          const row = await storage.db.selectFrom('payments').select('status').where('id', '=', payment.id).executeTakeFirstOrThrow();
          assert.equal(row.status, from);
          assert.equal((await eventsOf(payment.id)).length, before.length);
        }
      });
    }
  }

  it('writes a payment.created event with the payment in the same transaction as the payment', async () => {
    const payment = await newPayment();
    const events = await eventsOf(payment.id);
    assert.deepEqual(events.map((event) => event.type), ['payment.created']);
    assert.equal((events[0]!.data as { payment: { transaction_id: string } }).payment.transaction_id, payment.transactionId);
  });

  it('rolls back the status and its event together when the transaction fails', async () => {
    const payment = await newPayment();
    await assert.rejects(
      storage.db.transaction().execute(async (trx) => {
        await transitionPayment(trx, { payment: payment.id, to: 'completed' });
        throw new Error('failure after the change');
      }),
      /failure after the change/,
    );
    const row = await storage.db.selectFrom('payments').select('status').where('id', '=', payment.id).executeTakeFirstOrThrow();
    assert.equal(row.status, 'pending');
    assert.deepEqual((await eventsOf(payment.id)).map((event) => event.type), ['payment.created']);
  });

  it('lets only one of two concurrent moves from pending win', async () => {
    const payment = await newPayment();
    const results = await Promise.allSettled(
      (['completed', 'cancelled'] as const).map((to) => storage.db.transaction().execute((trx) => transitionPayment(trx, { payment: payment.id, to }))),
    );
    assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1);
    const events = await eventsOf(payment.id);
    assert.equal(events.length, 2);
    const row = await storage.db.selectFrom('payments').select('status').where('id', '=', payment.id).executeTakeFirstOrThrow();
    assert.equal(events[1]!.type, `payment.${row.status}`);
  });

  it('does not find another merchant\'s payment when scoped to a merchant', async () => {
    const payment = await newPayment();
    const other = (await createMerchant(storage.db, master, { name: 'Other' })).merchant.id;
    await assert.rejects(
      storage.db.transaction().execute((trx) => transitionPayment(trx, { payment: payment.id, to: 'cancelled', merchantId: other })),
      (error: unknown) => error instanceof PayCryptError && error.code === 'resource_not_found',
    );
  });
});
