import { sql } from 'kysely';
import type { Db } from '../../storage/database.ts';
import type { PaymentStatus } from './payment.ts';

/**
 * How many payments a merchant has, in all or in one status, without counting
 * them: every write to `payments` appends its net change to
 * `payment_count_changes` — statement triggers for updates and deletes
 * (migration 0007), the inserting statement itself for a new payment (see
 * `insertPayment`) — and `foldPaymentCountChanges`
 * moves those into `payment_counts`. The sum of both is exact at any time,
 * folded or not, and a count reads a handful of rows however many payments
 * there are.
 */
export async function countPayments(db: Db, input: { merchantId: number; status?: PaymentStatus | undefined }): Promise<number> {
  const status = input.status === undefined ? sql`` : sql`and status = ${input.status}`;
  const { rows } = await sql<{ total: number }>`
    select coalesce(sum(n), 0)::int8 as total from (
      select count as n from payment_counts where merchant_id = ${input.merchantId} ${status}
      union all
      select change from payment_count_changes where merchant_id = ${input.merchantId} ${status}
    ) as counted
  `.execute(db);
  return Number(rows[0]!.total);
}

/**
 * Folds the changes appended since the last fold into `payment_counts`.
 * Returns how many change rows it folded.
 *
 * @dev One statement: the changes it deletes are exactly those it adds, and a
 * change committed meanwhile waits for the next fold. Folds in several
 * processes at once each take distinct rows (a row deleted by one is skipped
 * by the other), and upsert the counts in the same order, so they cannot
 * deadlock.
 */
export async function foldPaymentCountChanges(db: Db): Promise<number> {
  const { rows } = await sql<{ folded: number }>`
    with folded as (
      delete from payment_count_changes returning merchant_id, status, change
    ),
    summed as (
      insert into payment_counts (merchant_id, status, count)
      select merchant_id, status, sum(change) from folded group by merchant_id, status order by merchant_id, status
      on conflict (merchant_id, status) do update set count = payment_counts.count + excluded.count
    )
    select count(*)::int8 as folded from folded
  `.execute(db);
  return Number(rows[0]!.folded);
}
