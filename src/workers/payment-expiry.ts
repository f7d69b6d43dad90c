import type { Logger } from 'pino';
import { transitionPayment } from '../core/payments/transitions.ts';
import type { Db } from '../storage/database.ts';
import type { Settlement } from '../storage/schema.ts';

/**
 * Expires on-chain payments whose window has passed with nothing or too
 * little received, and payment sessions whose customer never chose an asset
 * (settlement `none` with a deadline; no other payment has one): status `cancelled`, settlement `expired`, event
 * `payment.cancelled` with reason `expired`. A payment with a transfer still
 * confirming is left alone until that transfer settles. Funds that arrive
 * later are still recorded (`payment.late_transfer`).
 */
const expirableSettlements: Settlement[] = ['none', 'awaiting_payment', 'underpaid'];

export async function expireDuePayments(db: Db, now: Date, limit = 100): Promise<number> {
  const due = await db
    .selectFrom('payments')
    .select('id')
    .where('status', '=', 'pending')
    .where('expires_at', '<', now)
    .where('settlement', 'in', expirableSettlements)
    .orderBy('expires_at')
    .limit(limit)
    .execute();
  let expired = 0;
  for (const { id } of due) {
    const done = await db.transaction().execute(async (trx) => {
      // Note: re-read under lock; a transfer may have arrived since the scan.
      const row = await trx.selectFrom('payments').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
      if (!row || row.status !== 'pending' || !row.expires_at || row.expires_at >= now || !expirableSettlements.includes(row.settlement)) return false;
      await trx.updateTable('payments').set({ settlement: 'expired' }).where('id', '=', id).execute();
      await transitionPayment(trx, { payment: id, to: 'cancelled', reason: 'expired' });
      return true;
    });
    if (done) expired += 1;
  }
  return expired;
}

export function startPaymentExpiry(options: { db: Db; logger: Logger; intervalMs?: number }): { stop(): Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    running = expireDuePayments(options.db, new Date())
      .then((count) => {
        if (count > 0) options.logger.info({ expired: count }, 'payments expired');
      })
      .catch((error: unknown) => options.logger.warn({ err: error }, 'payment expiry failed; will retry'));
  }, options.intervalMs ?? 1_000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
