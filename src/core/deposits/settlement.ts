import { type Selectable, sql } from 'kysely';
import { arrayLiteral } from '../../storage/array-literal.ts';
import { preparedStatementMark, type Transaction } from '../../storage/database.ts';
import type { PaymentTable, Settlement } from '../../storage/schema.ts';
import { appendEvents, type NewEvent } from '../events.ts';
import { type Payment, type PaymentStatus, paymentFromRow, paymentSnapshot } from '../payments/payment.ts';

/**
 * Brings payments in line with the transfers recorded for them: how much is
 * detected and confirmed, whether each is paid, under- or overpaid, and its
 * status. Called in the transaction that changed their transfers, so the
 * payments, their transfers and the events that announce them commit
 * together. A block's payments are settled as one set: a constant number of
 * statements however many payments the block pays.
 *
 * @dev Only confirmed transfers pay: a payment completes once the confirmed
 * amount of its own asset reaches the amount due (`pending`/`approved` →
 * `completed`, as the state machine allows). A reorg that removes a paying
 * transfer after completion moves the payment back to `pending` with
 * `payment.reversed` — the one way out of `completed`, and only on chain
 * evidence. Transfers of another asset are recorded but never count.
 */
export async function settlePayments(trx: Transaction, paymentIds: readonly number[], now: Date): Promise<void> {
  if (paymentIds.length === 0) return;
  const ids = [...new Set(paymentIds)].sort((a, b) => a - b);
  const idList = arrayLiteral(ids);
  // Note: locked in id order, so two transactions settling overlapping sets cannot deadlock. The ids
  // travel as one array parameter (one statement text for any number of them) and are joined from
  // it, so each is an index probe, never a scan of the whole table. Each payment's transfer sums (of
  // its own asset: transfers of another are recorded but never count) come with its locked row.
  const { rows } = await sql<Selectable<PaymentTable> & { settled_paid: string | null; settled_detected: string | null; settled_tx_hashes: string[] | null }>`${sql.raw(
    preparedStatementMark('lock_settled_payments'),
  )}
    select p.*, sums.paid as settled_paid, sums.detected as settled_detected, sums.tx_hashes as settled_tx_hashes
    from unnest(${idList}::bigint[]) as settled(id)
    join payments p on p.id = settled.id
    left join (
      select t.payment_id, t.asset, sum(t.amount) filter (where t.state = 'confirmed') as paid, sum(t.amount) as detected,
        array_agg(t.tx_hash order by t.block_number, t.log_index) as tx_hashes
      from unnest(${idList}::bigint[]) as summed(id)
      join chain_transfers t on t.payment_id = summed.id
      where t.state <> 'removed'
      group by t.payment_id, t.asset
    ) as sums on sums.payment_id = p.id and sums.asset = p.crypto_currency
    order by p.id
    for update of p
  `.execute(trx);

  const decisions: Decision[] = [];
  for (const row of rows) {
    const totals = { paid: BigInt(row.settled_paid ?? '0'), detected: BigInt(row.settled_detected ?? '0'), txHashes: row.settled_tx_hashes ?? [] };
    const decision = decide(paymentFromRow(row), totals, now);
    if (decision) decisions.push(decision);
  }
  if (decisions.length === 0) return;

  // Note: the expiry is written only when the decision moves it; left alone, an update that changes
  // no indexed column can stay on the payment's page (migration 0012).
  const update = sql`${sql.raw(preparedStatementMark('settle_payments'))}
    update payments p
    set amount_paid = v.paid, amount_detected = v.detected, settlement = v.settlement, status = v.status,
      expires_at = coalesce(v.moved_expires_at, p.expires_at), updated_at = ${now}
    from unnest(
      ${arrayLiteral(decisions.map((d) => d.payment.id))}::bigint[],
      ${arrayLiteral(decisions.map((d) => d.paid))}::numeric[],
      ${arrayLiteral(decisions.map((d) => d.detected))}::numeric[],
      ${arrayLiteral(decisions.map((d) => d.settlement))}::text[],
      ${arrayLiteral(decisions.map((d) => d.status))}::text[],
      ${arrayLiteral(decisions.map((d) => d.movedExpiresAt?.toISOString() ?? null))}::timestamptz[]
    ) as v(id, paid, detected, settlement, status, moved_expires_at)
    where p.id = v.id
  `.execute(trx);
  // Note: the events are built while PostgreSQL runs the update (its statement is sent first, on the
  // transaction's one connection, so they go in after it). Its failure is the one reported: it comes
  // first, and the events' statements fail with it.
  update.catch(() => {});
  await new Promise((resolve) => setImmediate(resolve));
  const events: NewEvent[] = [];
  for (const decision of decisions) {
    if (decision.events.length === 0) continue;
    // Note: the payment is locked, so its row is now the locked one with the update's columns: the snapshot is built from those, not read back.
    const snapshot = paymentSnapshot(settled(decision, now));
    for (const { type, extra } of decision.events) {
      events.push({ merchantId: decision.payment.merchantId, paymentId: decision.payment.id, type, data: { payment: snapshot, tx_hashes: decision.txHashes, ...extra }, at: now });
    }
  }
  await Promise.all([update, appendEvents(trx, events)]);
}

type Decision = {
  /** The payment as locked, before the decision. */
  payment: Payment;
  paid: bigint;
  detected: bigint;
  settlement: Settlement;
  status: PaymentStatus;
  /** The new expiry, when the decision moves it (a reversal's fresh window); else the payment keeps its own. */
  movedExpiresAt: Date | undefined;
  /** The transactions of the transfers that count for the payment, oldest first. */
  txHashes: string[];
  events: Array<{ type: string; extra: Record<string, unknown> }>;
};

/** The payment as the settling update leaves it. */
function settled(decision: Decision, now: Date): Payment {
  const { payment } = decision;
  return {
    ...payment,
    status: decision.status,
    amountPaid: decision.paid,
    amountDetected: decision.detected,
    settlement: decision.settlement,
    deposit: payment.deposit && { ...payment.deposit, expiresAt: decision.movedExpiresAt ?? payment.deposit.expiresAt },
    updatedAt: now,
  };
}

/** What a payment becomes given its confirmed (`paid`) and seen (`detected`) amounts; undefined when nothing changes. */
function decide(payment: Payment, totals: { paid: bigint; detected: bigint; txHashes: string[] }, now: Date): Decision | undefined {
  if (!payment.crypto || !payment.deposit) return undefined;
  const { paid, detected } = totals;
  const due = payment.crypto.amount;
  const open = payment.status === 'pending' || payment.status === 'approved';

  let settlement: Settlement;
  if (payment.settlement === 'expired') settlement = 'expired';
  else if (paid >= due) settlement = paid > due ? 'overpaid' : 'paid';
  else if (detected > paid) settlement = 'detected';
  else if (paid > 0n) settlement = 'underpaid';
  else settlement = 'awaiting_payment';
  if (paid === payment.amountPaid && detected === payment.amountDetected && settlement === payment.settlement) return undefined;

  const decision: Decision = {
    payment,
    paid,
    detected,
    settlement,
    status: payment.status,
    movedExpiresAt: undefined,
    txHashes: totals.txHashes,
    events: [],
  };
  // Note: only a payment the chain itself had paid can be reversed by the chain;
  // one an operator completed by hand stays completed.
  if (payment.status === 'completed' && payment.amountPaid >= due && paid < due) {
    // Note: the customer paid in time; the payment gets a fresh window for the
    // transfer to be mined again instead of expiring at once.
    const window = payment.deposit.expiresAt ? payment.deposit.expiresAt.getTime() - payment.createdAt.getTime() : 0;
    if (payment.deposit.expiresAt) decision.movedExpiresAt = new Date(Math.max(payment.deposit.expiresAt.getTime(), now.getTime() + window));
    decision.status = 'pending';
    // Note: the status change is announced as every one is (payment.<status>), and the reorg by name.
    const reason = 'a paying transfer was removed by a chain reorganization';
    decision.events.push({ type: 'payment.pending', extra: { reason } }, { type: 'payment.reversed', extra: { reason } });
  } else if (!open) {
    // Note: a closed payment (completed included) stays closed: more funds are a late transfer, not a new detection.
    if (detected > payment.amountDetected) decision.events.push({ type: 'payment.late_transfer', extra: { reason: `funds arrived after the payment was ${payment.status}` } });
  } else if (paid >= due) {
    decision.status = 'completed';
    decision.events.push({ type: 'payment.completed', extra: { reason: settlement === 'overpaid' ? 'overpaid' : 'paid' } });
  } else if (detected > payment.amountDetected) {
    decision.events.push({ type: 'payment.detected', extra: {} });
  } else if (detected < payment.amountDetected) {
    decision.events.push({ type: 'payment.reversed', extra: { reason: 'a detected transfer was removed by a chain reorganization' } });
  } else if (settlement === 'underpaid' && payment.settlement !== 'underpaid') {
    decision.events.push({ type: 'payment.underpaid', extra: {} });
  }
  return decision;
}
