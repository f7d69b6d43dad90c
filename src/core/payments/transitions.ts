import { PayCryptError } from '../../internal/errors.ts';
import type { Transaction } from '../../storage/database.ts';
import { appendEvent } from '../events.ts';
import { type Payment, type PaymentStatus, paymentFromRow, paymentSnapshot } from './payment.ts';

/**
 * The allowed moves of a payment's status. Terminal statuses have none:
 * a completed payment never goes back to pending.
 */
export const paymentTransitions: Readonly<Record<PaymentStatus, readonly PaymentStatus[]>> = {
  pending: ['approved', 'completed', 'failed', 'rejected', 'cancelled'],
  approved: ['completed', 'failed', 'cancelled'],
  completed: [],
  failed: [],
  rejected: [],
  cancelled: [],
};

export function canTransition(from: PaymentStatus, to: PaymentStatus): boolean {
  return paymentTransitions[from].includes(to);
}

/** Statuses from which `to` can be reached. */
function sourcesOf(to: PaymentStatus): PaymentStatus[] {
  return (Object.keys(paymentTransitions) as PaymentStatus[]).filter((from) => canTransition(from, to));
}

/**
 * Moves a payment to `to` and appends `payment.<to>` in the same transaction.
 *
 * @dev The check and the write are one conditional UPDATE, so two concurrent
 * transitions cannot both pass the check: the second finds the row changed.
 * `merchantId` scopes the lookup when the caller acts for a merchant.
 */
export async function transitionPayment(
  trx: Transaction,
  input: { payment: number | string; to: PaymentStatus; merchantId?: number; reason?: string },
): Promise<Payment> {
  const now = new Date();
  const sources = sourcesOf(input.to);
  let query = trx.updateTable('payments').set({ status: input.to, updated_at: now });
  query = typeof input.payment === 'number' ? query.where('id', '=', input.payment) : query.where('transaction_id', '=', input.payment);
  if (input.merchantId !== undefined) query = query.where('merchant_id', '=', input.merchantId);
  const row = sources.length === 0 ? undefined : await query.where('status', 'in', sources).returningAll().executeTakeFirst();

  if (!row) {
    let lookup = trx.selectFrom('payments').select(['status']);
    lookup = typeof input.payment === 'number' ? lookup.where('id', '=', input.payment) : lookup.where('transaction_id', '=', input.payment);
    if (input.merchantId !== undefined) lookup = lookup.where('merchant_id', '=', input.merchantId);
    const current = await lookup.executeTakeFirst();
    if (!current) throw new PayCryptError('resource_not_found', `Payment not found: ${input.payment}`);
    throw new PayCryptError('invalid_state_transition', `Cannot move a payment from ${current.status} to ${input.to}`, {
      details: { from: current.status, to: input.to, allowed: paymentTransitions[current.status as PaymentStatus] },
    });
  }

  const payment = paymentFromRow(row);
  await appendEvent(trx, {
    merchantId: payment.merchantId,
    paymentId: payment.id,
    type: `payment.${payment.status}`,
    data: { payment: paymentSnapshot(payment), ...(input.reason ? { reason: input.reason } : {}) },
    at: now,
  });
  return payment;
}
