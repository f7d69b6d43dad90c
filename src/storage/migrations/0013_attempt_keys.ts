import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- An attempt is keyed by its delivery and its number: a claim numbers its
    -- attempt (attempts + 1) and one record logs it, so the pair is unique.
    -- The bigserial id beside it was read by nothing, and cost every attempt
    -- a sequence step and an entry in a second index. A pair logged twice
    -- (a record repeated after a commit whose answer was lost) keeps its first row.
    delete from webhook_attempts a using webhook_attempts b
    where a.delivery_id = b.delivery_id and a.attempt = b.attempt and a.id > b.id;
    alter table webhook_attempts drop column id;
    alter table webhook_attempts add primary key (delivery_id, attempt);
    drop index webhook_attempts_delivery;
  `.execute(db);
}
