import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    create table merchants (
      id bigserial primary key,
      name text not null check (length(name) between 1 and 200),
      created_at timestamptz not null default now()
    );

    create table api_keys (
      id text primary key,
      merchant_id bigint not null references merchants(id),
      prefix text not null,
      key_hash text not null unique,
      secret_sealed text not null,
      created_at timestamptz not null default now(),
      last_used_at timestamptz,
      revoked_at timestamptz
    );
    create index api_keys_merchant on api_keys (merchant_id, created_at);

    create table payments (
      id bigserial primary key,
      transaction_id text not null unique,
      merchant_id bigint not null references merchants(id),
      type text not null check (type in ('deposit', 'withdraw')),
      method text not null check (method in ('crypto', 'bank')),
      status text not null check (status in ('pending', 'approved', 'completed', 'failed', 'rejected', 'cancelled')),
      amount numeric(78,0) not null check (amount > 0),
      currency text not null,
      currency_decimals smallint not null,
      crypto_amount numeric(78,0) check (crypto_amount > 0),
      crypto_currency text,
      crypto_network text,
      crypto_decimals smallint,
      quote_crypto_usd numeric,
      quote_fiat_usd numeric,
      quote_fee_bps integer,
      quote_source text,
      quoted_at timestamptz,
      client_reference text,
      description text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      check ((method = 'crypto') = (crypto_currency is not null)),
      check ((crypto_amount is null) = (crypto_currency is null))
    );
    create index payments_merchant_created on payments (merchant_id, created_at desc, id desc);
    create index payments_merchant_status_created on payments (merchant_id, status, created_at desc, id desc);

    create table events (
      seq bigserial primary key,
      id text not null unique,
      merchant_id bigint not null references merchants(id),
      payment_id bigint references payments(id),
      type text not null,
      data jsonb not null,
      created_at timestamptz not null default now()
    );
    create index events_merchant_seq on events (merchant_id, seq);
    create index events_payment on events (payment_id, seq);

    create table idempotency_keys (
      merchant_id bigint not null references merchants(id),
      key text not null,
      request_hash text not null,
      response_status integer,
      response_body text,
      created_at timestamptz not null default now(),
      primary key (merchant_id, key)
    );
    create index idempotency_keys_created on idempotency_keys (created_at);
  `.execute(db);
}
