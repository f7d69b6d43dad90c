import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type Address, createPublicClient, erc20Abi, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import type { DevEnvironmentInfo } from './dev-environment.ts';
import { until } from '../testing/until.ts';

/**
 * `paycrypt dev` as a user runs it: the real command in a child process,
 * its one JSON line read from stdout, a payment created with the printed key,
 * paid from the printed payer account with `scripts/dev-pay.mjs`, confirmed
 * by mining through the printed RPC URL, and a clean stop on SIGTERM.
 */

const root = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function rpc(url: string, method: string, params: unknown[]): Promise<unknown> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
  const body = (await response.json()) as { result?: unknown; error?: { message: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result;
}

/** `./bin/paycrypt dev` in a child process, once it has printed its JSON line. */
type DevProcess = {
  child: ChildProcess;
  info: DevEnvironmentInfo;
  port: number;
  output(): { stdout: string; stderr: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after 10 s; for clean-up after a failure. */
  kill(): Promise<void>;
};

async function startDev(args: string[]): Promise<DevProcess> {
  const port = await freePort();
  const env = { ...process.env };
  delete env.PAYCRYPT_LOG_LEVEL;
  const child = spawn(path.join(root, 'bin/paycrypt'), ['dev', '--port', String(port), ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no JSON line within 60 s; stderr:\n${stderr.slice(-2000)}`)), 60_000);
      const check = () => {
        const end = stdout.indexOf('\n');
        if (end < 0) return;
        clearTimeout(timer);
        child.stdout!.off('data', check);
        resolve(stdout.slice(0, end));
      };
      child.stdout!.on('data', check);
      void exited.then(({ code }) => reject(new Error(`paycrypt dev exited with ${code} before printing; stderr:\n${stderr.slice(-2000)}`)));
    });
    return { child, info: JSON.parse(line), port, output: () => ({ stdout, stderr }), exited, kill };
  } catch (error) {
    await kill();
    throw error;
  }
}

/** Creates a 10 USD payment in USDT, pays it with scripts/dev-pay.mjs, mines two blocks; resolves once it is completed. */
async function payAndComplete(info: DevEnvironmentInfo) {
  const [chain] = info.chains;
  const headers = { authorization: `Bearer ${info.api_key}`, 'content-type': 'application/json' };
  const created = await fetch(`${info.api_url}/api/v1/payments`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ amount: 10, currency: 'USD', method: 'crypto', type: 'deposit', crypto_currency: 'USDT', crypto_network: 'ERC20' }),
  });
  assert.equal(created.status, 201);
  const payment = (await created.json()) as { id: number; address: string; crypto_amount: number; status: string; settlement: string; chain: string };
  assert.equal(payment.crypto_amount, 9.95);
  assert.equal(payment.settlement, 'awaiting_payment');
  assert.equal(payment.chain, chain!.name);
  const read = async () => (await (await fetch(`${info.api_url}/api/v1/payments/${payment.id}`, { headers })).json()) as typeof payment & { amount_paid: number };

  const paid = await run(process.execPath, ['scripts/dev-pay.mjs', chain!.rpc_url, info.payer.private_key, chain!.tokens.USDT!, payment.address, String(payment.crypto_amount)], { cwd: root });
  const sent = JSON.parse(paid.stdout) as { tx_hash: string; block_number: number };
  assert.match(sent.tx_hash, /^0x[0-9a-f]{64}$/);
  const reader = createPublicClient({ transport: http(chain!.rpc_url), cacheTime: 0 });
  assert.equal(await reader.readContract({ address: chain!.tokens.USDT as Address, abi: erc20Abi, functionName: 'balanceOf', args: [payment.address as Address] }), 9_950_000n);

  // Note: the dev chain mines a block a second, so the payment may be confirmed by the time it is read.
  await until('payment detected', read, (p) => p.settlement === 'detected' || p.status === 'completed');
  await rpc(chain!.rpc_url, 'anvil_mine', ['0x2']);
  const completed = await until('payment completed', read, (p) => p.status === 'completed');
  assert.equal(completed.settlement, 'paid');
  assert.equal(completed.amount_paid, 9.95);
  return payment;
}

describe('paycrypt dev', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-dev-test-'));
  let dev: DevProcess;
  let info: DevEnvironmentInfo;
  /** A run on a kept data directory, started beside the first to save time; a later run reuses its directory. */
  let kept: DevProcess;
  let again: DevProcess | undefined;

  before(async () => {
    [dev, kept] = await Promise.all([startDev([]), startDev(['--data-dir', dataDir])]);
    info = dev.info;
  });

  after(async () => {
    await Promise.all([dev?.kill(), kept?.kill(), again?.kill()]);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints one JSON line: the API, a merchant and its key, the chain with its tokens, a funded payer', async () => {
    assert.equal(info.api_url, `http://127.0.0.1:${dev.port}`);
    assert.equal(typeof info.merchant_id, 'number');
    assert.match(info.api_key, /^pk_/);
    assert.match(info.api_secret, /^sk_/);
    assert.equal(info.chains.length, 1);
    const [chain] = info.chains;
    assert.match(chain!.name, /^anvil/);
    assert.equal(chain!.network, 'ERC20');
    assert.equal(chain!.chain_id, 31337);
    assert.match(chain!.rpc_url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(Object.keys(chain!.tokens).sort(), ['USDC', 'USDT']);
    assert.equal(Number(await rpc(chain!.rpc_url, 'eth_chainId', [])), 31337);
    assert.equal(privateKeyToAccount(info.payer.private_key as `0x${string}`).address.toLowerCase(), info.payer.address);

    const reader = createPublicClient({ transport: http(chain!.rpc_url), cacheTime: 0 });
    for (const [symbol, contract] of Object.entries(chain!.tokens)) {
      assert.equal(await reader.readContract({ address: contract as Address, abi: erc20Abi, functionName: 'symbol' }), symbol);
      assert.ok((await reader.readContract({ address: contract as Address, abi: erc20Abi, functionName: 'balanceOf', args: [info.payer.address as Address] })) > 0n);
    }
    const health = await fetch(`${info.api_url}/health`);
    assert.equal(health.status, 200);
  });

  it('a payment created with the printed key, paid with scripts/dev-pay.mjs, completes once blocks are mined', async () => {
    await payAndComplete(info);
  });

  it('scripts/dev-pay.mjs sends ETH too, and refuses an amount with more decimals than the token has', async () => {
    const [chain] = info.chains;
    const to = '0x000000000000000000000000000000000000dead';
    const reader = createPublicClient({ transport: http(chain!.rpc_url), cacheTime: 0 });
    const before = await reader.getBalance({ address: to });
    await run(process.execPath, ['scripts/dev-pay.mjs', chain!.rpc_url, info.payer.private_key, 'ETH', to, '0.000000000000000123'], { cwd: root });
    assert.equal(await reader.getBalance({ address: to }), before + 123n);

    const refused = await run(process.execPath, ['scripts/dev-pay.mjs', chain!.rpc_url, info.payer.private_key, chain!.tokens.USDT!, to, '1.0000001'], { cwd: root }).then(
      () => assert.fail('dev-pay accepted 7 decimals for a 6-decimal token'),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /more than the 6 decimals/);
    assert.equal(await reader.readContract({ address: chain!.tokens.USDT as Address, abi: erc20Abi, functionName: 'balanceOf', args: [to] }), 0n);
  });

  it('stops on SIGTERM: exits 0, anvil is gone, and stdout held only the one line (logs go to stderr)', async () => {
    const [chain] = info.chains;
    dev.child.kill('SIGTERM');
    const result = await Promise.race([dev.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no exit within 20 s')), 20_000))]);
    assert.deepEqual(result, { code: 0, signal: null });
    await assert.rejects(rpc(chain!.rpc_url, 'eth_chainId', []), 'anvil no longer answers');
    await assert.rejects(fetch(`${info.api_url}/health`), 'the gateway no longer answers');

    const { stdout, stderr } = dev.output();
    assert.equal(stdout.split('\n').filter(Boolean).length, 1, stdout);
    const logs = stderr.split('\n').filter(Boolean);
    assert.ok(logs.length > 0);
    for (const log of logs) assert.doesNotThrow(() => JSON.parse(log), log);
    assert.ok(!stderr.includes(info.api_key), 'the API key is not logged');
  });

  it('run again on a kept --data-dir: the new chain is watched from its start and its payments complete', async () => {
    // The first run on the directory follows its chain well past the height the next chain starts at.
    const [chain] = kept.info.chains;
    await rpc(chain!.rpc_url, 'anvil_mine', ['0x20']);
    await until(
      'the first run to process its chain',
      async () => (await (await fetch(`${kept.info.api_url}/health`)).json()) as { checks: { chains: Array<{ processed_block: number }> } },
      (health) => health.checks.chains[0]!.processed_block >= 32,
    );
    kept.child.kill('SIGTERM');
    assert.deepEqual(await kept.exited, { code: 0, signal: null });

    again = await startDev(['--data-dir', dataDir]);
    assert.ok(again.info.merchant_id > kept.info.merchant_id, 'the data directory kept the first run\'s merchant');
    await payAndComplete(again.info);
    again.child.kill('SIGTERM');
    assert.deepEqual(await again.exited, { code: 0, signal: null });
  });
});
