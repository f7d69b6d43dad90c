import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table webhook_endpoints (
      id text primary key,
      merchant_id bigint not null references merchants(id),
      url text not null,
      enabled boolean not null,
      event_types jsonb,
      secret_sealed text not null,
      previous_secret_sealed text,
      previous_secret_expires_at timestamptz,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    );
    -- One "Webhook Settings" endpoint per merchant, as the PayCrypt v1 docs describe.
    create unique index webhook_endpoints_merchant on webhook_endpoints (merchant_id);

    create table webhook_deliveries (
      id text primary key,
      event_id text not null references events(id),
      event_seq bigint not null,
      merchant_id bigint not null references merchants(id),
      endpoint_id text references webhook_endpoints(id) on delete set null,
      payment_id bigint,
      state text not null check (state in ('pending', 'succeeded', 'failed')),
      attempts integer not null default 0,
      next_attempt_at timestamptz not null,
      locked_until timestamptz,
      last_status_code integer,
      last_error text,
      created_at timestamptz not null default now(),
      completed_at timestamptz
    );
    create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where state = 'pending';
    create index webhook_deliveries_payment_order on webhook_deliveries (endpoint_id, payment_id, event_seq) where state = 'pending';
    create index webhook_deliveries_event on webhook_deliveries (event_id);
    create index webhook_deliveries_merchant on webhook_deliveries (merchant_id, created_at desc);

    create table webhook_attempts (
      id bigserial primary key,
      delivery_id text not null references webhook_deliveries(id),
      attempt integer not null,
      url text not null,
      started_at timestamptz not null,
      duration_ms integer not null,
      status_code integer,
      response_excerpt text,
      error text
    );
    create index webhook_attempts_delivery on webhook_attempts (delivery_id, attempt);
  `.execute(db);
}
