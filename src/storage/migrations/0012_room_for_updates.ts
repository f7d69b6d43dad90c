import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- Free room in each new page of the two tables whose rows are updated soon
    -- after they are written, so that an update changing no indexed column
    -- stays on its row's page (a HOT update) and writes no index entry. With
    -- full pages, every such update put the new row on another page and an
    -- entry into each of the table's indexes.
    --
    -- A delivery's lease (locked_until, attempts) changes nothing indexed, nor
    -- does a payment's detection (amounts, settlement). A claim leases the
    -- deliveries queued together, which share pages, and a block mostly pays
    -- payments made about the same time, which do too: one statement then
    -- updates most rows of a page, and only half-full pages hold a second
    -- version of each (at 70 %, fewer than half of a claim's leases and of a
    -- block's detections stayed on their pages; at 50 %, all of them).
    -- The price is heap pages twice as many for the same rows; the indexes
    -- are as before. Only pages written from now on leave the room.
    alter table webhook_deliveries set (fillfactor = 50);
    alter table payments set (fillfactor = 50);
  `.execute(db);
}
