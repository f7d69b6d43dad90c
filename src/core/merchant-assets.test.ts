import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseChainConfig } from '../chains/chain-config.ts';
import { createChainRegistry } from '../chains/registry.ts';
import { parseDecimal } from '../internal/decimal.ts';
import { isPayCryptError, type PayCryptError } from '../internal/errors.ts';
import type { Storage } from '../storage/database.ts';
import { openTestStorage } from '../testing/harness.ts';
import type { DepositChains } from './deposits/deposit-chains.ts';
import { acceptedAssets, disableAssets, enableAssets, merchantAssets, setAcceptedAssets } from './merchant-assets.ts';
import { createMerchant } from './merchants.ts';
import { preparePayment } from './payments/create-payment.ts';
import { createQuoter } from './rates/quote.ts';
import { createTableRateSource } from './rates/table-rate-source.ts';

const master = { key: Buffer.alloc(32, 7) };
const quoter = createQuoter({ rates: createTableRateSource(), feeBps: 50 });
const mnemonic = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
const usdtOnEthereum = '0xdac17f958d2ee523a2206206994597c13d831ec7';
const usdcOnEthereum = '0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48';
const usdtOnBsc = '0x55d398326f99059ff775485246999027b3197955';

/** Two configured chains: Ethereum (ETH, USDT, USDC) and BNB Smart Chain (BNB, USDT), each with two network codes. */
const chains: DepositChains = createChainRegistry(
  parseChainConfig(
    JSON.stringify([
      {
        name: 'ethereum',
        family: 'evm',
        chain_id: 1,
        networks: ['ERC20', 'ethereum'],
        rpc_url: 'http://127.0.0.1:1',
        native: { symbol: 'ETH', decimals: 18 },
        tokens: [
          { symbol: 'USDT', contract: usdtOnEthereum, decimals: 6 },
          { symbol: 'USDC', contract: usdcOnEthereum, decimals: 6 },
        ],
        addresses: { mnemonic_env: 'UNUSED' },
      },
      {
        name: 'bsc',
        family: 'evm',
        chain_id: 56,
        networks: ['BEP20', '56'],
        rpc_url: 'http://127.0.0.1:1',
        native: { symbol: 'BNB', decimals: 18 },
        tokens: [{ symbol: 'USDT', contract: usdtOnBsc, decimals: 18 }],
        addresses: { mnemonic_env: 'UNUSED' },
      },
    ]),
    'test chains',
  ),
  { ethereum: { mnemonic }, bsc: { mnemonic } },
).deposits;

const everyAsset = ['ERC20:ETH', 'ERC20:USDT', 'ERC20:USDC', 'BEP20:BNB', 'BEP20:USDT'];

const names = (assets: ReadonlyArray<{ network: string; symbol: string }>) => assets.map((asset) => `${asset.network}:${asset.symbol}`);
const ref = (text: string) => ({ network: text.split(':')[0]!, symbol: text.split(':')[1]! });

/** The PayCryptError `promise` rejects with; fails the test when it resolves. */
async function rejection(promise: Promise<unknown>): Promise<PayCryptError> {
  try {
    await promise;
  } catch (error) {
    if (isPayCryptError(error)) return error;
    throw error;
  }
  assert.fail('expected a PayCryptError');
}

describe('the assets a merchant accepts', () => {
  let storage: Storage;
  let newMerchant: () => Promise<number>;

  before(async () => {
    storage = await openTestStorage();
    let count = 0;
    newMerchant = async () => (await createMerchant(storage.db, master, { name: `Assets ${++count}` })).merchant.id;
  });
  after(() => storage.close());

  const prepare = (merchantId: number, crypto: { cryptoCurrency?: string; cryptoNetwork?: string }) =>
    preparePayment({ db: storage.db, quoter, chains }, { merchantId, type: 'deposit', method: 'crypto', amount: parseDecimal('10')!, currency: 'USD', ...crypto });

  it('are, by default, every asset of every configured chain, each resolved to its chain, network, decimals and contract', async () => {
    const merchantId = await newMerchant();
    const assets = await merchantAssets(storage.db, chains, merchantId);
    assert.equal(assets.accepts, 'all');
    assert.deepEqual(assets.notAccepted, []);
    assert.deepEqual(await acceptedAssets(storage.db, chains, merchantId), assets.accepted);
    assert.deepEqual(assets.accepted, [
      { chain: 'ethereum', network: 'ERC20', networks: ['ERC20', 'ethereum'], symbol: 'ETH', decimals: 18, contract: null },
      { chain: 'ethereum', network: 'ERC20', networks: ['ERC20', 'ethereum'], symbol: 'USDT', decimals: 6, contract: usdtOnEthereum },
      { chain: 'ethereum', network: 'ERC20', networks: ['ERC20', 'ethereum'], symbol: 'USDC', decimals: 6, contract: usdcOnEthereum },
      { chain: 'bsc', network: 'BEP20', networks: ['BEP20', '56'], symbol: 'BNB', decimals: 18, contract: null },
      { chain: 'bsc', network: 'BEP20', networks: ['BEP20', '56'], symbol: 'USDT', decimals: 18, contract: usdtOnBsc },
    ]);
    const prepared = await prepare(merchantId, { cryptoCurrency: 'USDC', cryptoNetwork: 'ERC20' });
    assert.equal(prepared.deposit?.chain, 'ethereum');
  });

  it('can be an explicit list: set to exactly the assets named, in configuration order, whichever network code names their chain', async () => {
    const merchantId = await newMerchant();
    const assets = await setAcceptedAssets(storage.db, chains, merchantId, [ref('56:USDT'), ref('ERC20:USDC'), ref('BEP20:USDT')]);
    assert.equal(assets.accepts, 'selected');
    assert.deepEqual(names(assets.accepted), ['ERC20:USDC', 'BEP20:USDT']);
    assert.deepEqual(names(assets.notAccepted), ['ERC20:ETH', 'ERC20:USDT', 'BEP20:BNB']);
    assert.deepEqual(await merchantAssets(storage.db, chains, merchantId), assets, 'what was stored reads back the same');
  });

  it('disabling an asset of a merchant that accepts every asset leaves it accepting every other one', async () => {
    const merchantId = await newMerchant();
    const assets = await disableAssets(storage.db, chains, merchantId, [ref('ethereum:USDT')]);
    assert.equal(assets.accepts, 'selected');
    assert.deepEqual(names(assets.accepted), ['ERC20:ETH', 'ERC20:USDC', 'BEP20:BNB', 'BEP20:USDT']);
    assert.deepEqual(names(assets.notAccepted), ['ERC20:USDT']);
  });

  it('enabling adds to an explicit list, once; on a merchant that accepts every asset it changes nothing', async () => {
    const merchantId = await newMerchant();
    assert.equal((await enableAssets(storage.db, chains, merchantId, [ref('ERC20:USDT')])).accepts, 'all');
    await setAcceptedAssets(storage.db, chains, merchantId, [ref('ERC20:USDT')]);
    const assets = await enableAssets(storage.db, chains, merchantId, [ref('BEP20:USDT'), ref('ERC20:USDT'), ref('56:USDT')]);
    assert.deepEqual(names(assets.accepted), ['ERC20:USDT', 'BEP20:USDT']);
    const row = await storage.db.selectFrom('merchant_assets').select('accepted').where('merchant_id', '=', merchantId).executeTakeFirstOrThrow();
    assert.deepEqual(row.accepted, [
      { chain: 'ethereum', symbol: 'USDT' },
      { chain: 'bsc', symbol: 'USDT' },
    ]);
  });

  it('refuse an unknown network or an asset its chain does not carry, naming it and what is configured, and change nothing', async () => {
    const merchantId = await newMerchant();
    await setAcceptedAssets(storage.db, chains, merchantId, [ref('ERC20:USDT')]);
    const unknownNetwork = await rejection(enableAssets(storage.db, chains, merchantId, [ref('BEP20:BNB'), ref('TRC20:USDT')]));
    assert.equal(unknownNetwork.code, 'invalid_request');
    assert.equal(unknownNetwork.message, `Unknown asset TRC20:USDT: no configured chain serves network TRC20; configured: ${everyAsset.join(', ')}`);
    assert.deepEqual(unknownNetwork.details, { field: 'assets', asset: 'TRC20:USDT' });
    const unknownAsset = await rejection(disableAssets(storage.db, chains, merchantId, [ref('BEP20:USDC')]));
    assert.equal(unknownAsset.code, 'invalid_request');
    assert.match(unknownAsset.message, /^Unknown asset BEP20:USDC: the chain of BEP20 does not carry USDC; configured: ERC20:ETH, /);
    assert.equal((await rejection(setAcceptedAssets(storage.db, chains, merchantId, [ref('ERC20:DOGE')]))).code, 'invalid_request');
    assert.deepEqual(names(await acceptedAssets(storage.db, chains, merchantId)), ['ERC20:USDT']);
  });

  it('belong to one merchant: a change to one leaves the others as they were', async () => {
    const [first, second] = [await newMerchant(), await newMerchant()];
    await setAcceptedAssets(storage.db, chains, first, [ref('BEP20:BNB')]);
    assert.equal((await merchantAssets(storage.db, chains, second)).accepts, 'all');
    assert.equal((await prepare(second, { cryptoCurrency: 'USDT', cryptoNetwork: 'ERC20' })).deposit?.chain, 'ethereum');
  });

  it('of a merchant that does not exist cannot be changed', async () => {
    const error = await rejection(disableAssets(storage.db, chains, 999_999_999, [ref('ERC20:ETH')]));
    assert.equal(error.code, 'resource_not_found');
    assert.equal(error.message, 'Merchant not found: 999999999');
  });

  it('changed at the same time by two operators keep both changes', async () => {
    const merchantId = await newMerchant();
    await Promise.all([
      disableAssets(storage.db, chains, merchantId, [ref('ERC20:ETH')]),
      disableAssets(storage.db, chains, merchantId, [ref('BEP20:BNB')]),
      disableAssets(storage.db, chains, merchantId, [ref('ERC20:USDC')]),
    ]);
    assert.deepEqual(names(await acceptedAssets(storage.db, chains, merchantId)), ['ERC20:USDT', 'BEP20:USDT']);
  });

  describe('and the payments it may create', () => {
    it('refuse a crypto payment in an asset of a configured chain the merchant has not enabled, naming it and what the merchant accepts', async () => {
      const merchantId = await newMerchant();
      await setAcceptedAssets(storage.db, chains, merchantId, [ref('ERC20:USDC'), ref('BEP20:USDT')]);
      const error = await rejection(prepare(merchantId, { cryptoCurrency: 'USDT', cryptoNetwork: 'ERC20' }));
      assert.equal(error.code, 'invalid_request');
      assert.equal(error.status, 400);
      assert.equal(error.message, 'USDT on ERC20 is not enabled for this merchant; it accepts USDC on ERC20, USDT on BEP20');
      assert.deepEqual(error.details, { field: 'crypto_currency' });
      assert.equal((await prepare(merchantId, { cryptoCurrency: 'USDT', cryptoNetwork: '56' })).deposit?.chain, 'bsc');
    });

    it('with no crypto_network go to the first chain on which the merchant accepts the asset', async () => {
      const merchantId = await newMerchant();
      assert.equal((await prepare(merchantId, { cryptoCurrency: 'USDT' })).crypto?.network, 'ERC20', 'every asset accepted: the first chain carrying it');
      await disableAssets(storage.db, chains, merchantId, [ref('ERC20:USDT')]);
      const prepared = await prepare(merchantId, {});
      assert.equal(prepared.crypto?.currency, 'USDT');
      assert.equal(prepared.crypto?.network, 'BEP20');
      assert.equal(prepared.deposit?.chain, 'bsc');
    });

    it('after the last asset is disabled, none on a configured chain: the merchant accepts nothing, and accepts all again after a reset', async () => {
      const merchantId = await newMerchant();
      await setAcceptedAssets(storage.db, chains, merchantId, [ref('ERC20:USDT')]);
      const assets = await disableAssets(storage.db, chains, merchantId, [ref('ERC20:USDT')]);
      assert.equal(assets.accepts, 'selected');
      assert.deepEqual(assets.accepted, []);
      assert.deepEqual(names(assets.notAccepted), everyAsset);

      for (const crypto of [{ cryptoCurrency: 'USDT', cryptoNetwork: 'ERC20' }, { cryptoCurrency: 'USDC', cryptoNetwork: 'ethereum' }, { cryptoCurrency: 'USDT' }]) {
        const error = await rejection(prepare(merchantId, crypto));
        assert.equal(error.code, 'invalid_request');
        assert.match(error.message, /^USD[TC] on (ERC20|ethereum) is not enabled for this merchant; it accepts no asset on a configured chain$/);
        assert.deepEqual(error.details, { field: 'crypto_currency' });
      }
      // Note: a network no configured chain watches is not an asset choice: such payments are settled by hand, as before.
      assert.equal((await prepare(merchantId, { cryptoCurrency: 'USDT', cryptoNetwork: 'TRC20' })).deposit, null);

      const reset = await setAcceptedAssets(storage.db, chains, merchantId, 'all');
      assert.equal(reset.accepts, 'all');
      assert.deepEqual(names(reset.accepted), everyAsset);
      assert.equal(await storage.db.selectFrom('merchant_assets').select('merchant_id').where('merchant_id', '=', merchantId).executeTakeFirst(), undefined);
      assert.equal((await prepare(merchantId, { cryptoCurrency: 'USDT', cryptoNetwork: 'ERC20' })).deposit?.chain, 'ethereum');
    });
  });
});
