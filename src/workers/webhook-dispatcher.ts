import type { Logger } from 'pino';
import { type ClaimedDelivery, claimDueDeliveries, nextDueAt, recordAttempt, webhookChannel } from '../core/webhooks/delivery-queue.ts';
import { endpointFromRow, type WebhookEndpoint } from '../core/webhooks/endpoints.ts';
import type { WebhookUrlPolicy } from '../core/webhooks/url-safety.ts';
import type { MasterKey } from '../internal/secrets.ts';
import type { Storage } from '../storage/database.ts';
import { sendWebhook } from './webhook-sender.ts';

/**
 * Delays before attempts 2 to 6, as the PayCrypt v1 docs give them: attempt 1
 * is immediate, then 1 min, 5 min, 15 min, 1 h and 4 h; the sixth is final.
 */
export const webhookRetryDelaysMs = [60_000, 300_000, 900_000, 3_600_000, 14_400_000] as const;
export const webhookMaxAttempts = webhookRetryDelaysMs.length + 1;

export type StoredEventRow = { id: string; type: string; data: unknown; createdAt: Date };

/** Builds the signed request of one attempt, in the endpoint's webhook format. */
export type WebhookRequestBuilder = (event: StoredEventRow, endpoint: WebhookEndpoint, at: Date) => { body: string; headers: Record<string, string> };

export type WebhookDispatcherOptions = {
  storage: Storage;
  master: MasterKey;
  logger: Logger;
  buildRequest: WebhookRequestBuilder;
  policy: WebhookUrlPolicy;
  timeoutMs: number;
  /** Multiplies the retry delays; 1 in production, small in tests. */
  timeScale: number;
  /** Deliveries in flight in this process at most. */
  concurrency: number;
  /** Deliveries in flight to one endpoint in this process at most. */
  endpointConcurrency: number;
  /** How long a claim holds a delivery (default: the timeout plus 30 s); a dead process's claims run out after it. */
  leaseMs?: number;
  /** Longest sleep between looks at the queue when nothing wakes the dispatcher. */
  pollIntervalMs?: number;
};

export type WebhookDispatcher = { stop(): Promise<void>; wake(): void };

/**
 * The webhook dispatcher: claims due deliveries, sends them, logs every
 * attempt and schedules retries. Wakes on the queue's NOTIFY (sent when an
 * event commits), on the next retry's due time, and at least every poll
 * interval. Run one in each gateway process; they share the queue safely.
 */
export function startWebhookDispatcher(options: WebhookDispatcherOptions): WebhookDispatcher {
  const { storage, logger } = options;
  const db = storage.db;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const leaseMs = options.leaseMs ?? options.timeoutMs + 30_000;
  const inFlight = new Set<Promise<void>>();
  const perEndpoint = new Map<string, number>();
  let stopped = false;
  let wakeUp: (() => void) | undefined;
  let pendingWake = false;
  /** When the last claim looked at the queue. */
  let lookedAt = new Date(0);

  const wake = () => {
    pendingWake = true;
    wakeUp?.();
  };
  const unlisten = storage.listen(webhookChannel, wake).catch((error: unknown) => {
    logger.warn({ err: error }, 'webhook dispatcher cannot listen for notifications; polling only');
    return async () => {};
  });

  async function deliver(delivery: ClaimedDelivery): Promise<void> {
    const [eventRow, endpointRow] = await Promise.all([
      db.selectFrom('events').select(['id', 'type', 'data', 'created_at']).where('id', '=', delivery.eventId).executeTakeFirstOrThrow(),
      db.selectFrom('webhook_endpoints').selectAll().where('id', '=', delivery.endpointId).executeTakeFirstOrThrow(),
    ]);
    const endpoint = endpointFromRow(options.master, endpointRow);
    const request = options.buildRequest({ id: eventRow.id, type: eventRow.type, data: eventRow.data, createdAt: eventRow.created_at }, endpoint, new Date());
    const outcome = await sendWebhook({ url: endpoint.url, ...request, timeoutMs: options.timeoutMs, policy: options.policy });
    const delay = outcome.succeeded ? undefined : webhookRetryDelaysMs[delivery.attempt - 1];
    const retryAt = delay === undefined ? undefined : new Date(Date.now() + delay * options.timeScale);
    await recordAttempt(db, { delivery, outcome, retryAt });
    const log = { delivery_id: delivery.id, event_id: delivery.eventId, attempt: delivery.attempt, status_code: outcome.statusCode, ms: Math.round(outcome.durationMs) };
    if (outcome.succeeded) logger.debug(log, 'webhook delivered');
    else logger.warn({ ...log, error: outcome.error, final: retryAt === undefined }, retryAt ? 'webhook attempt failed; will retry' : 'webhook delivery failed for good');
  }

  function launch(delivery: ClaimedDelivery) {
    perEndpoint.set(delivery.endpointId, (perEndpoint.get(delivery.endpointId) ?? 0) + 1);
    const running: Promise<void> = deliver(delivery)
      .catch((error: unknown) => {
        // Note: the lease runs out and another claim retries; nothing is lost.
        logger.error({ err: error, delivery_id: delivery.id }, 'webhook attempt could not be recorded; it will be retried after its lease');
      })
      .finally(() => {
        inFlight.delete(running);
        const left = (perEndpoint.get(delivery.endpointId) ?? 1) - 1;
        if (left > 0) perEndpoint.set(delivery.endpointId, left);
        else perEndpoint.delete(delivery.endpointId);
        wake();
      });
    inFlight.add(running);
  }

  async function claimBatch(): Promise<number> {
    const now = new Date();
    lookedAt = now;
    const free = options.concurrency - inFlight.size;
    if (free <= 0) return 0;
    const reserved = new Map<string, number>();
    const claimed = await claimDueDeliveries(db, {
      now,
      limit: free,
      leaseUntil: new Date(now.getTime() + leaseMs),
      // Note: a backlog to an endpoint at its limit must not fill the batch and starve every other endpoint.
      skipEndpoints: [...perEndpoint].filter(([, count]) => count >= options.endpointConcurrency).map(([endpointId]) => endpointId),
      accept: ({ endpointId }) => {
        const used = (perEndpoint.get(endpointId) ?? 0) + (reserved.get(endpointId) ?? 0);
        if (used >= options.endpointConcurrency) return false;
        reserved.set(endpointId, (reserved.get(endpointId) ?? 0) + 1);
        return true;
      },
    });
    for (const delivery of claimed) launch(delivery);
    return claimed.length;
  }

  async function sleep() {
    let timeout = pollIntervalMs;
    // Note: a due delivery that was not claimed waits on an earlier one or on
    // its endpoint's limit; a finishing attempt wakes the loop for it. One that
    // fell due after the last look (even by a millisecond) is looked at now.
    const due = await nextDueAt(db, lookedAt).catch(() => undefined);
    if (due) timeout = Math.min(timeout, Math.max(0, due.getTime() - Date.now()));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeout);
      wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
      if (pendingWake) wakeUp();
    });
    wakeUp = undefined;
  }

  const loop = (async () => {
    while (!stopped) {
      pendingWake = false;
      try {
        const claimed = await claimBatch();
        // Note: a full batch may mean more is due; look again at once.
        if (claimed > 0 && inFlight.size < options.concurrency) continue;
      } catch (error) {
        logger.warn({ err: error }, 'webhook dispatcher could not claim deliveries; retrying');
      }
      if (!stopped) await sleep();
    }
  })();

  return {
    wake,
    async stop() {
      stopped = true;
      wakeUp?.();
      await loop;
      await Promise.allSettled([...inFlight]);
      await (await unlisten)();
    },
  };
}
