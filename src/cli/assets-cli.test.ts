import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { type Anvil, startAnvil } from '../chains/evm/anvil.ts';
import { startTestGateway, type TestGateway } from '../testing/harness.ts';
import { cli, cliEnv, cliJson, exited, freePort, paycrypt, repoRoot } from '../testing/cli.ts';

/**
 * `paycrypt merchants assets`: an operator lists and chooses the assets a
 * merchant accepts, with a real gateway watching a real anvil chain (network
 * `ERC20`: ETH, USDT, USDC) — through its admin API while it holds the
 * embedded database, directly when it does not or on PostgreSQL.
 */

const usdt = '0x5fbdb2315678afecb367f032d93f642f64180aa3';
const usdc = '0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0';

/** The chain settings for `serve` and the CLI alike: chains are configuration, read from the same environment. */
function chainSettings(node: Anvil): Record<string, string> {
  return {
    PAYCRYPT_CHAINS: JSON.stringify([
      {
        name: `assets-cli-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`,
        family: 'evm',
        chain_id: node.chainId,
        networks: ['ERC20'],
        rpc_url: node.rpcUrl,
        native: { symbol: 'ETH', decimals: 18 },
        tokens: [
          { symbol: 'USDT', contract: usdt, decimals: 6 },
          { symbol: 'USDC', contract: usdc, decimals: 6 },
        ],
        poll_interval_ms: 200,
        addresses: { mnemonic_env: 'ASSETS_CLI_WALLET_MNEMONIC' },
      },
    ]),
    ASSETS_CLI_WALLET_MNEMONIC: generateMnemonic(wordlist),
  };
}

async function createPayment(baseUrl: string, apiKey: string, body: Record<string, unknown>) {
  const response = await fetch(`${baseUrl}/api/v1/payments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ amount: 10.0, currency: 'USD', method: 'crypto', type: 'deposit', ...body }),
  });
  return { status: response.status, json: (await response.json()) as any };
}

const names = (assets: Array<{ network: string; symbol: string }>) => assets.map((asset) => `${asset.network}:${asset.symbol}`);

let anvil: Anvil;
before(async () => {
  anvil = await startAnvil();
});
after(async () => {
  await anvil?.stop();
});

describe('paycrypt merchants assets with embedded storage, beside a running gateway', { concurrency: 1 }, () => {
  let dataDir: string;
  let settings: Record<string, string>;
  let server: ChildProcess;
  let serverLog = '';
  let baseUrl: string;
  let merchant: any;

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-assets-cli-'));
    settings = { PAYCRYPT_DATA_DIR: dataDir, ...chainSettings(anvil) };
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    server = spawn(paycrypt, ['serve'], { cwd: repoRoot, env: cliEnv({ ...settings, PORT: String(port), PAYCRYPT_LOG_LEVEL: 'debug' }), stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (chunk) => (serverLog += chunk));
    server.stderr!.on('data', (chunk) => (serverLog += chunk));
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (server.exitCode !== null) assert.fail(`paycrypt serve exited with ${server.exitCode}:\n${serverLog}`);
      const healthy = await fetch(`${baseUrl}/health`).then(
        (response) => response.ok,
        () => false,
      );
      if (healthy) break;
      if (Date.now() > deadline) assert.fail(`paycrypt serve did not become healthy within 90 s:\n${serverLog}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    merchant = await cliJson(['merchants', 'create', '--name', 'Asset shop'], settings);
  });
  after(async () => {
    if (server && server.exitCode === null && server.signalCode === null) {
      server.kill('SIGKILL');
      await exited(server);
    }
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('merchants assets ID lists every configured asset for a new merchant, in words and as JSON, through the admin API', async () => {
    const [human, assets] = await Promise.all([cli(['merchants', 'assets', String(merchant.merchant_id)], settings), cliJson(['merchants', 'assets', String(merchant.merchant_id)], settings)]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`^Merchant ${merchant.merchant_id} accepts every configured asset:$`, 'm'));
    assert.match(human.stdout, /^ {2}ERC20:ETH\tnative\t18 decimals\tchain assets-cli-/m);
    assert.match(human.stdout, new RegExp(`^  ERC20:USDT\t${usdt}\t6 decimals\t`, 'm'));
    assert.equal(assets.merchant_id, merchant.merchant_id);
    assert.equal(assets.accepts, 'all');
    assert.deepEqual(names(assets.data), ['ERC20:ETH', 'ERC20:USDT', 'ERC20:USDC']);
    assert.deepEqual(assets.data[2], { network: 'ERC20', symbol: 'USDC', chain: assets.data[0].chain, networks: ['ERC20'], decimals: 6, contract: usdc });
    assert.deepEqual(assets.not_accepted, []);
    assert.match(serverLog, new RegExp(`"url":"/admin/v1/merchants/${merchant.merchant_id}/assets"`), 'the command went through the gateway\'s admin API');
  });

  it('--disable ERC20:USDT makes the gateway refuse USDT payments on ERC20 at once', async () => {
    const result = await cli(['merchants', 'assets', String(merchant.merchant_id), '--disable', 'ERC20:USDT'], settings);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^Merchant ${merchant.merchant_id} accepts 2 of 3 configured assets:$`, 'm'));
    assert.match(result.stdout, /^Not accepted: ERC20:USDT$/m);
    const refused = await createPayment(baseUrl, merchant.api_key, { crypto_currency: 'USDT', crypto_network: 'ERC20' });
    assert.equal(refused.status, 400);
    assert.equal(refused.json.error.code, 'invalid_request');
    assert.equal(refused.json.error.message, 'USDT on ERC20 is not enabled for this merchant; it accepts ETH on ERC20, USDC on ERC20');
    assert.equal((await createPayment(baseUrl, merchant.api_key, { crypto_currency: 'USDC', crypto_network: 'ERC20' })).status, 201);
  });

  it('--enable and --only change the list; disabling the last leaves the merchant accepting nothing; --all restores every asset', async () => {
    const id = String(merchant.merchant_id);
    assert.deepEqual(names((await cliJson(['merchants', 'assets', id, '--enable', 'ERC20:USDT'], settings)).data), ['ERC20:ETH', 'ERC20:USDT', 'ERC20:USDC']);
    const only = await cliJson(['merchants', 'assets', id, '--only', 'ERC20:USDC, ERC20:ETH'], settings);
    assert.equal(only.accepts, 'selected');
    assert.deepEqual(names(only.data), ['ERC20:ETH', 'ERC20:USDC']);
    assert.deepEqual(names(only.not_accepted), ['ERC20:USDT']);

    const none = await cli(['merchants', 'assets', id, '--disable', 'ERC20:ETH,ERC20:USDC'], settings);
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stdout, `Merchant ${id} accepts no asset on a configured chain.\nNot accepted: ERC20:ETH, ERC20:USDT, ERC20:USDC\n`);
    const refused = await createPayment(baseUrl, merchant.api_key, { crypto_currency: 'USDC', crypto_network: 'ERC20' });
    assert.equal(refused.status, 400);
    assert.equal(refused.json.error.message, 'USDC on ERC20 is not enabled for this merchant; it accepts no asset on a configured chain');

    const all = await cliJson(['merchants', 'assets', id, '--all'], settings);
    assert.equal(all.accepts, 'all');
    assert.deepEqual(names(all.data), ['ERC20:ETH', 'ERC20:USDT', 'ERC20:USDC']);
    assert.equal((await createPayment(baseUrl, merchant.api_key, { crypto_currency: 'USDT', crypto_network: 'ERC20' })).status, 201);
  });

  it('an asset no configured chain carries fails with the gateway\'s message, which names what is configured', async () => {
    const result = await cli(['merchants', 'assets', String(merchant.merchant_id), '--enable', 'ERC20:DOGE'], settings);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, 'paycrypt: Unknown asset ERC20:DOGE: the chain of ERC20 does not carry DOGE; configured: ERC20:ETH, ERC20:USDT, ERC20:USDC (invalid_request)\n');
    const missing = await cli(['merchants', 'assets', '999999999'], settings);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^paycrypt: Merchant not found: 999999999 \(resource_not_found\)$/m);
  });

  it('a missing merchant id, a malformed asset or two changes at once are usage errors that change nothing', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['merchants', 'assets'], /^paycrypt: merchants assets needs MERCHANT_ID$/m],
      [['merchants', 'assets', String(merchant.merchant_id), '--disable', 'USDT'], /^paycrypt: --disable takes NETWORK:SYMBOL\[,NETWORK:SYMBOL…\], e\.g\. ERC20:USDT; got "USDT"$/m],
      [['merchants', 'assets', String(merchant.merchant_id), '--only', ''], /^paycrypt: --only takes NETWORK:SYMBOL/m],
      [['merchants', 'assets', String(merchant.merchant_id), '--disable', 'ERC20:ETH', '--all'], /^paycrypt: merchants assets takes one of --enable, --disable, --only, --all$/m],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args, settings)));
    for (const [i, [args, message]] of cases.entries()) {
      assert.equal(results[i]!.code, 2, `${args.join(' ')}: ${results[i]!.stderr}`);
      assert.match(results[i]!.stderr, message);
    }
    assert.equal((await cliJson(['merchants', 'assets', String(merchant.merchant_id)], settings)).accepts, 'all');
  });

  it('without the gateway running, the CLI opens the data directory and sees and changes the same choice', async () => {
    await cliJson(['merchants', 'assets', String(merchant.merchant_id), '--disable', 'ERC20:ETH'], settings);
    server.kill('SIGTERM');
    assert.deepEqual(await exited(server), { code: 0, signal: null }, serverLog);
    const local = await cliJson(['merchants', 'assets', String(merchant.merchant_id)], settings);
    assert.equal(local.accepts, 'selected');
    assert.deepEqual(names(local.data), ['ERC20:USDT', 'ERC20:USDC']);
    const changed = await cliJson(['merchants', 'assets', String(merchant.merchant_id), '--enable', 'ERC20:ETH'], settings);
    assert.deepEqual(names(changed.data), ['ERC20:ETH', 'ERC20:USDT', 'ERC20:USDC']);
  });
});

describe('paycrypt merchants assets on PostgreSQL, beside a gateway on the same database', { concurrency: 1, skip: process.env.DATABASE_URL ? false : 'DATABASE_URL is not set' }, () => {
  let t: TestGateway;
  let dataDir: string;
  let settings: Record<string, string>;

  before(async () => {
    const chains = chainSettings(anvil);
    t = await startTestGateway(chains);
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-assets-cli-pg-'));
    settings = { DATABASE_URL: process.env.DATABASE_URL!, PAYCRYPT_DATA_DIR: dataDir, PAYCRYPT_MASTER_KEY: t.gateway.context.config.masterKeyHex!, ...chains };
  });
  after(async () => {
    await t?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('a choice made by the CLI on the database is what the running gateway enforces and lists', async () => {
    const merchant = await t.createMerchant('Assets on PostgreSQL');
    const changed = await cliJson(['merchants', 'assets', String(merchant.merchantId), '--only', 'ERC20:USDC'], settings);
    assert.deepEqual(names(changed.data), ['ERC20:USDC']);
    const listed = await t.request('GET', '/api/v1/assets', { key: merchant.apiKey });
    assert.deepEqual(names(listed.json.data), ['ERC20:USDC']);
    const refused = await createPayment(t.url, merchant.apiKey, { crypto_currency: 'USDT', crypto_network: 'ERC20' });
    assert.equal(refused.status, 400);
    assert.equal(refused.json.error.message, 'USDT on ERC20 is not enabled for this merchant; it accepts USDC on ERC20');
    assert.equal((await createPayment(t.url, merchant.apiKey, { crypto_currency: 'USDC' })).status, 201);
    assert.equal((await cliJson(['merchants', 'assets', String(merchant.merchantId), '--all'], settings)).accepts, 'all');
    assert.equal((await createPayment(t.url, merchant.apiKey, { crypto_currency: 'USDT', crypto_network: 'ERC20' })).status, 201);
  });
});
