import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- The due deliveries in claim order (next_attempt_at, then event_seq), so
    -- a claim reads the head of the queue and stops once its batch is full
    -- (see claimDueDeliveries). On (next_attempt_at) alone, every claim read
    -- and sorted every due delivery: 8 of the 10 ms of a claim of 128 from a
    -- backlog of 10,000.
    drop index webhook_deliveries_due;
    create index webhook_deliveries_due on webhook_deliveries (next_attempt_at, event_seq) where state = 'pending';
  `.execute(db);
}
