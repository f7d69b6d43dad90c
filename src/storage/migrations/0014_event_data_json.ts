import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- An event's data is written once and read back whole (the events API, a
    -- webhook's body), never searched inside. As jsonb, every event paid for a
    -- parse into PostgreSQL's binary form on the way in and a print on every
    -- read; as json it is checked and kept as its text. Settling a block that
    -- pays 5,000 payments writes 5,000 events of about 830 bytes: their insert
    -- went from about 135 to 105 ms (docs/benchmarks.md, 2026-12-07). The keys
    -- now come back in the order they were written, not jsonb's (but for a
    -- new payment's payment.created, whose id PostgreSQL sets with jsonb_set).
    alter table events alter column data type json using data::json;
  `.execute(db);
}
