import type { Logger } from 'pino';
import { pruneIdempotencyKeys } from '../api/idempotency.ts';
import { foldPaymentCountChanges } from '../core/payments/payment-counts.ts';
import { forgetExpiredSignatures } from '../core/request-signatures.ts';
import type { Db } from '../storage/database.ts';

/**
 * Housekeeping on timers: forgets idempotency keys past their retention and
 * request signatures past their replay window; every second, folds the
 * payment count changes (see payment-counts.ts), so that a count reads few
 * rows. Safe to run in every process: the deletes are idempotent.
 */
export function startMaintenance(options: {
  db: Db;
  logger: Logger;
  idempotencyTtlHours: number;
  intervalMs?: number;
  countsIntervalMs?: number;
}): { stop(): void } {
  const run = async () => {
    try {
      const removed = await pruneIdempotencyKeys(options.db, new Date(Date.now() - options.idempotencyTtlHours * 3_600_000));
      if (removed > 0) options.logger.info({ removed }, 'pruned idempotency keys');
      const signatures = await forgetExpiredSignatures(options.db, new Date());
      if (signatures > 0) options.logger.debug({ removed: signatures }, 'forgot expired request signatures');
    } catch (error) {
      options.logger.warn({ err: error }, 'maintenance failed; will retry');
    }
  };
  const foldCounts = async () => {
    try {
      await foldPaymentCountChanges(options.db);
    } catch (error) {
      options.logger.warn({ err: error }, 'folding payment counts failed; will retry');
    }
  };
  const timers = [setInterval(run, options.intervalMs ?? 600_000), setInterval(foldCounts, options.countsIntervalMs ?? 1_000)];
  for (const timer of timers) timer.unref();
  return { stop: () => timers.forEach(clearInterval) };
}
