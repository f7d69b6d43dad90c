import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- Every list of payments returns the total that match, so a merchant's
    -- payments are counted on every page. B-tree deduplication keeps this
    -- index about a tenth the size of payments_merchant_created, and the count
    -- is an index-only scan of it (with or without a status filter) instead
    -- of a scan of the table or of a wider index.
    create index payments_merchant_status on payments (merchant_id, status);
  `.execute(db);
}
