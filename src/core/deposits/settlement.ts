import { sql } from 'kysely';
import type { Transaction } from '../../storage/database.ts';
import type { Settlement } from '../../storage/schema.ts';
import { appendEvent } from '../events.ts';
import { type Payment, paymentFromRow, paymentSnapshot } from '../payments/payment.ts';
import { transitionPayment } from '../payments/transitions.ts';

/**
 * Brings a payment in line with the transfers recorded for it: how much is
 * detected and confirmed, whether it is paid, under- or overpaid, and its
 * status. Called in the transaction that changed its transfers, so the
 * payment, its transfers and the events that announce them commit together.
 *
 * @dev Only confirmed transfers pay: a payment completes once the confirmed
 * amount of its own asset reaches the amount due. A reorg that removes a
 * paying transfer after completion moves the payment back to `pending` with
 * `payment.reversed` — the one way out of `completed`, and only on chain
 * evidence. Transfers of another asset are recorded but never count.
 */
export async function settlePayment(trx: Transaction, paymentId: number, now: Date): Promise<Payment> {
  const row = await trx.selectFrom('payments').selectAll().where('id', '=', paymentId).forUpdate().executeTakeFirstOrThrow();
  const payment = paymentFromRow(row);
  if (!payment.crypto || !payment.deposit) return payment;

  const { rows } = await sql<{ paid: string | null; detected: string | null; unconfirmed: string | null }>`
    select
      sum(amount) filter (where state = 'confirmed') as paid,
      sum(amount) as detected,
      sum(amount) filter (where state = 'detected') as unconfirmed
    from chain_transfers
    where payment_id = ${paymentId} and asset = ${payment.crypto.currency} and state <> 'removed'
  `.execute(trx);
  const paid = BigInt(rows[0]?.paid ?? '0');
  const detected = BigInt(rows[0]?.detected ?? '0');
  const due = payment.crypto.amount;
  const open = payment.status === 'pending' || payment.status === 'approved';

  let settlement: Settlement;
  if (payment.settlement === 'expired') settlement = 'expired';
  else if (paid >= due) settlement = paid > due ? 'overpaid' : 'paid';
  else if (detected > paid) settlement = 'detected';
  else if (paid > 0n) settlement = 'underpaid';
  else settlement = 'awaiting_payment';

  const changed = paid !== payment.amountPaid || detected !== payment.amountDetected || settlement !== payment.settlement;
  if (!changed) return payment;

  let current = paymentFromRow(
    await trx
      .updateTable('payments')
      .set({ amount_paid: paid.toString(), amount_detected: detected.toString(), settlement, updated_at: now })
      .where('id', '=', paymentId)
      .returningAll()
      .executeTakeFirstOrThrow(),
  );
  const announce = (type: string, extra: Record<string, unknown> = {}) =>
    appendEvent(trx, { merchantId: current.merchantId, paymentId, type, data: { payment: paymentSnapshot(current), ...extra }, at: now });

  // Note: only a payment the chain itself had paid can be reversed by the chain;
  // one an operator completed by hand stays completed.
  if (payment.status === 'completed' && payment.amountPaid >= due && paid < due) {
    // Note: the customer paid in time; the payment gets a fresh window for the
    // transfer to be mined again instead of expiring at once.
    const window = payment.deposit.expiresAt ? payment.deposit.expiresAt.getTime() - payment.createdAt.getTime() : 0;
    const expiresAt = payment.deposit.expiresAt && new Date(Math.max(payment.deposit.expiresAt.getTime(), now.getTime() + window));
    current = paymentFromRow(
      await trx
        .updateTable('payments')
        .set({ status: 'pending', updated_at: now, expires_at: expiresAt })
        .where('id', '=', paymentId)
        .returningAll()
        .executeTakeFirstOrThrow(),
    );
    // Note: the status change is announced as every one is (payment.<status>), and the reorg by name.
    const reason = 'a paying transfer was removed by a chain reorganization';
    await announce('payment.pending', { reason });
    await announce('payment.reversed', { reason });
    return current;
  }
  // Note: a completed payment is closed too: more funds are a late transfer, not a new detection.
  if (!open) {
    if (detected > payment.amountDetected) await announce('payment.late_transfer', { reason: `funds arrived after the payment was ${payment.status}` });
    return current;
  }
  if (open && paid >= due) return transitionPayment(trx, { payment: paymentId, to: 'completed', reason: settlement === 'overpaid' ? 'overpaid' : 'paid' });
  if (detected > payment.amountDetected) await announce('payment.detected');
  else if (detected < payment.amountDetected) await announce('payment.reversed', { reason: 'a detected transfer was removed by a chain reorganization' });
  else if (settlement === 'underpaid' && payment.settlement !== 'underpaid') await announce('payment.underpaid');
  return current;
}
