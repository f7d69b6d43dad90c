import type { Logger } from 'pino';
import { pruneIdempotencyKeys } from '../api/idempotency.ts';
import { forgetExpiredSignatures } from '../core/request-signatures.ts';
import type { Db } from '../storage/database.ts';

/**
 * Housekeeping on a timer: forgets idempotency keys past their retention and
 * request signatures past their replay window.
 * Safe to run in every process: the deletes are idempotent.
 */
export function startMaintenance(options: { db: Db; logger: Logger; idempotencyTtlHours: number; intervalMs?: number }): { stop(): void } {
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
  const timer = setInterval(run, options.intervalMs ?? 600_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
