import type { Db } from '../../storage/database.ts';
import { type Payment, type PaymentStatus, paymentFromRow } from './payment.ts';
import { countPayments } from './payment-counts.ts';

/**
 * Finds one of a merchant's payments by its numeric id or its `pay_…`
 * transaction id. Another merchant's payment is simply not found.
 */
export async function findPayment(db: Db, input: { merchantId: number; payment: number | string }): Promise<Payment | undefined> {
  let query = db.selectFrom('payments').selectAll().where('merchant_id', '=', input.merchantId);
  query = typeof input.payment === 'number' ? query.where('id', '=', input.payment) : query.where('transaction_id', '=', input.payment);
  const row = await query.executeTakeFirst();
  return row && paymentFromRow(row);
}

export type ListPaymentsInput = {
  merchantId: number;
  status?: PaymentStatus | undefined;
  /** Inclusive lower bound of `created_at`. */
  from?: Date | undefined;
  /** Exclusive upper bound of `created_at`. */
  until?: Date | undefined;
  page: number;
  perPage: number;
};

/**
 * A page of a merchant's payments, newest first, with the total that match.
 *
 * @dev The page is found by id first and its rows read after: the ids come
 * from an index-only scan of `(merchant_id[, status], created_at, id)`, so
 * the rows an offset skips are never read from the table. A deep page of a
 * large merchant otherwise reads every skipped row.
 */
export async function listPayments(db: Db, input: ListPaymentsInput): Promise<{ payments: Payment[]; total: number }> {
  let filtered = db.selectFrom('payments').where('merchant_id', '=', input.merchantId);
  if (input.status) filtered = filtered.where('status', '=', input.status);
  if (input.from) filtered = filtered.where('created_at', '>=', input.from);
  if (input.until) filtered = filtered.where('created_at', '<', input.until);

  const pageIds = filtered
    .select('id')
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(input.perPage)
    .offset((input.page - 1) * input.perPage);
  // Note: without a date range the total is read from the kept counts; a range is counted in the index.
  const total =
    input.from === undefined && input.until === undefined
      ? countPayments(db, { merchantId: input.merchantId, status: input.status })
      : filtered
          .select((eb) => eb.fn.countAll<number>().as('total'))
          .executeTakeFirstOrThrow()
          .then((count) => Number(count.total));
  const [rows, count] = await Promise.all([
    db
      .selectFrom('payments')
      .selectAll()
      .where('merchant_id', '=', input.merchantId)
      .where('id', 'in', pageIds)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute(),
    total,
  ]);
  return { payments: rows.map(paymentFromRow), total: count };
}

/** Finds a payment by its transaction id alone, for the customer-facing checkout page. */
export async function findPaymentByTransactionId(db: Db, transactionId: string): Promise<Payment | undefined> {
  const row = await db.selectFrom('payments').selectAll().where('transaction_id', '=', transactionId).executeTakeFirst();
  return row && paymentFromRow(row);
}
