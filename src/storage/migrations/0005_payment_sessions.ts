import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- A payment session (seed 001) is a payment plus what the hosted checkout
    -- and the merchant's integration need: order id, customer, metadata and
    -- the redirect URLs. The payment carries the amounts, status and chain.
    create table payment_sessions (
      id text primary key,
      merchant_id bigint not null references merchants(id),
      payment_id bigint not null unique references payments(id),
      api_key_id text not null references api_keys(id),
      order_id text not null,
      customer_email text,
      metadata text not null,
      success_url text,
      cancel_url text,
      webhook_url text,
      created_at timestamptz not null default now()
    );
    -- A session's payment is a crypto payment whose asset the customer has
    -- not chosen yet: a crypto payment may now be without its crypto side
    -- for a while; a bank payment still never has one.
    alter table payments drop constraint payments_check;
    alter table payments add constraint payments_crypto_side check (method = 'crypto' or crypto_currency is null);
    create index payment_sessions_merchant on payment_sessions (merchant_id, created_at desc, id desc);
    create index payment_sessions_order on payment_sessions (merchant_id, order_id, created_at desc, id desc);

    -- Signatures of signed requests seen within the timestamp window, so a
    -- captured request cannot be replayed; forgotten once the window is over.
    create table request_signatures (
      signature text primary key,
      expires_at timestamptz not null
    );
    create index request_signatures_expiry on request_signatures (expires_at);

    -- An endpoint may belong to one payment (a session's webhook_url): it then
    -- takes only that payment's events, in its own format, signed with the
    -- API key the session was created with. The merchant's one settings
    -- endpoint is the one without a payment.
    alter table webhook_endpoints
      add column payment_id bigint references payments(id),
      add column format text not null default 'paycrypt_v1' check (format in ('paycrypt_v1', 'payment_session')),
      add column signing_key_sealed text,
      add column context text;
    drop index webhook_endpoints_merchant;
    create unique index webhook_endpoints_merchant on webhook_endpoints (merchant_id) where payment_id is null;
    create index webhook_endpoints_payment on webhook_endpoints (payment_id) where payment_id is not null;
  `.execute(db);
}
