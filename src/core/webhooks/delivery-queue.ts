import { type Selectable, sql } from 'kysely';
import { PayCryptError } from '../../internal/errors.ts';
import { createId } from '../../internal/ids.ts';
import { arrayLiteral } from '../../storage/array-literal.ts';
import { type Db, preparedStatementMark, type Transaction } from '../../storage/database.ts';
import type { WebhookEndpointTable } from '../../storage/schema.ts';

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
 * The fan-out, as the `delivery` CTE of a statement whose CTE `event` inserts
 * events (returning `id, seq, merchant_id, payment_id, type, created_at`):
 * one delivery per event and endpoint of its merchant that takes its type,
 * in the events' own statement. A switched-off endpoint gets its deliveries
 * too, `paused`: they wait out of the due index until it is switched back
 * on, and the claims then take them as they are (see `dueCandidatesQuery`;
 * `resumeRacedDeliveries` for a delivery paused by an event that raced the
 * switch-on). A payment's own
 * endpoint (a session's `webhook_url`) takes that payment's events only.
 *
 * @dev Delivery ids are drawn by PostgreSQL, since how many rows the join
 * makes is known only there: `whd_`, the time in milliseconds as 12 hex
 * digits, then 20 random ones (80 bits), so that new deliveries' keys sort
 * together at the right edge of the index, as `createId` does. Plain
 * SQL text without parameters, so that it fits in any statement's text.
 */
export const deliveryCte = `delivery as (
  insert into webhook_deliveries (id, event_id, event_seq, merchant_id, endpoint_id, payment_id, state, next_attempt_at, created_at)
  select 'whd_' || lpad(to_hex((extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0') || left(replace(gen_random_uuid()::text, '-', ''), 20), event.id, event.seq, event.merchant_id, endpoint.id, event.payment_id,
         case when endpoint.enabled then 'pending' else 'paused' end,
         event.created_at, event.created_at
  from event
  join webhook_endpoints endpoint
    on endpoint.merchant_id = event.merchant_id
   and (endpoint.payment_id is null or endpoint.payment_id = event.payment_id)
   and (endpoint.event_types is null or endpoint.event_types ? event.type)
  returning state
)`;

/**
 * A select-list expression for the statement that holds `deliveryCte`: the
 * number of deliveries it queued to be sent now, waking the dispatchers when
 * there are any. The notification is sent when the transaction commits,
 * never before.
 *
 * @dev Paused deliveries wake no one: none can be claimed until their
 * endpoint is switched on, which wakes the dispatchers itself. (Each event of
 * a merchant with webhooks off used to cost every dispatcher a claim that
 * found nothing: about 2,000 per 10,000 payments the webhook benchmark
 * creates with webhooks off, which took 18-21 s instead of 10.5-13 s.)
 */
export const queuedDeliveries = `(select count(*)::int from (select pg_notify('${webhookChannel}', '') from delivery where state = 'pending') as notified)`;

/**
 * The states of a delivery still to be made: `pending` in the queue, or
 * `paused` while its endpoint is switched off. To the merchant both are
 * pending. (The claim spells them out in its SQL, to match the partial index
 * on a payment's waiting deliveries.)
 */
export const waitingStates = ['pending', 'paused'] as const;

/**
 * Holds a switched-off endpoint's waiting deliveries out of the due index.
 * One under way (leased) is left pending: its attempt settles it, and a
 * retry it schedules waits behind the claims' check that the endpoint is on,
 * as does the delivery of an event that raced the switch-off, until the
 * dispatchers' sweep pauses them (`pauseRacedDeliveries`). The endpoint's
 * `has_paused_deliveries` is set in the same transaction, by the statement
 * that switches it off.
 */
export async function pauseDeliveries(trx: Transaction, endpointId: string, now: Date): Promise<void> {
  await sql`
    update webhook_deliveries set state = 'paused'
    where endpoint_id = ${endpointId} and state = 'pending' and (locked_until is null or locked_until < ${now})
  `.execute(trx);
}

/**
 * Clears `has_paused_deliveries` on switched-on endpoints that have no paused
 * delivery left, so that the claims stop looking at them; returns how many.
 * Leaves `updated_at` alone: the sweep's window is the time of the switch.
 *
 * @dev A delivery paused by an event that raced the switch-on may commit
 * just after this found none; `resumeRacedDeliveries` puts it in the queue.
 * Nothing else pauses a delivery of an endpoint that is on, and switching one
 * off sets the flag in the same row update (which this one waits for, and
 * then skips, the endpoint being off).
 */
export async function clearDrainedPauseFlags(db: Db): Promise<number> {
  const result = await sql`
    update webhook_endpoints e set has_paused_deliveries = false
    where e.has_paused_deliveries and e.enabled
      and not exists (select 1 from webhook_deliveries d where d.endpoint_id = e.id and d.state = 'paused')
  `.execute(db);
  return Number(result.numAffectedRows ?? 0n);
}

/**
 * Resumes paused deliveries of endpoints that are on, were changed since
 * `since` and are no longer flagged `has_paused_deliveries`; returns how
 * many. For the one race that pausing has: an event statement that read its
 * endpoint just before the endpoint was switched on commits a paused delivery
 * after the sweep cleared the endpoint's flag (see `clearDrainedPauseFlags`),
 * where no claim looks for it.
 *
 * @dev Such a statement runs for milliseconds, so the dispatchers sweep the
 * endpoints changed in the last minutes, found by their `updated_at` index.
 * A flagged endpoint's paused backlog is left to the claims, which take it as
 * it is: resuming it here rewrote every row of a backlog being delivered (all
 * 10,000 in the webhook benchmark, when a sweep fell just after the
 * switch-on), and the attempts of the claims under way waited for its row
 * locks (a record of 108 attempts that ran beside such a sweep took 110 ms;
 * the others, 3-10).
 */
export async function resumeRacedDeliveries(db: Db, since: Date): Promise<number> {
  const result = await sql`
    update webhook_deliveries d set state = 'pending'
    from webhook_endpoints e
    where e.enabled and not e.has_paused_deliveries and e.updated_at >= ${since} and d.endpoint_id = e.id and d.state = 'paused'
  `.execute(db);
  return Number(result.numAffectedRows ?? 0n);
}

/**
 * Pauses the pending deliveries of endpoints that are off and were changed
 * since `since`, but for those under way; returns how many. For the rows
 * `pauseDeliveries` leaves pending: a delivery in flight at the switch-off
 * (its attempt schedules its retry as pending) and one queued by an event
 * that raced the switch-off. The claims skip them anyway (they check that
 * the endpoint is on); paused, they are out of the due index too.
 */
export async function pauseRacedDeliveries(db: Db, since: Date, now: Date): Promise<number> {
  const result = await sql`
    update webhook_deliveries d set state = 'paused'
    from webhook_endpoints e
    where not e.enabled and e.updated_at >= ${since} and d.endpoint_id = e.id and d.state = 'pending'
      and (d.locked_until is null or d.locked_until < ${now})
  `.execute(db);
  return Number(result.numAffectedRows ?? 0n);
}

export type ClaimedDelivery = {
  id: string;
  eventId: string;
  merchantId: number;
  endpointId: string;
  attempt: number;
  /** Until when this claim holds the delivery. */
  leaseUntil: Date;
  /** The event as stored, for the request body. */
  event: { id: string; type: string; data: unknown; createdAt: Date };
  /** The endpoint's row as it was at the claim, for its URL and secrets (one object for all of a claim's deliveries to it). */
  endpoint: Selectable<WebhookEndpointTable>;
};

type ClaimedRow = {
  id: string;
  event_id: string;
  event_seq: number;
  merchant_id: number;
  endpoint_id: string;
  attempts: number;
  event_type: string;
  event_data: unknown;
  event_created_at: Date;
} & (EndpointColumns | { [column in keyof EndpointColumns]: null });

/** The claimed endpoint's row, on the first of its deliveries in a claim only. */
type EndpointColumns = {
  endpoint_merchant_id: number;
  endpoint_url: string;
  endpoint_enabled: boolean;
  endpoint_event_types: string[] | null;
  endpoint_secret_sealed: string;
  endpoint_previous_secret_sealed: string | null;
  endpoint_previous_secret_expires_at: Date | null;
  endpoint_created_at: Date;
  endpoint_updated_at: Date;
  endpoint_payment_id: number | null;
  endpoint_format: WebhookEndpointTable['format']['__select__'];
  endpoint_signing_key_sealed: string | null;
  endpoint_context: string | null;
  endpoint_has_paused_deliveries: boolean;
};

/**
 * Claims up to `limit` due deliveries for one attempt each, leasing them until
 * `leaseUntil`, and returns each with its event and endpoint, ready to send.
 * At most `endpointLimit` deliveries per endpoint are in flight: `busy` says
 * how many each endpoint has already. Endpoints at their limit are not looked
 * at, so they cannot crowd others out of the batch; rows over an endpoint's
 * remaining room are left untouched for the next claim.
 *
 * @dev One statement, so one round trip and one commit per batch: the
 * candidates are locked (`FOR UPDATE SKIP LOCKED`), ranked per endpoint, cut
 * to each endpoint's room, leased, and returned joined with what the attempt
 * needs. Candidates cut off are unlocked when the statement ends. A batch
 * mostly goes to few endpoints, so each endpoint's row comes once, on the
 * first of its deliveries: parsing its 14 columns again on every row was
 * about a third of the driver's work for a claim. Its text is the same for
 * every claim (the full endpoints are an array parameter), so it is a
 * prepared statement: planning it each time was about a quarter of
 * PostgreSQL's CPU for a claim (48–61 against 32–46 µs per delivery, claims
 * of 128 from a backlog of 10,000). So the plan it keeps is planned without
 * the parameters' values, and its candidates are written for that (see
 * `dueCandidatesQuery`; its tests check both plans).
 */
export async function claimDueDeliveries(
  db: Db,
  input: { now: Date; limit: number; leaseUntil: Date; endpointLimit: number; busy?: ReadonlyMap<string, number> },
): Promise<ClaimedDelivery[]> {
  const busy = input.busy ?? new Map<string, number>();
  const full = [...busy].filter(([, count]) => count >= input.endpointLimit).map(([endpointId]) => endpointId);
  const result = await sql<ClaimedRow>`${sql.raw(preparedStatementMark('claim_webhook_deliveries'))}
    with candidates as (${dueCandidatesQuery({ now: input.now, limit: input.limit, full })}),
    ranked as (
      select id, endpoint_id, row_number() over (partition by endpoint_id order by next_attempt_at, event_seq) as rank
      from candidates
    ),
    busy as (
      select key as endpoint_id, value::int as used from jsonb_each_text(${JSON.stringify(Object.fromEntries(busy))}::jsonb)
    ),
    accepted as (
      select r.id
      from ranked r
      left join busy b on b.endpoint_id = r.endpoint_id
      where r.rank <= ${input.endpointLimit} - coalesce(b.used, 0)
    ),
    claimed as (
      update webhook_deliveries d
      set locked_until = ${input.leaseUntil}, attempts = d.attempts + 1
      from accepted a, events ev
      where d.id = a.id and ev.id = d.event_id
      returning d.id, d.event_id, d.event_seq, d.merchant_id, d.endpoint_id, d.attempts,
        ev.type as event_type, ev.data as event_data, ev.created_at as event_created_at
    )
    select c.id, c.event_id, c.event_seq, c.merchant_id, c.endpoint_id, c.attempts, c.event_type, c.event_data, c.event_created_at,
      e.merchant_id as endpoint_merchant_id, e.url as endpoint_url, e.enabled as endpoint_enabled, e.event_types as endpoint_event_types,
      e.secret_sealed as endpoint_secret_sealed, e.previous_secret_sealed as endpoint_previous_secret_sealed,
      e.previous_secret_expires_at as endpoint_previous_secret_expires_at, e.created_at as endpoint_created_at, e.updated_at as endpoint_updated_at,
      e.payment_id as endpoint_payment_id, e.format as endpoint_format, e.signing_key_sealed as endpoint_signing_key_sealed, e.context as endpoint_context,
      e.has_paused_deliveries as endpoint_has_paused_deliveries
    from (select claimed.*, row_number() over (partition by endpoint_id) as nth from claimed) c
    left join webhook_endpoints e on c.nth = 1 and e.id = c.endpoint_id
  `.execute(db);
  const endpoints = new Map<string, Selectable<WebhookEndpointTable>>();
  for (const row of result.rows) if (row.endpoint_url !== null) endpoints.set(row.endpoint_id, endpointOfRow(row));
  // Note: the rows have no order; a batch is launched in event order.
  return result.rows
    .sort((a, b) => a.event_seq - b.event_seq)
    .map((row) => ({
      id: row.id,
      eventId: row.event_id,
      merchantId: row.merchant_id,
      endpointId: row.endpoint_id,
      attempt: row.attempts,
      leaseUntil: input.leaseUntil,
      event: { id: row.event_id, type: row.event_type, data: row.event_data, createdAt: row.event_created_at },
      endpoint: endpoints.get(row.endpoint_id)!,
    }));
}

/**
 * The claim's candidates: up to `limit` due deliveries in queue order, locked,
 * skipping those of the `full` endpoints. They come from two places: the
 * pending deliveries, by the due index; and the paused deliveries of
 * endpoints that are on again (those flagged `has_paused_deliveries`), by an
 * index of their own per endpoint. Switching an endpoint on rewrites none of
 * its paused deliveries: a claim leases one as it is (still `paused`, which
 * keeps its payment's later deliveries waiting as `pending` does), and its
 * attempt settles it. Apart so that its plan can be tested.
 *
 * Note: the due rows come in queue order from the due index, which holds that
 * order, and are read only until the batch is full; the checks that the
 * endpoint is on and that no earlier delivery of the same payment is waiting
 * run on them in that order, one index probe each. Each `offset 0` keeps a
 * check where it is, a filter on the scan: the check joined to the queue was
 * planned from statistics that may date from before a backlog built up (a
 * fresh table, or no ANALYZE since), and with an empty queue on record
 * PostgreSQL ran the earlier-delivery check as a scan of every waiting
 * delivery per candidate, 500 ms for a claim of 128 from 10,000 (30-45 ms
 * now); the one on the endpoint, as a hash join, made every claim read and
 * sort every due row (8 of the 10 ms of that claim, with fresh statistics).
 * The scan itself is not fenced off, so that it is planned to stop at the
 * `limit`; and the `full` endpoints are left out by the endpoint check, not by
 * a test of the scanned row's `endpoint_id`. Both for the claim's generic
 * plan (it is a prepared statement: from its sixth run PostgreSQL plans it
 * without the parameters' values). With the scan fenced, that plan was made
 * to return every due row; and `endpoint_id <> all($n)` on the row, for an
 * unknown array and a queue of one endpoint, was estimated to leave no row,
 * so reading them all and sorting them looked cheap. It did that on every
 * claim: 3.3 of a claim's 4.8 ms, with 5,000 deliveries due. The paused
 * deliveries are read the same way, per flagged endpoint; the two heads are
 * then merged, at most twice `limit` rows sorted.
 */
export function dueCandidatesQuery({ now, limit, full }: { now: Date; limit: number; full: readonly string[] }) {
  // Note: what makes a delivery of either state claimable: due, not leased, and first of its payment's waiting ones.
  const claimable = sql`
    d.next_attempt_at <= ${now}
    and (d.locked_until is null or d.locked_until < ${now})
    and not exists (${earlierWaiting} offset 0)
  `;
  return sql`
    select c.id, c.endpoint_id, c.next_attempt_at, c.event_seq
    from (
      select * from (
        select d.id, d.endpoint_id, d.next_attempt_at, d.event_seq
        from webhook_deliveries d
        where d.state = 'pending'
          and ${claimable}
          and exists (select 1 from webhook_endpoints e where e.id = d.endpoint_id and e.enabled and e.id <> all(${full}::text[]) offset 0)
        order by d.next_attempt_at, d.event_seq
        limit ${limit}
        for update of d skip locked
      ) pending
      union all
      select paused.*
      from webhook_endpoints e
      cross join lateral (
        select d.id, d.endpoint_id, d.next_attempt_at, d.event_seq
        from webhook_deliveries d
        where d.endpoint_id = e.id
          and d.state = 'paused'
          and ${claimable}
        order by d.next_attempt_at, d.event_seq
        limit ${limit}
        for update of d skip locked
      ) paused
      where e.has_paused_deliveries and e.enabled and e.id <> all(${full}::text[])
    ) c
    order by c.next_attempt_at, c.event_seq
    limit ${limit}
  `;
}

/** An earlier delivery of candidate `d`'s payment to its endpoint that is still to be made. */
const earlierWaiting = sql`
  select 1 from webhook_deliveries earlier
  where earlier.endpoint_id = d.endpoint_id
    and earlier.payment_id = d.payment_id
    and earlier.state in ('pending', 'paused')
    and earlier.event_seq < d.event_seq
`;

function endpointOfRow(row: ClaimedRow & EndpointColumns): Selectable<WebhookEndpointTable> {
  return {
    id: row.endpoint_id,
    merchant_id: row.endpoint_merchant_id,
    url: row.endpoint_url,
    enabled: row.endpoint_enabled,
    event_types: row.endpoint_event_types,
    secret_sealed: row.endpoint_secret_sealed,
    previous_secret_sealed: row.endpoint_previous_secret_sealed,
    previous_secret_expires_at: row.endpoint_previous_secret_expires_at,
    created_at: row.endpoint_created_at,
    updated_at: row.endpoint_updated_at,
    payment_id: row.endpoint_payment_id === null ? null : Number(row.endpoint_payment_id),
    format: row.endpoint_format,
    signing_key_sealed: row.endpoint_signing_key_sealed,
    context: row.endpoint_context,
    has_paused_deliveries: row.endpoint_has_paused_deliveries,
  };
}

/**
 * Gives claimed deliveries back unsent: their leases end now and their claims
 * no longer count as attempts. A delivery whose lease has already run out (and
 * may be another claim's now) is left alone.
 */
export async function releaseDeliveries(db: Db, deliveries: readonly Pick<ClaimedDelivery, 'id' | 'leaseUntil'>[]): Promise<void> {
  if (deliveries.length === 0) return;
  const rows = deliveries.map((delivery) => ({ id: delivery.id, locked_until: delivery.leaseUntil.toISOString() }));
  await sql`
    update webhook_deliveries d
    set locked_until = null, attempts = d.attempts - 1
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as r(id text, locked_until timestamptz)
    where d.id = r.id and d.state in ('pending', 'paused') and d.locked_until = r.locked_until
  `.execute(db);
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

export type SettledAttempt = { delivery: Pick<ClaimedDelivery, 'id' | 'attempt'>; outcome: AttemptOutcome; retryAt: Date | undefined };

/**
 * Logs attempts and settles their deliveries: each succeeded, retried at its
 * `retryAt`, or failed for good when `retryAt` is undefined. All or none: one
 * statement writes the log rows and the deliveries together.
 *
 * @dev One statement for a whole batch, so a busy dispatcher pays one round
 * trip and one commit for many attempts instead of a transaction each. Its
 * text is the same for any batch (one array per column), so it is a prepared
 * statement: planning it cost PostgreSQL about as much as running it for a
 * batch of 30. The deliveries are found by `= any(ids)`, which the planner
 * takes for a few index probes whatever the batch; joined from the arrays
 * alone, it expected 100 rows and scanned the whole queue table for them.
 * NUL characters, which PostgreSQL text cannot hold, are dropped from what a
 * receiver answered.
 */
export async function recordAttempts(db: Db, attempts: readonly SettledAttempt[], now = new Date()): Promise<void> {
  if (attempts.length === 0) return;
  const column = (pick: (attempt: SettledAttempt) => string | number | null): string => arrayLiteral(attempts.map(pick));
  const ids = column(({ delivery }) => delivery.id);
  const state = ({ outcome, retryAt }: SettledAttempt) => (outcome.succeeded ? 'succeeded' : retryAt === undefined ? 'failed' : 'pending');
  await sql`${sql.raw(preparedStatementMark('record_webhook_attempts'))}
    with settled as (
      select * from unnest(
        ${ids}::text[], ${column(({ delivery }) => delivery.attempt)}::integer[],
        ${column(({ outcome }) => outcome.url)}::text[], ${column(({ outcome }) => outcome.startedAt.toISOString())}::timestamptz[],
        ${column(({ outcome }) => Math.round(outcome.durationMs))}::integer[], ${column(({ outcome }) => outcome.statusCode)}::integer[],
        ${column(({ outcome }) => withoutNul(outcome.responseExcerpt))}::text[], ${column(({ outcome }) => withoutNul(outcome.error))}::text[],
        ${column(state)}::text[],
        ${column(({ outcome, retryAt }) => (outcome.succeeded || retryAt === undefined ? null : retryAt.toISOString()))}::timestamptz[]
      ) as v(delivery_id, attempt, url, started_at, duration_ms, status_code, response_excerpt, error, state, retry_at)
    ),
    logged as (
      insert into webhook_attempts (delivery_id, attempt, url, started_at, duration_ms, status_code, response_excerpt, error)
      select delivery_id, attempt, url, started_at, duration_ms, status_code, response_excerpt, error from settled
    )
    update webhook_deliveries d
    set state = s.state,
      locked_until = null,
      last_status_code = s.status_code,
      last_error = s.error,
      completed_at = case when s.state = 'pending' then d.completed_at else ${now}::timestamptz end,
      next_attempt_at = coalesce(s.retry_at, d.next_attempt_at)
    from settled s
    where d.id = s.delivery_id
      and d.id = any(${ids}::text[])
  `.execute(db);
}

const withoutNul = (text: string | null) => (text === null ? null : text.replaceAll('\u0000', ''));

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
    const endpoint = await trx
      .selectFrom('webhook_endpoints')
      .select(['id', 'enabled'])
      .where('merchant_id', '=', input.merchantId)
      .where('payment_id', 'is', null)
      .executeTakeFirst();
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
            .where('later.state', 'in', [...waitingStates, 'succeeded']),
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
  if (input.state !== undefined) query = query.where('d.state', 'in', input.state === 'pending' ? waitingStates : [input.state]);
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
      state: row.state === 'paused' ? 'pending' : row.state,
      attempts: row.attempts,
      nextAttemptAt: row.state === 'pending' || row.state === 'paused' ? row.next_attempt_at : null,
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
