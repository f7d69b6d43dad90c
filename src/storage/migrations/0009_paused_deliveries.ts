import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- The deliveries of a switched-off endpoint wait as 'paused', outside the
    -- due index, instead of as 'pending' inside it: every claim used to read
    -- past each of them (2,419 empty claims over a backlog of up to 10,000
    -- while the webhook benchmark queued it), and claims run on every event.
    alter table webhook_deliveries drop constraint webhook_deliveries_state_check;
    alter table webhook_deliveries add constraint webhook_deliveries_state_check check (state in ('pending', 'paused', 'succeeded', 'failed'));

    -- A payment's later delivery waits while an earlier one is pending or paused.
    drop index webhook_deliveries_payment_order;
    create index webhook_deliveries_payment_order on webhook_deliveries (endpoint_id, payment_id, event_seq) where state in ('pending', 'paused');
    -- Switching an endpoint on resumes its paused deliveries.
    create index webhook_deliveries_paused on webhook_deliveries (endpoint_id) where state = 'paused';
    -- The sweep that resumes what was paused by an event that raced a switch-on looks at recently changed endpoints only.
    create index webhook_endpoints_updated on webhook_endpoints (updated_at);

    update webhook_deliveries d set state = 'paused'
    from webhook_endpoints e
    where e.id = d.endpoint_id and not e.enabled and d.state = 'pending' and (d.locked_until is null or d.locked_until < now());
  `.execute(db);
}
