import { createId } from '../internal/ids.ts';
import type { Transaction } from '../storage/database.ts';

/**
 * The outbox: every state change appends its event in the transaction that
 * makes the change, so a change is never announced without happening, nor
 * happens without being announced. Workers carry events out.
 */
export type EventRecord = {
  id: string;
  merchantId: number;
  paymentId: number | null;
  type: string;
  data: unknown;
  createdAt: Date;
};

export async function appendEvent(
  trx: Transaction,
  event: { merchantId: number; paymentId: number | null; type: string; data: unknown; at: Date },
): Promise<EventRecord> {
  const id = createId('evt');
  await trx
    .insertInto('events')
    .values({
      id,
      merchant_id: event.merchantId,
      payment_id: event.paymentId,
      type: event.type,
      data: JSON.stringify(event.data),
      created_at: event.at,
    })
    .execute();
  return { id, merchantId: event.merchantId, paymentId: event.paymentId, type: event.type, data: event.data, createdAt: event.at };
}
