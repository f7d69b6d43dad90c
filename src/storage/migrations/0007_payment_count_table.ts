import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    -- Every list of payments returns how many match, and counting a large
    -- merchant's payments in an index took most of a list request. The counts
    -- per merchant and status are kept instead: each write appends its net
    -- change to payment_count_changes, never updating a shared row, so
    -- concurrent writers neither wait on one another nor deadlock; a worker
    -- folds the changes into payment_counts. A count is the folded figure
    -- plus the changes not folded yet, exact at any time.
    --
    -- Updates and deletes are followed by statement triggers. A new payment
    -- is counted by the statement that inserts it (insertPayment): an insert
    -- trigger cost a quarter of the create statement's throughput.
    create table payment_counts (
      merchant_id bigint not null,
      status text not null,
      count bigint not null,
      primary key (merchant_id, status)
    );
    create table payment_count_changes (
      merchant_id bigint not null,
      status text not null,
      change bigint not null
    );

    create function payment_counts_after_update() returns trigger language plpgsql as $$
    begin
      insert into payment_count_changes (merchant_id, status, change)
      select merchant_id, status, sum(change) from (
        select merchant_id, status, -1 as change from before_update
        union all
        select merchant_id, status, 1 from after_update
      ) as changes
      group by merchant_id, status
      having sum(change) <> 0;
      return null;
    end $$;

    create function payment_counts_after_delete() returns trigger language plpgsql as $$
    begin
      insert into payment_count_changes (merchant_id, status, change)
      select merchant_id, status, -count(*) from deleted group by merchant_id, status;
      return null;
    end $$;

    create trigger payment_counts_after_update after update on payments
      referencing old table as before_update new table as after_update for each statement execute function payment_counts_after_update();
    create trigger payment_counts_after_delete after delete on payments
      referencing old table as deleted for each statement execute function payment_counts_after_delete();

    -- Note: creating the triggers locked the table against writes until this
    -- migration commits, so the counts start exact.
    insert into payment_counts (merchant_id, status, count)
    select merchant_id, status, count(*) from payments group by merchant_id, status;

    -- The index was there for counting; pages and filters use the others.
    drop index payments_merchant_status;
  `.execute(db);
}
