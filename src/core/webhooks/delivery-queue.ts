import { sql } from 'kysely';
import { PayCryptError } from '../../internal/errors.ts';
import { createId } from '../../internal/ids.ts';
import type { Db, Transaction } from '../../storage/database.ts';

/**
 * The webhook delivery queue: one row per (event, endpoint) to deliver, with
 * its attempts logged beside it.
 *
 * @dev The job-table pattern: deliveries are claimed with
 * `FOR UPDATE SKIP LOCKED` and leased (`locked_until`), so several
 * dispatchers share the queue and none sends the same delivery at the same
 * time; a dispatcher that dies loses nothing, its lease just runs out. A
 * delivery waits while an earlier delivery of the same payment to the same
 * endpoint is still pending, so a merchant never sees `payment.completed`
 * before that payment's `payment.created`.
 */

export const webhookChannel = 'paycrypt_webhooks';

/**
 * Fans an event out to the merchant's endpoints that take its type, in the
 * event's own transaction. A switched-off endpoint gets its deliveries too:
 * they wait, unclaimed, until it is switched back on.
 */
export async function enqueueDeliveries(
  trx: Transaction,
  event: { id: string; seq: number; merchantId: number; paymentId: number | null; type: string; at: Date },
): Promise<number> {
  const result = await sql`
    insert into webhook_deliveries (id, event_id, event_seq, merchant_id, endpoint_id, payment_id, state, next_attempt_at, created_at)
    select ${createId('whd')}, ${event.id}, ${event.seq}, merchant_id, id, ${event.paymentId}, 'pending', ${event.at}, ${event.at}
    from webhook_endpoints
    where merchant_id = ${event.merchantId}
      and (event_types is null or event_types @> jsonb_build_array(${event.type}::text))
  `.execute(trx);
  const inserted = Number(result.numAffectedRows ?? 0n);
  // Note: the notification is sent when the transaction commits, never before.
  if (inserted > 0) await sql`select pg_notify(${webhookChannel}, '')`.execute(trx);
  return inserted;
}

export type ClaimedDelivery = {
  id: string;
  eventId: string;
  merchantId: number;
  endpointId: string;
  attempt: number;
};

/**
 * Claims up to `limit` due deliveries for one attempt each, leasing them until
 * `leaseUntil`. Deliveries to `skipEndpoints` (e.g. endpoints at their
 * concurrency limit) are not looked at, so they cannot crowd others out of the
 * batch. `accept` may decline some more; declined rows are left untouched for
 * the next claim.
 */
export async function claimDueDeliveries(
  db: Db,
  input: { now: Date; limit: number; leaseUntil: Date; skipEndpoints?: readonly string[]; accept?: (candidate: { endpointId: string }) => boolean },
): Promise<ClaimedDelivery[]> {
  const skip = input.skipEndpoints ?? [];
  return db.transaction().execute(async (trx) => {
    const candidates = await sql<{ id: string; endpoint_id: string }>`
      select d.id, d.endpoint_id
      from webhook_deliveries d
      join webhook_endpoints e on e.id = d.endpoint_id and e.enabled
      where d.state = 'pending'
        and d.next_attempt_at <= ${input.now}
        and (d.locked_until is null or d.locked_until < ${input.now})
        ${skip.length > 0 ? sql`and d.endpoint_id not in (${sql.join(skip)})` : sql``}
        and not exists (
          select 1 from webhook_deliveries earlier
          where earlier.endpoint_id = d.endpoint_id
            and earlier.payment_id = d.payment_id
            and earlier.state = 'pending'
            and earlier.event_seq < d.event_seq
        )
      order by d.next_attempt_at, d.event_seq
      limit ${input.limit}
      for update of d skip locked
    `.execute(trx);
    const accepted = candidates.rows.filter((row) => input.accept?.({ endpointId: row.endpoint_id }) ?? true).map((row) => row.id);
    if (accepted.length === 0) return [];
    const claimed = await trx
      .updateTable('webhook_deliveries')
      .set((eb) => ({ locked_until: input.leaseUntil, attempts: eb('attempts', '+', 1) }))
      .where('id', 'in', accepted)
      .returning(['id', 'event_id', 'merchant_id', 'endpoint_id', 'attempts'])
      .execute();
    return claimed.map((row) => ({ id: row.id, eventId: row.event_id, merchantId: row.merchant_id, endpointId: row.endpoint_id!, attempt: row.attempts }));
  });
}

export type AttemptOutcome = {
  url: string;
  startedAt: Date;
  durationMs: number;
  statusCode: number | null;
  responseExcerpt: string | null;
  error: string | null;
  succeeded: boolean;
};

/**
 * Logs an attempt and settles the delivery: succeeded, retried at
 * `retryAt`, or failed for good when `retryAt` is undefined.
 */
export async function recordAttempt(db: Db, input: { delivery: ClaimedDelivery; outcome: AttemptOutcome; retryAt: Date | undefined }): Promise<void> {
  const { delivery, outcome } = input;
  await db.transaction().execute(async (trx) => {
    await trx
      .insertInto('webhook_attempts')
      .values({
        delivery_id: delivery.id,
        attempt: delivery.attempt,
        url: outcome.url,
        started_at: outcome.startedAt,
        duration_ms: Math.round(outcome.durationMs),
        status_code: outcome.statusCode,
        response_excerpt: outcome.responseExcerpt,
        error: outcome.error,
      })
      .execute();
    const finished = outcome.succeeded || input.retryAt === undefined;
    await trx
      .updateTable('webhook_deliveries')
      .set({
        state: outcome.succeeded ? 'succeeded' : finished ? 'failed' : 'pending',
        locked_until: null,
        last_status_code: outcome.statusCode,
        last_error: outcome.error,
        ...(finished ? { completed_at: new Date() } : { next_attempt_at: input.retryAt! }),
      })
      .where('id', '=', delivery.id)
      .execute();
  });
}

/**
 * The first time after `since` (the dispatcher's last look at the queue) that
 * a pending delivery to a switched-on endpoint becomes claimable: its retry
 * falls due or its lease runs out. For the dispatcher's next wake-up.
 *
 * @dev Deliveries due at the last look are left out: one that was not
 * claimed then is in flight, waits on an earlier delivery of its payment or on
 * its endpoint's limit, and the attempt that holds it back wakes the
 * dispatcher when it ends. Counting them would cut every sleep to the poll
 * interval, and retries falling due meanwhile would wait for the next poll.
 */
export async function nextDueAt(db: Db, since: Date): Promise<Date | undefined> {
  const claimableAt = sql<Date>`greatest(d.next_attempt_at, d.locked_until)`;
  const row = await db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('webhook_endpoints as e', 'e.id', 'd.endpoint_id')
    .select((eb) => eb.fn.min(claimableAt).as('next'))
    .where('d.state', '=', 'pending')
    .where('e.enabled', '=', true)
    .where(claimableAt, '>', since)
    .executeTakeFirst();
  return (row?.next as Date | null | undefined) ?? undefined;
}

/** Queues a new delivery of one event to the merchant's current endpoint. */
export async function redeliverEvent(db: Db, input: { merchantId: number; eventId: string; now?: Date }): Promise<string> {
  return db.transaction().execute(async (trx) => {
    const event = await trx
      .selectFrom('events')
      .select(['id', 'seq', 'payment_id'])
      .where('id', '=', input.eventId)
      .where('merchant_id', '=', input.merchantId)
      .executeTakeFirst();
    if (!event) throw new PayCryptError('resource_not_found', `Event not found: ${input.eventId}`);
    const endpoint = await trx.selectFrom('webhook_endpoints').select(['id', 'enabled']).where('merchant_id', '=', input.merchantId).executeTakeFirst();
    if (!endpoint?.enabled) throw new PayCryptError('invalid_request', 'Webhooks are not enabled: set and enable a webhook URL first');
    const now = input.now ?? new Date();
    const id = createId('whd');
    await trx
      .insertInto('webhook_deliveries')
      .values({
        id,
        event_id: event.id,
        event_seq: event.seq,
        merchant_id: input.merchantId,
        endpoint_id: endpoint.id,
        payment_id: event.payment_id,
        state: 'pending',
        next_attempt_at: now,
        created_at: now,
        locked_until: null,
        last_status_code: null,
        last_error: null,
        completed_at: null,
      })
      .execute();
    await sql`select pg_notify(${webhookChannel}, '')`.execute(trx);
    return id;
  });
}

/** Queues again every event whose delivery failed for good within [from, until). Returns the event ids. */
export async function redeliverFailed(db: Db, input: { merchantId: number; from: Date; until: Date }): Promise<string[]> {
  const failed = await db
    .selectFrom('webhook_deliveries')
    .select('event_id')
    .distinct()
    .where('merchant_id', '=', input.merchantId)
    .where('state', '=', 'failed')
    .where('created_at', '>=', input.from)
    .where('created_at', '<', input.until)
    // Note: an event already delivered by a later redelivery is not sent again.
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('webhook_deliveries as later')
            .select('later.id')
            .whereRef('later.event_id', '=', 'webhook_deliveries.event_id')
            .where('later.state', 'in', ['pending', 'succeeded']),
        ),
      ),
    )
    .execute();
  const eventIds = failed.map((row) => row.event_id);
  for (const eventId of eventIds) await redeliverEvent(db, { merchantId: input.merchantId, eventId });
  return eventIds;
}

export type DeliveryRecord = {
  id: string;
  eventId: string;
  eventType: string;
  state: 'pending' | 'succeeded' | 'failed';
  attempts: number;
  nextAttemptAt: Date | null;
  lastStatusCode: number | null;
  lastError: string | null;
  createdAt: Date;
  completedAt: Date | null;
  log: Array<{ attempt: number; url: string; startedAt: Date; durationMs: number; statusCode: number | null; responseExcerpt: string | null; error: string | null }>;
};

/** A merchant's deliveries with every attempt, newest first, by cursor; optionally for one event or in one state. */
export async function listDeliveries(
  db: Db,
  input: { merchantId: number; limit: number; eventId?: string | undefined; state?: DeliveryRecord['state'] | undefined; startingAfter?: string | undefined },
): Promise<{ deliveries: DeliveryRecord[]; hasMore: boolean }> {
  let query = db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('events as e', 'e.id', 'd.event_id')
    .select(['d.id', 'd.event_id', 'e.type', 'd.state', 'd.attempts', 'd.next_attempt_at', 'd.last_status_code', 'd.last_error', 'd.created_at', 'd.completed_at'])
    .where('d.merchant_id', '=', input.merchantId);
  if (input.eventId !== undefined) query = query.where('d.event_id', '=', input.eventId);
  if (input.state !== undefined) query = query.where('d.state', '=', input.state);
  if (input.startingAfter !== undefined) {
    const cursor = await db
      .selectFrom('webhook_deliveries')
      .select(['created_at', 'id'])
      .where('id', '=', input.startingAfter)
      .where('merchant_id', '=', input.merchantId)
      .executeTakeFirst();
    if (!cursor) throw new PayCryptError('invalid_request', `starting_after names no delivery: ${input.startingAfter}`, { details: { field: 'starting_after' } });
    query = query.where((eb) => eb.or([eb('d.created_at', '<', cursor.created_at), eb.and([eb('d.created_at', '=', cursor.created_at), eb('d.id', '<', cursor.id)])]));
  }
  const rows = await query.orderBy('d.created_at', 'desc').orderBy('d.id', 'desc').limit(input.limit + 1).execute();
  const page = rows.slice(0, input.limit);
  const attempts =
    page.length === 0
      ? []
      : await db.selectFrom('webhook_attempts').selectAll().where('delivery_id', 'in', page.map((row) => row.id)).orderBy('attempt').execute();
  return {
    hasMore: rows.length > input.limit,
    deliveries: page.map((row) => ({
      id: row.id,
      eventId: row.event_id,
      eventType: row.type,
      state: row.state,
      attempts: row.attempts,
      nextAttemptAt: row.state === 'pending' ? row.next_attempt_at : null,
      lastStatusCode: row.last_status_code,
      lastError: row.last_error,
      createdAt: row.created_at,
      completedAt: row.completed_at,
      log: attempts
        .filter((attempt) => attempt.delivery_id === row.id)
        .map((attempt) => ({
          attempt: attempt.attempt,
          url: attempt.url,
          startedAt: attempt.started_at,
          durationMs: attempt.duration_ms,
          statusCode: attempt.status_code,
          responseExcerpt: attempt.response_excerpt,
          error: attempt.error,
        })),
    })),
  };
}
