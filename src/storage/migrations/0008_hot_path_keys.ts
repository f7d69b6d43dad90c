import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- The rows written on the hot paths (a payment created, a block's
    -- transfers and their events, a webhook's deliveries and attempts) no
    -- longer carry foreign keys. Each key cost a check per row (an index probe
    -- and a row lock on the parent), and every payment, event and delivery of
    -- a merchant key-share-locked the one merchants row, which concurrent
    -- creates turned into a multixact each. Each parent id written here comes
    -- from the same statement or transaction (the authenticated key's
    -- merchant, the payment just inserted or locked, the event just inserted,
    -- the delivery just claimed), and no code deletes merchants, payments,
    -- events, deliveries or transfers. The keys that carry behaviour stay
    -- (webhook_deliveries.endpoint_id is set to null when its endpoint goes),
    -- as do those of the rarely written tables.
    alter table payments drop constraint payments_merchant_id_fkey;
    alter table events drop constraint events_merchant_id_fkey;
    alter table events drop constraint events_payment_id_fkey;
    alter table chain_transfers drop constraint chain_transfers_payment_id_fkey;
    alter table webhook_deliveries drop constraint webhook_deliveries_event_id_fkey;
    alter table webhook_deliveries drop constraint webhook_deliveries_merchant_id_fkey;
    alter table webhook_attempts drop constraint webhook_attempts_delivery_id_fkey;

    -- Events are found by id and listed by (merchant_id, seq) or
    -- (payment_id, seq); nothing looks one up by seq alone, which the
    -- sequence keeps unique. One index less to write per event.
    alter table events drop constraint events_pkey, drop constraint events_id_key, add primary key (id);
  `.execute(db);
}
