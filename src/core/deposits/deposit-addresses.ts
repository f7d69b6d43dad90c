import { sql } from 'kysely';
import type { Transaction } from '../../storage/database.ts';

/**
 * Gives a payment an address no other payment has: the chain's next BIP-32
 * index, taken atomically in the payment's own transaction, so an index is
 * never handed out twice (a rolled-back payment gives its index up with it).
 */
export async function allocateDepositAddress(
  trx: Transaction,
  input: { chain: string; merchantId: number; paymentId: number; addressAt: (index: number) => string },
): Promise<{ address: string; index: number }> {
  const { rows } = await sql<{ index: number }>`
    insert into address_counters (chain, next_index) values (${input.chain}, 1)
    on conflict (chain) do update set next_index = address_counters.next_index + 1
    returning next_index - 1 as index
  `.execute(trx);
  const index = Number(rows[0]!.index);
  const address = input.addressAt(index).toLowerCase();
  await trx
    .insertInto('deposit_addresses')
    .values({ chain: input.chain, address, derivation_index: index, merchant_id: input.merchantId, payment_id: input.paymentId })
    .execute();
  return { address, index };
}
