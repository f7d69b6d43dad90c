import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { type Address, createPublicClient, createWalletClient, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { type Anvil, anvilChain, startAnvil } from '../../../chains/evm/anvil.ts';
import { deployTestToken } from '../../../chains/evm/test-token.ts';
import { startTestGateway, type TestGateway, type TestResponse } from '../../../testing/harness.ts';

/**
 * Which assets a merchant accepts, on a real gateway watching a real anvil
 * chain (network `ERC20`: ETH, USDT, USDC): the merchant reads them at
 * `GET /api/v1/assets`, the operator changes them at
 * `/admin/v1/merchants/{id}/assets`, and `POST /api/v1/payments` refuses the
 * others.
 *
 * @dev The chain's name is unique per run: a shared PostgreSQL database keys
 * address counters by chain name.
 */

const chainName = `assets-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;

let anvil: Anvil;
let t: TestGateway;
let usdt: Address;
let usdc: Address;

type Merchant = Awaited<ReturnType<TestGateway['createMerchant']>>;

const admin = (method: string, path: string, body?: unknown) => t.request(method, `/admin/v1${path}`, { key: t.adminToken, body });
const assetsOf = async (merchant: Merchant) => {
  const response = await t.request('GET', '/api/v1/assets', { key: merchant.apiKey });
  assert.equal(response.status, 200, response.text);
  return response.json as { accepts: string; data: Array<{ network: string; symbol: string }> };
};
const names = (assets: Array<{ network: string; symbol: string }>) => assets.map((asset) => `${asset.network}:${asset.symbol}`);
const createPayment = (merchant: Merchant, body: Record<string, unknown>) =>
  t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: { amount: 10.0, currency: 'USD', method: 'crypto', type: 'deposit', ...body } });

async function rowsOf(merchant: Merchant): Promise<{ payments: number; events: number }> {
  const db = t.gateway.context.storage.db;
  const count = async (table: 'payments' | 'events') =>
    Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('rows')).where('merchant_id', '=', merchant.merchantId).executeTakeFirstOrThrow()).rows);
  return { payments: await count('payments'), events: await count('events') };
}

function assertError(response: TestResponse, status: number, code: string) {
  assert.equal(response.status, status, response.text);
  assert.deepEqual(Object.keys(response.json ?? {}), ['error'], response.text);
  assert.equal(response.json.error.code, code);
  return response.json.error as { code: string; message: string; details?: Record<string, unknown> };
}

before(async () => {
  anvil = await startAnvil();
  const chain = anvilChain(anvil);
  const reader = createPublicClient({ chain, transport: http(anvil.rpcUrl), cacheTime: 0 });
  const wallet = createWalletClient({ chain, account: privateKeyToAccount(anvil.accounts[0]!.privateKey), transport: http(anvil.rpcUrl), cacheTime: 0 });
  usdt = await deployTestToken(wallet, reader, { name: 'Tether USD', symbol: 'USDT', decimals: 6 });
  usdc = await deployTestToken(wallet, reader, { name: 'USD Coin', symbol: 'USDC', decimals: 6 });
  t = await startTestGateway({
    PAYCRYPT_CHAINS: JSON.stringify([
      {
        name: chainName,
        family: 'evm',
        chain_id: anvil.chainId,
        networks: ['ERC20', 'anvil'],
        rpc_url: anvil.rpcUrl,
        native: { symbol: 'ETH', decimals: 18 },
        tokens: [
          { symbol: 'USDT', contract: usdt, decimals: 6 },
          { symbol: 'USDC', contract: usdc, decimals: 6 },
        ],
        confirmations: 2,
        poll_interval_ms: 100,
        addresses: { mnemonic_env: 'TEST_ASSETS_WALLET_MNEMONIC' },
      },
    ]),
    TEST_ASSETS_WALLET_MNEMONIC: generateMnemonic(wordlist),
    PAYCRYPT_RATES: '{"ETH":"2000"}',
  });
});

after(async () => {
  await t?.close();
  await anvil?.stop();
});

describe('GET /api/v1/assets', () => {
  it('lists, for a new merchant, every asset of the configured chain: network, symbol, chain, decimals and contract', async () => {
    const merchant = await t.createMerchant('New shop');
    const assets = await assetsOf(merchant);
    const shown = { network: 'ERC20', chain: chainName, networks: ['ERC20', 'anvil'] };
    assert.deepEqual(assets, {
      accepts: 'all',
      data: [
        { ...shown, symbol: 'ETH', decimals: 18, contract: null },
        { ...shown, symbol: 'USDT', decimals: 6, contract: usdt },
        { ...shown, symbol: 'USDC', decimals: 6, contract: usdc },
      ],
    });
  });

  it('answers 401 in the v1 envelope without a valid key', async () => {
    assertError(await t.request('GET', '/api/v1/assets'), 401, 'authentication_failed');
    assertError(await t.request('GET', '/api/v1/assets', { key: `pk_${'0'.repeat(32)}` }), 401, 'authentication_failed');
  });

  it('is documented in /openapi.json with Bearer auth and the Asset schema', async () => {
    const document = (await t.request('GET', '/openapi.json')).json;
    const get = document.paths['/api/v1/assets']?.get;
    assert.ok(get, 'GET /api/v1/assets');
    assert.deepEqual(get.security, [{ bearer: [] }]);
    assert.ok(get.responses['401']);
    const schema = get.responses['200'].content['application/json'].schema;
    assert.deepEqual(schema.properties.accepts.enum, ['all', 'selected']);
    for (const path of ['/admin/v1/merchants/{merchant_id}/assets', '/admin/v1/merchants/{merchant_id}/assets/enable', '/admin/v1/merchants/{merchant_id}/assets/disable']) {
      assert.ok(document.paths[path], path);
    }
  });
});

describe('an operator choosing what a merchant accepts', () => {
  it('disabling ERC20:USDT refuses USDT payments on ERC20 with 400, naming the asset and what the merchant accepts, and writes nothing', async () => {
    const merchant = await t.createMerchant('USDC only');
    const disabled = await admin('POST', `/merchants/${merchant.merchantId}/assets/disable`, { assets: [{ network: 'ERC20', symbol: 'USDT' }] });
    assert.equal(disabled.status, 200, disabled.text);
    assert.equal(disabled.json.merchant_id, merchant.merchantId);
    assert.equal(disabled.json.accepts, 'selected');
    assert.deepEqual(names(disabled.json.data), ['ERC20:ETH', 'ERC20:USDC']);
    assert.deepEqual(names(disabled.json.not_accepted), ['ERC20:USDT']);
    assert.deepEqual(await assetsOf(merchant), { accepts: 'selected', data: disabled.json.data });

    const before = await rowsOf(merchant);
    for (const body of [{ crypto_currency: 'USDT', crypto_network: 'ERC20' }, { crypto_currency: 'USDT', crypto_network: 'anvil' }, {}]) {
      const error = assertError(await createPayment(merchant, body), 400, 'invalid_request');
      assert.match(error.message, /^USDT on (ERC20|anvil) is not enabled for this merchant; it accepts ETH on ERC20, USDC on ERC20$/);
      assert.deepEqual(error.details, { invalid_fields: [{ field: 'crypto_currency', message: error.message }] });
    }
    assert.deepEqual(await rowsOf(merchant), before, 'a refused payment writes no payment and no event');

    const usdcPayment = await createPayment(merchant, { crypto_currency: 'USDC', crypto_network: 'ERC20' });
    assert.equal(usdcPayment.status, 201, usdcPayment.text);
    assert.equal(usdcPayment.json.chain, chainName);
    assert.match(usdcPayment.json.address, /^0x[0-9a-f]{40}$/);

    const other = await t.createMerchant('Still accepts everything');
    const otherPayment = await createPayment(other, { crypto_currency: 'USDT', crypto_network: 'ERC20' });
    assert.equal(otherPayment.status, 201, otherPayment.text);
    assert.equal(otherPayment.json.chain, chainName);
  });

  it('disabling the last asset leaves the merchant accepting none on the chain; "all" restores every one', async () => {
    const merchant = await t.createMerchant('Paused');
    const none = await admin('POST', `/merchants/${merchant.merchantId}/assets/disable`, {
      assets: ['ETH', 'USDT', 'USDC'].map((symbol) => ({ network: 'ERC20', symbol })),
    });
    assert.equal(none.status, 200, none.text);
    assert.deepEqual(none.json.data, []);
    assert.deepEqual(await assetsOf(merchant), { accepts: 'selected', data: [] });
    for (const crypto_currency of ['ETH', 'USDT', 'USDC']) {
      const error = assertError(await createPayment(merchant, { crypto_currency, crypto_network: 'ERC20' }), 400, 'invalid_request');
      assert.equal(error.message, `${crypto_currency} on ERC20 is not enabled for this merchant; it accepts no asset on a configured chain`);
    }
    assert.deepEqual(await rowsOf(merchant), { payments: 0, events: 0 });
    // A bank payment, or one on a network no configured chain serves (settled by hand), is not an asset choice.
    assert.equal((await createPayment(merchant, { method: 'bank' })).status, 201);
    assert.equal((await createPayment(merchant, { crypto_currency: 'USDT', crypto_network: 'TRC20' })).status, 201);

    const reset = await admin('PUT', `/merchants/${merchant.merchantId}/assets`, { assets: 'all' });
    assert.equal(reset.status, 200, reset.text);
    assert.equal(reset.json.accepts, 'all');
    assert.deepEqual(names((await assetsOf(merchant)).data), ['ERC20:ETH', 'ERC20:USDT', 'ERC20:USDC']);
    assert.equal((await createPayment(merchant, { crypto_currency: 'USDT', crypto_network: 'ERC20' })).status, 201);
  });

  it('setting an exact list and enabling more take effect at once', async () => {
    const merchant = await t.createMerchant('Picky');
    const only = await admin('PUT', `/merchants/${merchant.merchantId}/assets`, { assets: [{ network: 'anvil', symbol: 'ETH' }] });
    assert.equal(only.status, 200, only.text);
    assert.deepEqual(names(only.json.data), ['ERC20:ETH']);
    assert.equal((await createPayment(merchant, { crypto_currency: 'ETH', crypto_network: 'ERC20' })).status, 201);
    assert.equal((await createPayment(merchant, { crypto_currency: 'USDC', crypto_network: 'ERC20' })).status, 400);
    const enabled = await admin('POST', `/merchants/${merchant.merchantId}/assets/enable`, { assets: [{ network: 'ERC20', symbol: 'USDC' }] });
    assert.deepEqual(names(enabled.json.data), ['ERC20:ETH', 'ERC20:USDC']);
    assert.equal((await createPayment(merchant, { crypto_currency: 'USDC', crypto_network: 'ERC20' })).status, 201);
  });

  it('refuses an asset no configured chain carries, naming it and what is configured, and changes nothing', async () => {
    const merchant = await t.createMerchant('Typo');
    await admin('PUT', `/merchants/${merchant.merchantId}/assets`, { assets: [{ network: 'ERC20', symbol: 'USDT' }] });
    const unknownAsset = assertError(
      await admin('POST', `/merchants/${merchant.merchantId}/assets/enable`, { assets: [{ network: 'ERC20', symbol: 'USDC' }, { network: 'ERC20', symbol: 'DAI' }] }),
      400,
      'invalid_request',
    );
    assert.equal(unknownAsset.message, `Unknown asset ERC20:DAI: the chain of ERC20 does not carry DAI; configured: ERC20:ETH, ERC20:USDT, ERC20:USDC`);
    const unknownNetwork = assertError(
      await admin('POST', `/merchants/${merchant.merchantId}/assets/disable`, { assets: [{ network: 'BEP20', symbol: 'USDT' }] }),
      400,
      'invalid_request',
    );
    assert.match(unknownNetwork.message, /^Unknown asset BEP20:USDT: no configured chain serves network BEP20; configured: /);
    assertError(await admin('POST', `/merchants/${merchant.merchantId}/assets/enable`, { assets: [] }), 400, 'invalid_request');
    assertError(await admin('POST', `/merchants/${merchant.merchantId}/assets/enable`, { assets: ['ERC20:USDC'] }), 400, 'invalid_request');
    assertError(await admin('PUT', `/merchants/${merchant.merchantId}/assets`, { assets: 'none' }), 400, 'invalid_request');
    const unchanged = await assetsOf(merchant);
    assert.equal(unchanged.accepts, 'selected');
    assert.deepEqual(names(unchanged.data), ['ERC20:USDT']);
  });

  it('answers 404 for a merchant that does not exist and 401 without the admin token', async () => {
    assert.equal(assertError(await admin('GET', '/merchants/999999999/assets'), 404, 'resource_not_found').message, 'Merchant not found: 999999999');
    assertError(await admin('POST', '/merchants/999999999/assets/disable', { assets: [{ network: 'ERC20', symbol: 'ETH' }] }), 404, 'resource_not_found');
    const merchant = await t.createMerchant('Guarded');
    assertError(await t.request('GET', `/admin/v1/merchants/${merchant.merchantId}/assets`), 401, 'authentication_failed');
    assertError(
      await t.request('PUT', `/admin/v1/merchants/${merchant.merchantId}/assets`, { key: merchant.apiKey, body: { assets: [] } }),
      401,
      'authentication_failed',
    );
    assert.equal((await assetsOf(merchant)).accepts, 'all');
  });
});
