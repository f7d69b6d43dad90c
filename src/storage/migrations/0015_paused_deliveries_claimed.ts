import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- Switching an endpoint back on no longer rewrites its paused deliveries
    -- as pending, in the switch's own transaction: with a backlog of 10,000
    -- that took 190-380 ms inside the API call, and grew with the backlog.
    -- The dispatchers' claims take the paused deliveries of switched-on
    -- endpoints directly, in queue order, from an index of their own; the
    -- endpoints that may have any are flagged (set when an endpoint is
    -- switched off, cleared by the dispatchers' sweep once it is on and has
    -- none left), so a claim looks only at those, and by an index of the
    -- ones that are on: merchants who keep webhooks off keep their flags.
    alter table webhook_endpoints add column has_paused_deliveries boolean not null default false;
    update webhook_endpoints e set has_paused_deliveries = true
    where not e.enabled or exists (select 1 from webhook_deliveries d where d.endpoint_id = e.id and d.state = 'paused');
    create index webhook_endpoints_with_paused on webhook_endpoints (id) where has_paused_deliveries and enabled;

    drop index webhook_deliveries_paused;
    create index webhook_deliveries_paused on webhook_deliveries (endpoint_id, next_attempt_at, event_seq) where state = 'paused';
  `.execute(db);
}
