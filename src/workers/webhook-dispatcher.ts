import type { Logger } from 'pino';
import {
  type AttemptOutcome,
  type ClaimedDelivery,
  claimDueDeliveries,
  clearDrainedPauseFlags,
  nextDueAt,
  pauseRacedDeliveries,
  recordAttempts,
  releaseDeliveries,
  resumeRacedDeliveries,
  webhookChannel,
} from '../core/webhooks/delivery-queue.ts';
import { endpointFromRow, type WebhookEndpoint } from '../core/webhooks/endpoints.ts';
import type { WebhookUrlPolicy } from '../core/webhooks/url-safety.ts';
import type { MasterKey } from '../internal/secrets.ts';
import type { Storage } from '../storage/database.ts';
import { createAttemptRecorder, onceNextTurn } from './webhook-attempt-recorder.ts';
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
  /** Webhook requests in flight in this process at most. */
  concurrency: number;
  /** Webhook requests in flight to one endpoint in this process at most. */
  endpointConcurrency: number;
  /** How long a claim holds a delivery (default: the timeout plus 30 s); a dead process's claims run out after it. */
  leaseMs?: number;
  /** Longest sleep between looks at the queue when nothing wakes the dispatcher. */
  pollIntervalMs?: number;
  /** How often the dispatcher settles deliveries that raced their endpoint's switch on or off (default 10 s). */
  sweepIntervalMs?: number;
};

/**
 * How far back a sweep looks for switched endpoints: far longer than any
 * event statement runs, and than an attempt under way at a switch-off takes
 * to end (the timeout is at most 2 min).
 */
const sweepWindowMs = 10 * 60_000;

export type WebhookDispatcher = { stop(): Promise<void>; wake(): void };

type Ready = { delivery: ClaimedDelivery; endpoint: WebhookEndpoint };

/**
 * The webhook dispatcher: claims due deliveries, sends them, logs every
 * attempt and schedules retries. Wakes on the queue's NOTIFY (sent when an
 * event commits), on the next retry's due time, and at least every poll
 * interval. Run one in each gateway process; they share the queue safely.
 *
 * @dev Claiming, sending and recording overlap, so that neither the network
 * nor the database waits for the other:
 * - a claim takes more than there are free slots; the rest wait in `ready`
 *   and go out the moment a slot frees, while the next claim is under way.
 *   One that could no longer finish inside its lease is given back instead of
 *   sent, so a lease still means no two processes send the same delivery at
 *   once;
 * - a request's slot is freed as soon as its answer is in; its attempt is
 *   recorded afterwards, in batches (see `createAttemptRecorder`). The
 *   delivery stays leased and pending until that commit, so nothing else (not
 *   even the payment's next event) can take it meanwhile. Claiming pauses
 *   while four times `concurrency` answered attempts wait for their record.
 */
export function startWebhookDispatcher(options: WebhookDispatcherOptions): WebhookDispatcher {
  const { storage, logger } = options;
  const db = storage.db;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const sweepIntervalMs = options.sweepIntervalMs ?? 10_000;
  let sweptAt = 0;
  const leaseMs = options.leaseMs ?? options.timeoutMs + 30_000;
  /**
   * Claimed ahead, at most this many: eight sets of requests in flight. A
   * claim is made once half of them have gone out (`minClaim`), so a claim
   * takes four sets while four more are still ready. A claim of a hundred
   * deliveries takes 20–30 ms of a busy 2-core machine, while a quick receiver
   * answers a full set of 64 in well under that; with two sets ahead, every
   * claim found the dispatcher idle, nothing left to send.
   *
   * Why so many at once: a statement costs the gateway's one thread a good
   * deal beside the rows it handles (the driver's work and the round trip
   * through the kernel: 190-380 µs of Node CPU for a claim that finds
   * nothing), and that thread bounds the dispatcher's rate. In
   * `npm run bench:webhook-queue`, claims of 256 instead of 64 cost PostgreSQL
   * 56 and 58 µs per delivery instead of 89 and 76 (docs/benchmarks.md).
   */
  const readyLimit = 8 * options.concurrency;
  /**
   * Claimed at once for one endpoint, in flight and ahead: ten sets of its
   * requests, so that one endpoint's backlog fills a whole claim. Still a
   * bound, so that a backlog to one endpoint at its limit cannot take every
   * claim and starve the other endpoints.
   */
  const endpointLookahead = 10 * options.endpointConcurrency;
  /** Claiming pauses while this many answered attempts wait for their record. */
  const recordingLimit = 4 * options.concurrency;
  /** A claim is not worth a round trip for fewer than this many while others are still ready. */
  const minClaim = Math.max(1, Math.floor(readyLimit / 2));
  /** Attempts under way, from launch to record; `stop` waits for them. */
  const running = new Set<Promise<void>>();
  const ready: Ready[] = [];
  /** Requests in flight, in all and per endpoint. */
  let sending = 0;
  const perEndpoint = new Map<string, number>();
  /** Attempts answered and not yet recorded. */
  let recording = 0;
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

  // Note: while requests are in flight, their answers come within milliseconds; a record waits for up to two sets of them.
  const recorder = createAttemptRecorder({
    write: (attempts) => recordAttempts(db, attempts),
    answersComing: () => sending > 0,
    batchTarget: 2 * options.concurrency,
  });

  async function deliver(delivery: ClaimedDelivery, endpoint: WebhookEndpoint): Promise<void> {
    let outcome: AttemptOutcome;
    try {
      const request = options.buildRequest(delivery.event, endpoint, new Date());
      outcome = await sendWebhook({ url: endpoint.url, ...request, timeoutMs: options.timeoutMs, policy: options.policy });
    } finally {
      freeSlot(delivery.endpointId);
    }
    const delay = outcome.succeeded ? undefined : webhookRetryDelaysMs[delivery.attempt - 1];
    const retryAt = delay === undefined ? undefined : new Date(Date.now() + delay * options.timeScale);
    recording += 1;
    try {
      await recorder.record({ delivery, outcome, retryAt });
    } finally {
      recording -= 1;
    }
    // Note: the level is checked first, so that a busy dispatcher makes no log object per success it does not log.
    if (outcome.succeeded && !logger.isLevelEnabled('debug')) return;
    const log = { delivery_id: delivery.id, event_id: delivery.eventId, attempt: delivery.attempt, status_code: outcome.statusCode, ms: Math.round(outcome.durationMs) };
    if (outcome.succeeded) logger.debug(log, 'webhook delivered');
    else logger.warn({ ...log, error: outcome.error, final: retryAt === undefined }, retryAt ? 'webhook attempt failed; will retry' : 'webhook delivery failed for good');
  }

  function launch({ delivery, endpoint }: Ready) {
    sending += 1;
    perEndpoint.set(delivery.endpointId, (perEndpoint.get(delivery.endpointId) ?? 0) + 1);
    const attempt: Promise<void> = deliver(delivery, endpoint)
      .catch((error: unknown) => {
        // Note: the lease runs out and another claim retries; nothing is lost.
        logger.error({ err: error, delivery_id: delivery.id }, 'webhook attempt could not be recorded; it will be retried after its lease');
      })
      .finally(() => {
        running.delete(attempt);
        // Note: a recorded attempt may let its payment's next event go.
        wakeToClaim();
      });
    running.add(attempt);
  }

  function freeSlot(endpointId: string) {
    sending -= 1;
    const left = (perEndpoint.get(endpointId) ?? 1) - 1;
    if (left > 0) perEndpoint.set(endpointId, left);
    else perEndpoint.delete(endpointId);
    scheduleLaunch();
    wakeToClaim();
  }

  /**
   * Wakes the loop when it would claim now: each attempt's end calls this,
   * and under load most find the dispatcher with more than enough ready. A
   * wake-up that claims nothing still costs the loop a turn (a timer, a
   * promise and a look for due deliveries), once per attempt: some 7,000
   * turns per 10,000 deliveries in the webhook benchmark.
   */
  function wakeToClaim() {
    if (claimWanted()) wake();
  }

  /** Room for this many more deliveries, in flight and ready. */
  const room = () => options.concurrency + readyLimit - sending - ready.length;

  /** Whether a claim is worth making now: room for one, and not too many answered attempts waiting for their record. */
  function claimWanted(): boolean {
    const free = room();
    return free > 0 && recording < recordingLimit && (free >= minClaim || ready.length === 0);
  }

  /**
   * Fills the slots freed in this turn of the event loop at the start of the
   * next, all at once, instead of one request as each answer comes in: the
   * requests then leave together, while the receiver is still busy with the
   * answers' turn, and each costs less to send (on a 2-core machine, a
   * sender's CPU per request beyond its own work: about 48 µs against 64).
   */
  const scheduleLaunch = onceNextTurn(launchReady);

  /**
   * Sends ready deliveries, in claim order, while there are slots for them;
   * gives back those whose lease is too short now.
   *
   * @dev Taken off the front with `shift`, which V8 does in constant time;
   * `splice(0, 1)` moved every delivery behind it, about 3 µs per delivery
   * with 512 ready. Those of endpoints at their limit go back in front, in
   * their order.
   */
  function launchReady() {
    const expiring: ClaimedDelivery[] = [];
    const endpointFull: Ready[] = [];
    // Note: an attempt sent now ends (or times out) before this; its lease must last that long.
    const latest = Date.now() + options.timeoutMs;
    while (ready.length > 0 && sending < options.concurrency) {
      const item = ready.shift()!;
      if (item.delivery.leaseUntil.getTime() < latest) expiring.push(item.delivery);
      else if ((perEndpoint.get(item.delivery.endpointId) ?? 0) < options.endpointConcurrency) launch(item);
      else endpointFull.push(item);
    }
    if (endpointFull.length > 0) ready.unshift(...endpointFull);
    if (expiring.length > 0) {
      giveBack(expiring);
      wakeToClaim();
    }
  }

  function giveBack(deliveries: ClaimedDelivery[]) {
    const release = releaseDeliveries(db, deliveries).catch((error: unknown) => {
      // Note: they come back anyway when their leases run out.
      logger.warn({ err: error, deliveries: deliveries.length }, 'webhook dispatcher could not give back unsent deliveries; they wait for their leases');
    });
    running.add(release);
    void release.finally(() => running.delete(release));
  }

  /** Busy slots per endpoint, counting those ready to go. */
  function endpointLoad(): Map<string, number> {
    const load = new Map(perEndpoint);
    for (const { delivery } of ready) load.set(delivery.endpointId, (load.get(delivery.endpointId) ?? 0) + 1);
    return load;
  }

  /** Claims what fits in the free slots and up to `readyLimit` ahead; returns whether it got all it asked for. */
  async function claimBatch(): Promise<boolean> {
    if (!claimWanted()) return false;
    const now = new Date();
    const limit = room();
    lookedAt = now;
    const claimed = await claimDueDeliveries(db, {
      now,
      limit,
      leaseUntil: new Date(now.getTime() + leaseMs),
      endpointLimit: endpointLookahead,
      busy: endpointLoad(),
    });
    // Note: a batch mostly goes to few endpoints; each one's secrets are unsealed once per batch.
    const endpoints = new Map<string, WebhookEndpoint>();
    for (const delivery of claimed) {
      let endpoint = endpoints.get(delivery.endpointId);
      if (!endpoint) endpoints.set(delivery.endpointId, (endpoint = endpointFromRow(options.master, delivery.endpoint, now)));
      ready.push({ delivery, endpoint });
    }
    launchReady();
    return claimed.length === limit;
  }

  /**
   * Settles what raced a switch of an endpoint: resumes what an event left
   * paused while its endpoint was switched on, and pauses what an attempt or
   * an event left pending while it was switched off. Then unflags the
   * switched-on endpoints whose paused deliveries have all gone out, so that
   * claims stop looking at them. Returns whether it resumed any.
   */
  async function sweep(): Promise<boolean> {
    if (Date.now() - sweptAt < sweepIntervalMs) return false;
    sweptAt = Date.now();
    const since = new Date(sweptAt - sweepWindowMs);
    let resumed = 0;
    let paused = 0;
    try {
      [resumed, paused] = await Promise.all([resumeRacedDeliveries(db, since), pauseRacedDeliveries(db, since, new Date(sweptAt))]);
      await clearDrainedPauseFlags(db);
    } catch (error) {
      logger.warn({ err: error }, 'webhook dispatcher could not sweep deliveries of switched endpoints; will try again');
    }
    if (resumed > 0) logger.info({ deliveries: resumed }, 'resumed deliveries paused while their endpoint was being switched on');
    if (paused > 0) logger.info({ deliveries: paused }, 'paused deliveries left pending while their endpoint was being switched off');
    return resumed > 0;
  }

  async function sleep() {
    let timeout = pollIntervalMs;
    // Note: a due delivery that was not claimed waits on an earlier one or on
    // its endpoint's limit; a finishing attempt wakes the loop for it (once a
    // claim is worth making). One that fell due after the last look (even by a
    // millisecond) is looked at now. With a wake-up pending, or deliveries
    // ready or in flight, the attempts under way wake the loop anyway, so the
    // look is skipped.
    const due = pendingWake || ready.length > 0 || sending >= options.concurrency ? undefined : await nextDueAt(db, lookedAt).catch(() => undefined);
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
        // Note: a full batch may mean more is due; look again at once.
        if (await claimBatch()) continue;
        if (await sweep()) continue;
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
      // Note: what was claimed but not sent goes back to the queue at once, for the next process.
      if (ready.length > 0) giveBack(ready.splice(0).map(({ delivery }) => delivery));
      while (running.size > 0) await Promise.allSettled([...running]);
      await (await unlisten)();
    },
  };
}
