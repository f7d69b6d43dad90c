import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- The next BIP-32 index per chain: taken with UPDATE … RETURNING inside the
    -- payment's transaction, so no index is handed out twice, across restarts
    -- and processes alike.
    create table address_counters (
      chain text primary key,
      next_index bigint not null
    );

    create table deposit_addresses (
      chain text not null,
      address text not null,
      derivation_index bigint not null,
      merchant_id bigint not null references merchants(id),
      payment_id bigint references payments(id),
      created_at timestamptz not null default now(),
      primary key (chain, address),
      unique (chain, derivation_index)
    );
    create index deposit_addresses_payment on deposit_addresses (payment_id);

    -- The last block a chain's watcher processed, and the unfinalized blocks
    -- it keeps to detect a reorg by parent hash.
    create table chain_cursors (
      chain text primary key,
      block_number bigint not null,
      block_hash text not null,
      updated_at timestamptz not null default now()
    );
    create table chain_blocks (
      chain text not null,
      number bigint not null,
      hash text not null,
      parent_hash text not null,
      primary key (chain, number)
    );

    -- Every transfer to a watched address, credited once: the unique key is
    -- the transfer's place on the chain, whatever block it was seen in.
    create table chain_transfers (
      id bigserial primary key,
      chain text not null,
      tx_hash text not null,
      log_index integer not null,
      block_number bigint not null,
      block_hash text not null,
      from_address text,
      to_address text not null,
      asset text not null,
      amount numeric(78,0) not null check (amount > 0),
      payment_id bigint references payments(id),
      state text not null check (state in ('detected', 'confirmed', 'removed')),
      confirmations integer not null default 0,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      unique (chain, tx_hash, log_index)
    );
    create index chain_transfers_payment on chain_transfers (payment_id);
    create index chain_transfers_unconfirmed on chain_transfers (chain, block_number) where state = 'detected';

    alter table payments
      add column chain text,
      add column address text,
      add column expires_at timestamptz,
      add column required_confirmations integer,
      add column amount_paid numeric(78,0) not null default 0,
      add column amount_detected numeric(78,0) not null default 0,
      add column settlement text not null default 'none'
        check (settlement in ('none', 'awaiting_payment', 'detected', 'underpaid', 'paid', 'overpaid', 'expired'));
    create index payments_expiry on payments (expires_at) where status = 'pending' and expires_at is not null;
  `.execute(db);
}
