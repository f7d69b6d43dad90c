import { sql } from 'kysely';
import { arrayLiteral } from '../../storage/array-literal.ts';
import { type Db, preparedStatementMark, type Transaction } from '../../storage/database.ts';
import { settlePayments } from './settlement.ts';

/**
 * What a chain watcher writes: the blocks it has processed (the unfinalized
 * ones kept for reorg detection), the transfers it found, and the payments
 * those transfers settle. Every block is one transaction: its transfers, the
 * cursor and the payments' new state commit together, so a restart resumes
 * from the last whole block and never credits a transfer twice.
 */

export type BlockRef = { number: number; hash: string; parentHash: string };

/**
 * A transfer found in a block, to any address: `recordBlocks` keeps those to
 * addresses watched on the chain and drops the others.
 */
export type ObservedTransfer = {
  txHash: string;
  /** -1 for a native transfer, else the log's index in the block. */
  logIndex: number;
  from: string | null;
  /** Lower-case, as deposit addresses are stored. */
  to: string;
  asset: string;
  amount: bigint;
};

export async function loadCursor(db: Db, chain: string): Promise<{ number: number; hash: string } | undefined> {
  const row = await db.selectFrom('chain_cursors').select(['block_number', 'block_hash']).where('chain', '=', chain).executeTakeFirst();
  return row && { number: row.block_number, hash: row.block_hash };
}

/** Starts a chain's history at `block`: the first block processed will be its child. */
export async function initCursor(db: Db, chain: string, block: BlockRef): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('chain_blocks').values({ chain, number: block.number, hash: block.hash, parent_hash: block.parentHash }).onConflict((c) => c.doNothing()).execute();
    await trx.insertInto('chain_cursors').values({ chain, block_number: block.number, block_hash: block.hash }).onConflict((c) => c.doNothing()).execute();
  });
}

/** When the first deposit address on `chain` was handed out; undefined when none was. */
export async function firstDepositAddressAt(db: Db, chain: string): Promise<Date | undefined> {
  const row = await db.selectFrom('deposit_addresses').select((eb) => eb.fn.min('created_at').as('first')).where('chain', '=', chain).executeTakeFirst();
  return row?.first ? new Date(row.first as Date | string) : undefined;
}

export async function storedBlockHash(db: Db, chain: string, number: number): Promise<string | undefined> {
  const row = await db.selectFrom('chain_blocks').select('hash').where('chain', '=', chain).where('number', '=', number).executeTakeFirst();
  return row?.hash;
}

/**
 * The payments watching each of `addresses` on `chain` (lower-case addresses).
 *
 * @dev One probe of the addresses' hash index per address, joined from the
 * array: with `address = any(…)` and thousands of addresses, PostgreSQL
 * estimates a (parallel) scan of the whole table as cheaper, which it is not
 * with a million rows. The hash index is on the address alone (an EVM seed
 * gives the same address on every chain); the chain is checked on the row.
 */
export async function watchedAddresses(db: Db, chain: string, addresses: readonly string[]): Promise<Map<string, number | null>> {
  if (addresses.length === 0) return new Map();
  const { rows } = await sql<{ address: string; payment_id: number | null }>`${sql.raw(preparedStatementMark('watched_addresses'))}${watchedAddressesQuery(chain, addresses)}`.execute(db);
  return new Map(rows.map((row) => [row.address, row.payment_id]));
}

/** The lookup's statement, apart so that its plan can be tested. */
export function watchedAddressesQuery(chain: string, addresses: readonly string[]) {
  return sql`select d.address, d.payment_id
    from unnest(${arrayLiteral(addresses)}::text[]) as candidate(address)
    join deposit_addresses d on d.chain = ${chain} and d.address = candidate.address`;
}

/** A processed block and the transfers found in it. */
export type ObservedBlock = BlockRef & { transfers: ObservedTransfer[] };

/**
 * Records a run of processed blocks (each the child of the one before) and
 * their transfers to watched addresses, moves the cursor to the last of
 * them, and settles the payments the transfers touch, in one transaction;
 * returns those payments' ids. A transfer seen before (the same tx hash and
 * log index) is updated, not added: if a reorg had removed it and it is now
 * mined again, it simply comes back.
 *
 * @dev A run lets a watcher that is catching up commit many blocks at once:
 * the cursor moves once, and the blocks go in one statement. The transfers
 * are matched to the watched addresses by the statement that inserts them
 * (see `recordTransfersQuery`), not by a lookup before it: a busy block's
 * thousands of rows then cross between Node and PostgreSQL once.
 */
export async function recordBlocks(db: Db, input: { chain: string; blocks: readonly ObservedBlock[]; reorgWindow: number; now?: Date }): Promise<number[]> {
  const { chain, blocks } = input;
  const first = blocks[0];
  const last = blocks.at(-1);
  if (!first || !last) return [];
  for (let index = 1; index < blocks.length; index++) {
    const block = blocks[index]!;
    const parent = blocks[index - 1]!;
    if (block.number !== parent.number + 1 || block.parentHash !== parent.hash) throw new Error(`chain ${chain}: block ${block.number} does not follow block ${parent.number} in the run`);
  }
  const transfers = blocks.flatMap((block) => block.transfers.map((transfer) => ({ block, transfer })));
  const now = input.now ?? new Date();
  return db.transaction().execute(async (trx) => {
    // Note: the cursor only moves from the run's parent; a concurrent writer (a
    // second leader after a lost lock) finds it moved and rolls back.
    const moved = await trx
      .updateTable('chain_cursors')
      .set({ block_number: last.number, block_hash: last.hash, updated_at: now })
      .where('chain', '=', chain)
      .where('block_number', '=', first.number - 1)
      .where('block_hash', '=', first.parentHash)
      .executeTakeFirst();
    if (Number(moved.numUpdatedRows) !== 1) throw new Error(`chain ${chain}: cursor is no longer at block ${first.number - 1}; another process may be watching`);
    await sql`${sql.raw(preparedStatementMark('record_chain_blocks'))}
      insert into chain_blocks (chain, number, hash, parent_hash)
      select ${chain}, b.number, b.hash, b.parent_hash
      from unnest(${arrayLiteral(blocks.map((block) => block.number))}::bigint[], ${arrayLiteral(blocks.map((block) => block.hash))}::text[], ${arrayLiteral(blocks.map((block) => block.parentHash))}::text[]) as b(number, hash, parent_hash)
      on conflict (chain, number) do update set hash = excluded.hash, parent_hash = excluded.parent_hash
    `.execute(trx);
    await trx.deleteFrom('chain_blocks').where('chain', '=', chain).where('number', '<', last.number - input.reorgWindow).execute();

    const affected = new Set<number>();
    if (transfers.length > 0) {
      const { rows } = await sql<{ payment_id: number | null }>`${sql.raw(preparedStatementMark('record_chain_transfers'))}${recordTransfersQuery(chain, transfers, now)}`.execute(trx);
      for (const row of rows) if (row.payment_id !== null) affected.add(Number(row.payment_id));
    }
    await settlePayments(trx, [...affected], now);
    return [...affected];
  });
}

/**
 * The insert of a run's transfers to the addresses watched on `chain`, each
 * with the payment its address was made for; returns those payments' ids
 * (null for a watched address no payment holds). Apart so that its plan can
 * be tested.
 *
 * @dev The rows travel as one array per column, so one statement of constant
 * text carries a run's transfers however many there are (no 65,535-parameter
 * limit). They are joined to the addresses as `watchedAddressesQuery` does:
 * one probe of the addresses' hash index per transfer; a transfer to an
 * address nobody watches matches nothing and is not written.
 */
export function recordTransfersQuery(chain: string, transfers: ReadonlyArray<{ block: BlockRef; transfer: ObservedTransfer }>, now: Date) {
  return sql`insert into chain_transfers (chain, tx_hash, log_index, block_number, block_hash, from_address, to_address, asset, amount, payment_id, state, confirmations, created_at, updated_at)
    select ${chain}, t.tx_hash, t.log_index, t.block_number, t.block_hash, t.from_address, t.to_address, t.asset, t.amount, d.payment_id, 'detected', 1, ${now}, ${now}
    from unnest(
      ${arrayLiteral(transfers.map(({ transfer }) => transfer.txHash))}::text[],
      ${arrayLiteral(transfers.map(({ transfer }) => transfer.logIndex))}::integer[],
      ${arrayLiteral(transfers.map(({ block }) => block.number))}::bigint[],
      ${arrayLiteral(transfers.map(({ block }) => block.hash))}::text[],
      ${arrayLiteral(transfers.map(({ transfer }) => transfer.from))}::text[],
      ${arrayLiteral(transfers.map(({ transfer }) => transfer.to))}::text[],
      ${arrayLiteral(transfers.map(({ transfer }) => transfer.asset))}::text[],
      ${arrayLiteral(transfers.map(({ transfer }) => transfer.amount))}::numeric[]
    ) as t(tx_hash, log_index, block_number, block_hash, from_address, to_address, asset, amount)
    join deposit_addresses d on d.chain = ${chain} and d.address = t.to_address
    on conflict (chain, tx_hash, log_index) do update
    set block_number = excluded.block_number, block_hash = excluded.block_hash, state = 'detected', confirmations = 1, updated_at = excluded.updated_at
    returning payment_id`;
}

/**
 * Counts confirmations against the new head and confirms the transfers that
 * reached their payment's policy; settles the payments that changed.
 */
export async function confirmTransfers(db: Db, input: { chain: string; head: number; defaultConfirmations: number; now?: Date }): Promise<number[]> {
  const now = input.now ?? new Date();
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ payment_id: number | null; state: string }>`
      update chain_transfers t
      set confirmations = ${input.head} - t.block_number + 1,
          state = case when ${input.head} - t.block_number + 1 >= coalesce(p.required_confirmations, ${input.defaultConfirmations}) then 'confirmed' else 'detected' end,
          updated_at = ${now}
      from payments p
      where p.id = t.payment_id and t.chain = ${input.chain} and t.state = 'detected'
      returning t.payment_id, t.state
    `.execute(trx);
    const confirmed = [...new Set(rows.filter((row) => row.state === 'confirmed' && row.payment_id !== null).map((row) => row.payment_id!))];
    await settlePayments(trx, confirmed, now);
    return confirmed;
  });
}

/**
 * Undoes everything above `fork` after a reorg: transfers in removed blocks
 * are marked removed (kept, for the record), the blocks are forgotten, the
 * cursor goes back to the fork, and the payments they paid are settled again.
 */
export async function rewindTo(db: Db, input: { chain: string; fork: { number: number; hash: string }; now?: Date }): Promise<number[]> {
  const now = input.now ?? new Date();
  return db.transaction().execute(async (trx: Transaction) => {
    const removed = await trx
      .updateTable('chain_transfers')
      .set({ state: 'removed', confirmations: 0, updated_at: now })
      .where('chain', '=', input.chain)
      .where('block_number', '>', input.fork.number)
      .where('state', '<>', 'removed')
      .returning('payment_id')
      .execute();
    await trx.deleteFrom('chain_blocks').where('chain', '=', input.chain).where('number', '>', input.fork.number).execute();
    await trx
      .updateTable('chain_cursors')
      .set({ block_number: input.fork.number, block_hash: input.fork.hash, updated_at: now })
      .where('chain', '=', input.chain)
      .execute();
    const affected = [...new Set(removed.map((row) => row.payment_id).filter((id): id is number => id !== null))];
    await settlePayments(trx, affected, now);
    return affected;
  });
}
