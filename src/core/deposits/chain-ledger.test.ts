import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { Storage } from '../../storage/database.ts';
import { openTestStorage } from '../../testing/harness.ts';
import { createMerchant } from '../merchants.ts';
import { watchedAddresses, watchedAddressesQuery } from './chain-ledger.ts';

const master = { key: Buffer.alloc(32, 7) };
/** Watched on both chains, as the same seed derives it on every EVM chain. */
const shared = '0x1111111111111111111111111111111111111111';
/** Watched on `ethereum` only. */
const ethereumOnly = '0x2222222222222222222222222222222222222222';
const unknown = '0x3333333333333333333333333333333333333333';

describe('the watched-address lookup', () => {
  let storage: Storage;
  before(async () => {
    storage = await openTestStorage();
    const { merchant } = await createMerchant(storage.db, master, { name: 'Ledger' });
    // Note: chains of this file's own, padded with 20,000 other addresses so
    // that the planner weighs its indexes as it would on a real table.
    await sql`
      insert into deposit_addresses (chain, address, derivation_index, merchant_id)
      values ('ledger-ethereum', ${shared}, 0, ${merchant.id}), ('ledger-ethereum', ${ethereumOnly}, 1, ${merchant.id}), ('ledger-bsc', ${shared}, 0, ${merchant.id})
    `.execute(storage.db);
    await sql`
      insert into deposit_addresses (chain, address, derivation_index, merchant_id)
      select 'ledger-ethereum', '0x' || lpad(to_hex(n), 40, '0'), n + 2, ${merchant.id} from generate_series(1, 20000) as n
    `.execute(storage.db);
    await sql`analyze deposit_addresses`.execute(storage.db);
  });
  after(() => storage.close());

  it("finds a block's recipients that are watched on the block's chain, and no others", async () => {
    const onBsc = await watchedAddresses(storage.db, 'ledger-bsc', [shared, ethereumOnly, unknown]);
    assert.deepEqual([...onBsc.keys()], [shared]);
    const onEthereum = await watchedAddresses(storage.db, 'ledger-ethereum', [shared, ethereumOnly, unknown]);
    assert.deepEqual([...onEthereum.keys()].sort(), [shared, ethereumOnly]);
  });

  it("probes the addresses' hash index, a third the size of their key", async () => {
    const { rows } = await sql<{ 'QUERY PLAN': string }>`explain ${watchedAddressesQuery('ledger-ethereum', [shared, ethereumOnly, unknown])}`.execute(storage.db);
    const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
    assert.match(plan, /deposit_addresses_address_hash/, plan);
  });
});
