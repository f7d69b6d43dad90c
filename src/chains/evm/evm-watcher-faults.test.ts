import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import pg from 'pg';
import { type Address, createPublicClient, createWalletClient, type Hex, http as httpTransport, numberToHex, parseUnits } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { createStorage, type Db, type Storage } from '../../storage/database.ts';
import { migrateToLatest } from '../../storage/migrations/index.ts';
import { startTestGateway, type TestGateway, testAdminToken } from '../../testing/harness.ts';
import { type Anvil, anvilChain, anvilReorg, anvilRpc, mine, startAnvil } from './anvil.ts';
import { deployTestToken, testTokenAbi } from './test-token.ts';

/**
 * The chain watcher when things go wrong: downtime, a crash in the middle of
 * a block, two gateway processes, a node that is down, hangs, lies, goes
 * backwards or turns into another chain, and reorganizations within and
 * beyond the reorg window. Everything is real: anvil with a real ERC-20,
 * real gateways, the real database (PGlite, or PostgreSQL with DATABASE_URL).
 */

const walletVariable = 'PAYCRYPT_FAULTS_WALLET_MNEMONIC';
const walletMnemonic = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
const network = 'ERC20';
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const cleanups: Array<() => Promise<unknown>> = [];
/** Runs `cleanup` after the current test, last registered first. */
function onCleanup(cleanup: () => Promise<unknown>): void {
  cleanups.push(cleanup);
}
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
});

/**
 * The storage every gateway of this file uses: PostgreSQL when DATABASE_URL
 * is set (each gateway opens it), else one embedded PGlite, opened once.
 * Tests keep apart by chain name and merchant.
 */
let storageOptions: { storage?: Storage } = {};
before(async () => {
  if (process.env.DATABASE_URL) return;
  const storage = await createStorage({ dataDir: 'memory://' });
  await migrateToLatest(storage.db);
  storageOptions = { storage };
});
after(async () => {
  await storageOptions.storage?.close();
});

// ---------------------------------------------------------------------------
// The node: anvil with a USDT-like token, and a payer holding plenty of it.

type Node = {
  anvil: Anvil;
  token: Address;
  head(): Promise<number>;
  blockHash(number: number): Promise<string>;
  /** Sends `amount` base units of the token to `to`; resolves once mined, with its tx hash and block. */
  pay(to: string, amount: bigint): Promise<{ hash: Hex; block: number }>;
  /** One transaction paying every `to[i]` its `amounts[i]`. */
  payMany(to: string[], amounts: bigint[]): Promise<{ hash: Hex; block: number }>;
};

async function startNode(options: { chainId?: number } = {}): Promise<Node> {
  const anvil = await startAnvil(options);
  onCleanup(() => anvil.stop());
  const chain = anvilChain(anvil);
  const account = privateKeyToAccount(anvil.accounts[0]!.privateKey);
  // Note: cacheTime 0, or viem answers the block number from a cache and misses a reorg.
  const publicClient = createPublicClient({ chain, transport: httpTransport(anvil.rpcUrl), cacheTime: 0, pollingInterval: 50 });
  const walletClient = createWalletClient({ chain, account, transport: httpTransport(anvil.rpcUrl), cacheTime: 0, pollingInterval: 50 });
  const token = await deployTestToken(walletClient, publicClient, { name: 'Tether USD', symbol: 'USDT', decimals: 6 });
  const mined = async (hash: Hex) => {
    const receipt = await publicClient.waitForTransactionReceipt({ hash });
    assert.equal(receipt.status, 'success');
    return { hash, block: Number(receipt.blockNumber) };
  };
  await mined(await walletClient.writeContract({ address: token, abi: testTokenAbi, functionName: 'mint', args: [account.address, parseUnits('1000000', 6)] }));
  return {
    anvil,
    token,
    head: async () => Number(await publicClient.getBlockNumber()),
    blockHash: async (number) => (await publicClient.getBlock({ blockNumber: BigInt(number) })).hash.toLowerCase(),
    pay: async (to, amount) => mined(await walletClient.writeContract({ address: token, abi: testTokenAbi, functionName: 'transfer', args: [to as Address, amount] })),
    payMany: async (to, amounts) =>
      mined(await walletClient.writeContract({ address: token, abi: testTokenAbi, functionName: 'batchTransfer', args: [to as Address[], amounts] })),
  };
}

// ---------------------------------------------------------------------------
// A JSON-RPC proxy in front of the real node.
//
// Note: it exists because a misbehaving node (down, failing, hanging, lying,
// going backwards, turning into another chain) cannot otherwise be produced
// offline. Unless a test tells it otherwise it forwards every call to the real
// anvil and returns its answer untouched.

type RpcCall = { jsonrpc: '2.0'; id: number | string; method: string; params?: unknown[] };
type RpcFault = 'hang' | { error: { code: number; message: string } };

type RpcProxy = {
  url: string;
  /** The node calls are forwarded to; change it to put another node behind the same URL. */
  target: string;
  /** Answers a call instead of the node: hang (never answer) or a JSON-RPC error. */
  fault: ((call: RpcCall) => RpcFault | undefined) | undefined;
  /** Rewrites the node's result before it is returned. */
  tamper: ((call: RpcCall, result: any) => unknown) | undefined;
  /** Keeps the node's answer instead of returning it, when this says so: the call hangs, as with the fault `hang`. */
  hold: ((call: RpcCall, result: any) => boolean) | undefined;
  /** How many calls of each method the proxy has answered (or held, or failed) so far. */
  calls(method: string): number;
  /** Calls being held without an answer. */
  hanging(): number;
  /** Drops the connections of held calls, as a node that dies mid-answer. */
  dropHanging(): void;
  /** Stops listening and drops every connection: the node is down (connection refused). */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
};

async function startRpcProxy(target: string): Promise<RpcProxy> {
  const sockets = new Set<net.Socket>();
  const held = new Set<http.ServerResponse>();
  const counts = new Map<string, number>();
  const server = http.createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    let body: RpcCall | RpcCall[];
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      response.writeHead(400).end();
      return;
    }
    const calls = Array.isArray(body) ? body : [body];
    let hang = false;
    const answers = await Promise.all(
      calls.map(async (call) => {
        counts.set(call.method, (counts.get(call.method) ?? 0) + 1);
        const fault = proxy.fault?.(call);
        if (fault === 'hang') {
          hang = true;
          return undefined;
        }
        if (fault) return { jsonrpc: '2.0', id: call.id, error: fault.error };
        try {
          const answer = (await (await fetch(proxy.target, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(call) })).json()) as {
            result?: unknown;
          };
          if ('result' in answer && proxy.tamper) answer.result = proxy.tamper(call, answer.result);
          if ('result' in answer && proxy.hold?.(call, answer.result)) hang = true;
          return answer;
        } catch {
          return undefined; // the node behind is down: answer as a gateway would
        }
      }),
    );
    if (hang) {
      held.add(response);
      response.on('close', () => held.delete(response));
      return;
    }
    if (answers.some((answer) => answer === undefined)) {
      response.writeHead(502).end('upstream node unreachable');
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(Array.isArray(body) ? answers : answers[0]));
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  const port = await listen(0);
  const down = async () => {
    const closed = new Promise((resolve) => server.close(resolve));
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  const proxy: RpcProxy = {
    url: `http://127.0.0.1:${port}`,
    target,
    fault: undefined,
    tamper: undefined,
    hold: undefined,
    calls: (method) => counts.get(method) ?? 0,
    hanging: () => held.size,
    dropHanging: () => {
      for (const response of held) response.socket?.destroy();
    },
    down,
    up: async () => {
      await listen(port);
    },
  };
  onCleanup(async () => (server.listening ? down() : undefined));
  return proxy;
}

// ---------------------------------------------------------------------------
// Gateways, payments and what the database holds.

type ChainOverrides = { confirmations?: number; reorg_window?: number };

/** A chain entry of its own: cursors and address counters are keyed by chain name, and the database may be shared. */
function chainEntry(node: Node, rpcUrl: string, overrides: ChainOverrides = {}) {
  return {
    name: `faults-${randomBytes(4).toString('hex')}`,
    family: 'evm',
    chain_id: node.anvil.chainId,
    networks: [network],
    rpc_url: rpcUrl,
    native: { symbol: 'ETH', decimals: 18 },
    tokens: [{ symbol: 'USDT', contract: node.token, decimals: 6 }],
    confirmations: 3,
    reorg_window: 10,
    poll_interval_ms: 100,
    addresses: { mnemonic_env: walletVariable },
    ...overrides,
  };
}

function gatewayEnv(entry: ReturnType<typeof chainEntry>): Record<string, string> {
  return { PAYCRYPT_CHAINS: JSON.stringify([entry]), [walletVariable]: walletMnemonic };
}

async function startGateway(entry: ReturnType<typeof chainEntry>): Promise<TestGateway> {
  const t = await startTestGateway(gatewayEnv(entry), storageOptions);
  let closed = false;
  onCleanup(async () => (closed ? undefined : t.close()));
  return {
    ...t,
    async close() {
      closed = true;
      await t.close();
    },
  };
}

type Payment = { id: number; address: string; due: bigint };

async function createPayment(t: Pick<TestGateway, 'request'>, key: string, usd: number): Promise<Payment> {
  const response = await t.request('POST', '/api/v1/payments', {
    key,
    body: { amount: usd, currency: 'USD', method: 'crypto', type: 'deposit', crypto_currency: 'USDT', crypto_network: network },
  });
  assert.equal(response.status, 201, response.text);
  // Note: the amount due is read from the JSON text, not through a float.
  const due = /"crypto_amount":([0-9.]+)/.exec(response.text)![1]!;
  return { id: response.json.id, address: response.json.address, due: parseUnits(due, 6) };
}

async function paymentStatus(t: Pick<TestGateway, 'request'>, key: string, payment: Payment): Promise<string> {
  const response = await t.request('GET', `/api/v1/payments/${payment.id}`, { key });
  assert.equal(response.status, 200, response.text);
  return response.json.status;
}

async function eventTypes(t: Pick<TestGateway, 'request'>, key: string, payment: Payment): Promise<string[]> {
  const response = await t.request('GET', `/api/v1/events?payment_id=${payment.id}&limit=100`, { key });
  assert.equal(response.status, 200, response.text);
  return (response.json.data as Array<{ type: string }>).map((event) => event.type).reverse();
}

type ChainHealth = { name: string; state: string; head: number | null; processed_block: number | null; error: string | null };

async function health(t: Pick<TestGateway, 'request'>, chain: string): Promise<{ status: number; overall: string; chain: ChainHealth }> {
  const response = await t.request('GET', '/health');
  const found = (response.json.checks.chains as ChainHealth[]).find((entry) => entry.name === chain);
  assert.ok(found, `chain ${chain} in /health: ${response.text}`);
  return { status: response.status, overall: response.json.status, chain: found };
}

/** Polls `probe` until it returns something truthy; fails with `what` after `timeoutMs`. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 15_000, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

const waitForStatus = (t: Pick<TestGateway, 'request'>, key: string, payment: Payment, status: string, timeoutMs?: number) =>
  waitFor(`payment ${payment.id} to be ${status}`, async () => (await paymentStatus(t, key, payment)) === status, timeoutMs);

const waitForChainState = (t: Pick<TestGateway, 'request'>, chain: string, state: string, also: (chain: ChainHealth) => boolean = () => true, timeoutMs?: number) =>
  waitFor(`chain ${chain} to be ${state}`, async () => {
    const { chain: found } = await health(t, chain);
    return found.state === state && also(found) ? found : undefined;
  }, timeoutMs);

type TransferRow = { tx_hash: string; log_index: number; block_number: number; to_address: string; amount: string; payment_id: number | null; state: string };

async function transfers(db: Db, chain: string): Promise<TransferRow[]> {
  const { rows } = await sql<TransferRow>`
    select tx_hash, log_index, block_number, to_address, amount, payment_id, state from chain_transfers where chain = ${chain} order by block_number, log_index
  `.execute(db);
  return rows;
}

async function cursorOf(db: Db, chain: string): Promise<{ number: number; hash: string } | undefined> {
  const row = await db.selectFrom('chain_cursors').select(['block_number', 'block_hash']).where('chain', '=', chain).executeTakeFirst();
  return row && { number: Number(row.block_number), hash: row.block_hash };
}

async function amountsOf(db: Db, payment: Payment): Promise<{ paid: bigint; detected: bigint }> {
  const row = await db.selectFrom('payments').select(['amount_paid', 'amount_detected']).where('id', '=', payment.id).executeTakeFirstOrThrow();
  return { paid: BigInt(row.amount_paid), detected: BigInt(row.amount_detected) };
}

const dbOf = (t: TestGateway) => t.gateway.context.storage.db;

/** The watcher has processed the node's head block (the same block, by hash). */
async function waitForCaughtUp(t: TestGateway, chain: string, node: Node, timeoutMs?: number): Promise<number> {
  return waitFor(`chain ${chain} to reach the node's head`, async () => {
    const head = await node.head();
    const cursor = await cursorOf(dbOf(t), chain);
    return cursor && cursor.number === head && cursor.hash === (await node.blockHash(head)) ? head : undefined;
  }, timeoutMs);
}

// ---------------------------------------------------------------------------

describe('EVM watcher: downtime and restarts', () => {
  it('catches up after downtime over 100+ blocks: every payment completes, every block is processed in order, no transfer twice', async () => {
    const node = await startNode();
    // Note: a reorg window longer than the outage keeps every processed block in chain_blocks, to be checked one by one.
    const entry = chainEntry(node, node.anvil.rpcUrl, { confirmations: 3, reorg_window: 500 });
    // Note: the second gateway works on the same storage as the first: the same PostgreSQL database, or the same PGlite.
    const first = await startGateway(entry);
    const merchant = await first.createMerchant('Downtime merchant');
    const payments: Payment[] = [];
    for (let i = 0; i < 6; i++) payments.push(await createPayment(first, merchant.apiKey, 10 + i));
    await waitForChainState(first, entry.name, 'ok', (chain) => chain.processed_block !== null);

    const sent: Array<{ hash: Hex; amount: bigint }> = [];
    const pay = async (payment: Payment, amount: bigint) => {
      const paid = await node.pay(payment.address, amount);
      sent.push({ hash: paid.hash, amount });
      return paid;
    };
    const firstPaid = await pay(payments[0]!, payments[0]!.due);
    await mine(node.anvil.rpcUrl, 2);
    await waitForStatus(first, merchant.apiKey, payments[0]!, 'completed');
    await first.close();

    // While the gateway is down: more than 100 blocks, the other payments' transfers spread among them (one paid in two parts).
    const downFrom = await node.head();
    for (const [i, payment] of payments.slice(1).entries()) {
      await mine(node.anvil.rpcUrl, 15 + 3 * i);
      if (i === 2) {
        const half = payment.due / 2n;
        await pay(payment, half);
        await mine(node.anvil.rpcUrl, 7);
        await pay(payment, payment.due - half);
      } else await pay(payment, payment.due);
    }
    await mine(node.anvil.rpcUrl, 20);
    const head = await node.head();
    assert.ok(head - downFrom >= 100, `${head - downFrom} blocks while down`);

    const second = await startGateway(entry);
    for (const payment of payments) await waitForStatus(second, merchant.apiKey, payment, 'completed', 20_000);
    await waitForCaughtUp(second, entry.name, node);
    const db = dbOf(second);

    // The cursor is at the head, and chain_blocks holds every block from the start to the head, each the child of the one before, as the node has them.
    const cursor = (await cursorOf(db, entry.name))!;
    assert.deepEqual(cursor, { number: head, hash: await node.blockHash(head) });
    const blocks = await db.selectFrom('chain_blocks').select(['number', 'hash', 'parent_hash']).where('chain', '=', entry.name).orderBy('number').execute();
    const startBlock = Number(blocks[0]!.number);
    assert.ok(startBlock < firstPaid.block, `the watch started (block ${startBlock}) before the first transfer (block ${firstPaid.block})`);
    assert.deepEqual(
      blocks.map((block) => Number(block.number)),
      Array.from({ length: head - startBlock + 1 }, (_, i) => startBlock + i),
    );
    for (const [i, block] of blocks.entries()) {
      assert.equal(block.hash, await node.blockHash(Number(block.number)), `block ${block.number}`);
      if (i > 0) assert.equal(block.parent_hash, blocks[i - 1]!.hash, `block ${block.number} follows block ${blocks[i - 1]!.number}`);
    }

    // Each transfer once, confirmed, for exactly what was sent; each payment paid exactly its due and completed once.
    const rows = await transfers(db, entry.name);
    assert.deepEqual(rows.map((row) => row.tx_hash).sort(), sent.map((transfer) => transfer.hash.toLowerCase()).sort());
    assert.ok(rows.every((row) => row.state === 'confirmed'));
    assert.equal(rows.reduce((sum, row) => sum + BigInt(row.amount), 0n), sent.reduce((sum, transfer) => sum + transfer.amount, 0n));
    for (const payment of payments) {
      assert.deepEqual(await amountsOf(db, payment), { paid: payment.due, detected: payment.due });
      assert.equal((await eventTypes(second, merchant.apiKey, payment)).filter((type) => type === 'payment.completed').length, 1);
    }
  });
});

// ---------------------------------------------------------------------------
// A gateway in a process of its own, to be killed outright.

type ChildGateway = Pick<TestGateway, 'request'> & { child: ChildProcess; exited: Promise<void>; output: () => string };

/** Runs `paycrypt serve` with `settings` and nothing else of this process's PayCrypt environment. */
async function spawnGateway(settings: Record<string, string>): Promise<ChildGateway> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('PAYCRYPT_') && !name.startsWith('NODE_TEST') && !['DATABASE_URL', 'NODE_ENV', 'PORT', 'HOST'].includes(name)) env[name] = value;
  }
  const child = spawn(path.join(repoRoot, 'bin', 'paycrypt'), ['serve'], { cwd: repoRoot, env: { ...env, ...settings }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  // Note: up to 90 s, as in the CLI tests: a loaded two-core machine needs that long to start a gateway process.
  const url = await waitFor('the gateway process to listen', async () => {
    if (child.exitCode !== null) throw new Error(`paycrypt serve exited (${child.exitCode}):\n${output}`);
    return /"url":"(http:\/\/[^"]+)","storage"/.exec(output)?.[1];
  }, 90_000);
  async function request(method: string, urlPath: string, options: { key?: string; body?: unknown } = {}) {
    const response = await fetch(`${url}${urlPath}`, {
      method,
      headers: { ...(options.key ? { authorization: `Bearer ${options.key}` } : {}), ...(options.body ? { 'content-type': 'application/json' } : {}) },
      body: options.body ? JSON.stringify(options.body) : null,
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, text, json: text ? JSON.parse(text) : undefined };
  }
  return { child, exited, request, output: () => output };
}

describe('EVM watcher: a crash in the middle of a block', () => {
  it('credits each of 50 transfers in one block exactly once after the gateway process is killed while processing it', async () => {
    const node = await startNode();
    const proxy = await startRpcProxy(node.anvil.rpcUrl);
    const entry = chainEntry(node, proxy.url, { confirmations: 2 });
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-crash-'));
    onCleanup(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
    // Note: with PostgreSQL the gateway's connections carry a name of their own, so the test can find its open transaction.
    const applicationName = `paycrypt-${entry.name}`;
    let databaseUrl: string | undefined;
    if (process.env.DATABASE_URL) {
      const url = new URL(process.env.DATABASE_URL);
      url.searchParams.set('application_name', applicationName);
      databaseUrl = url.toString();
    }
    const settings = {
      ...gatewayEnv(entry),
      NODE_ENV: 'test',
      PORT: '0',
      HOST: '127.0.0.1',
      PAYCRYPT_DATA_DIR: dataDir,
      PAYCRYPT_MASTER_KEY: '11'.repeat(32),
      PAYCRYPT_ADMIN_TOKEN: testAdminToken,
      PAYCRYPT_LOG_LEVEL: 'info',
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    };

    let gateway = await spawnGateway(settings);
    const created = await gateway.request('POST', '/admin/v1/merchants', { key: testAdminToken, body: { name: 'Crash merchant' } });
    assert.equal(created.status, 201, created.text);
    const key: string = created.json.api_key;
    const merchantId: number = created.json.merchant_id;
    const payments: Payment[] = [];
    for (let i = 0; i < 50; i++) payments.push(await createPayment(gateway, key, 10 + i));
    await waitForChainState(gateway, entry.name, 'ok', (chain) => chain.processed_block !== null);

    /** Runs `inspect` on the gateway's database: PostgreSQL directly, or the embedded one while no gateway process holds it. */
    const inspectDatabase = async <T,>(inspect: (db: Db) => Promise<T>): Promise<T> => {
      const storage = await createStorage(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL, poolSize: 2 } : { dataDir: path.join(dataDir, 'pglite') });
      try {
        return await inspect(storage.db);
      } finally {
        await storage.close();
      }
    };
    const batchRows = (db: Db) => transfers(db, entry.name);

    // The pause point. PostgreSQL: the test holds one of the payments' rows (FOR UPDATE).
    // The block's transaction writes the cursor and the transfers, then locks the payments
    // they pay to settle them: it waits there for the test, with its writes made and
    // nothing committed. Embedded PGlite admits one process, so the test cannot lock
    // anything in it: the proxy keeps the node's answer with the block's logs, and the
    // gateway waits in the middle of reading the block.
    let blocker: pg.Client | undefined;
    if (process.env.DATABASE_URL) {
      const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
      await client.connect();
      onCleanup(() => client.end());
      await client.query('begin');
      await client.query('select id from payments where id = $1 for update', [payments[0]!.id]);
      blocker = client;
    } else {
      const paymentTopics = new Set(payments.map((payment) => `0x${payment.address.slice(2).padStart(64, '0')}`));
      proxy.hold = (call, result) =>
        call.method === 'eth_getLogs' && Array.isArray(result) && result.some((log: { topics: string[] }) => paymentTopics.has(log.topics[2]!.toLowerCase()));
    }
    const batch = await node.payMany(
      payments.map((payment) => payment.address),
      payments.map((payment) => payment.due),
    );
    await mine(node.anvil.rpcUrl, 2);
    if (blocker) {
      await waitFor('the block\'s transaction to have written its transfers and to wait for the payment\'s row', async () => {
        const { rows } = await blocker.query(
          `select a.pid from pg_stat_activity a
           where a.application_name = $1 and pg_backend_pid() = any(pg_blocking_pids(a.pid))
             and exists (select 1 from pg_locks l where l.pid = a.pid and l.granted and l.relation = 'chain_transfers'::regclass and l.mode = 'RowExclusiveLock')`,
          [applicationName],
        );
        return rows.length > 0;
      }, 30_000);
    } else {
      await waitFor('the node to hold the answer with the block\'s logs', async () => proxy.hanging() > 0, 30_000);
    }
    gateway.child.kill('SIGKILL');
    await gateway.exited;
    assert.equal(gateway.child.signalCode, 'SIGKILL');
    // Note: the killed process's transaction can no longer commit: its connection is gone.
    await blocker?.query('rollback');
    proxy.hold = undefined;

    // The block is all or nothing: killed before its transaction committed, none of its transfers is there, and no payment moved.
    const afterKill = await inspectDatabase(async (db) => ({
      rows: await batchRows(db),
      cursor: (await cursorOf(db, entry.name))!,
      moved: await db.selectFrom('payments').select('id').where('merchant_id', '=', merchantId).where('amount_detected', '<>', '0').execute(),
    }));
    assert.deepEqual(afterKill.rows, [], 'killed before the block committed');
    assert.deepEqual(afterKill.moved, []);
    assert.ok(afterKill.cursor.number < batch.block, `the cursor (${afterKill.cursor.number}) is before block ${batch.block}`);

    gateway = await spawnGateway(settings);
    await waitFor(
      'all 50 payments to complete after the restart',
      async () => (await gateway.request('GET', '/api/v1/payments?status=completed&per_page=1', { key })).json.pagination.total === 50,
      60_000,
    );
    gateway.child.kill('SIGTERM');
    await gateway.exited;

    await inspectDatabase(async (db) => {
      const rows = await batchRows(db);
      assert.equal(rows.length, 50, 'one row per transfer');
      assert.ok(rows.every((row) => row.tx_hash === batch.hash.toLowerCase() && row.block_number === batch.block && row.state === 'confirmed'));
      assert.equal(new Set(rows.map((row) => row.log_index)).size, 50);
      assert.deepEqual(rows.map((row) => row.payment_id).sort((a, b) => a! - b!), payments.map((payment) => payment.id).sort((a, b) => a - b));
      assert.equal(rows.reduce((sum, row) => sum + BigInt(row.amount), 0n), payments.reduce((sum, payment) => sum + payment.due, 0n));
      for (const payment of payments) assert.deepEqual(await amountsOf(db, payment), { paid: payment.due, detected: payment.due }, `payment ${payment.id}`);
      const completed = await db
        .selectFrom('events')
        .select(['payment_id', (eb) => eb.fn.countAll<number>().as('count')])
        .where('merchant_id', '=', merchantId)
        .where('type', '=', 'payment.completed')
        .groupBy('payment_id')
        .execute();
      assert.equal(completed.length, 50);
      assert.ok(completed.every((row) => Number(row.count) === 1), 'one payment.completed each');
    });
  });
});

describe('EVM watcher: two gateway processes on one PostgreSQL', () => {
  it('has exactly one leader per chain, credits each transfer once, and the other takes over when the leader goes', { skip: !process.env.DATABASE_URL && 'needs DATABASE_URL (embedded PGlite admits one process)' }, async () => {
    const node = await startNode();
    const entry = chainEntry(node, node.anvil.rpcUrl, { confirmations: 2 });
    const gateways = [await startGateway(entry), await startGateway(entry)];
    const states = await waitFor('one gateway to lead and the other to stand by', async () => {
      const found = await Promise.all(gateways.map(async (t) => (await health(t, entry.name)).chain.state));
      return [...found].sort().join() === 'ok,standby' ? found : undefined;
    });
    const leader = gateways[states.indexOf('ok')]!;
    const standby = gateways[states.indexOf('standby')]!;
    const standbyHealth = await health(standby, entry.name);
    assert.equal(standbyHealth.overall, 'ok', 'standing by is healthy');

    const merchant = await leader.createMerchant('Two-process merchant');
    const throughLeader = await createPayment(leader, merchant.apiKey, 21);
    const throughStandby = await createPayment(standby, merchant.apiKey, 22);
    const sent = [await node.pay(throughLeader.address, throughLeader.due), await node.pay(throughStandby.address, throughStandby.due)];
    await mine(node.anvil.rpcUrl, 1);
    for (const payment of [throughLeader, throughStandby]) {
      await waitForStatus(leader, merchant.apiKey, payment, 'completed');
      assert.equal(await paymentStatus(standby, merchant.apiKey, payment), 'completed', 'both processes serve the same payments');
    }
    // Still one leader after the work.
    assert.equal((await health(standby, entry.name)).chain.state, 'standby');

    await leader.close();
    const before = Date.now();
    await waitForChainState(standby, entry.name, 'ok', () => true, 5_000);
    const tookOverMs = Date.now() - before;
    // Note: a standby tries the lock every 5 poll intervals.
    assert.ok(tookOverMs <= 20 * entry.poll_interval_ms, `took over in ${tookOverMs} ms`);

    const afterTakeover = await createPayment(standby, merchant.apiKey, 23);
    sent.push(await node.pay(afterTakeover.address, afterTakeover.due));
    await mine(node.anvil.rpcUrl, 1);
    await waitForStatus(standby, merchant.apiKey, afterTakeover, 'completed');
    await waitForCaughtUp(standby, entry.name, node);

    const rows = await transfers(dbOf(standby), entry.name);
    assert.deepEqual(rows.map((row) => row.tx_hash).sort(), sent.map((transfer) => transfer.hash.toLowerCase()).sort(), 'each transfer once');
    for (const payment of [throughLeader, throughStandby, afterTakeover]) {
      assert.deepEqual(await amountsOf(dbOf(standby), payment), { paid: payment.due, detected: payment.due });
      assert.equal((await eventTypes(standby, merchant.apiKey, payment)).filter((type) => type === 'payment.completed').length, 1);
    }
  });
});

describe('EVM watcher: a misbehaving node', () => {
  it('starts with the node down: the chain is degraded with an error, the API serves, and it recovers and credits when the node is back', async () => {
    const node = await startNode();
    const proxy = await startRpcProxy(node.anvil.rpcUrl);
    await proxy.down();
    const entry = chainEntry(node, proxy.url, { confirmations: 2 });
    const t = await startGateway(entry);

    const degraded = await waitForChainState(t, entry.name, 'degraded', (chain) => chain.error !== null);
    assert.match(degraded.error!, /HTTP request failed|fetch failed|ECONNREFUSED/i);
    const report = await health(t, entry.name);
    assert.equal(report.status, 200, 'a degraded chain does not take the API down');
    assert.equal(report.overall, 'degraded');

    const merchant = await t.createMerchant('Node-down merchant');
    const payment = await createPayment(t, merchant.apiKey, 12);
    await node.pay(payment.address, payment.due);
    await mine(node.anvil.rpcUrl, 1);
    assert.equal(await paymentStatus(t, merchant.apiKey, payment), 'pending');

    await proxy.up();
    await waitForChainState(t, entry.name, 'ok', (chain) => chain.error === null, 10_000);
    await waitForStatus(t, merchant.apiKey, payment, 'completed');
    assert.equal((await health(t, entry.name)).overall, 'ok');
    assert.equal((await transfers(dbOf(t), entry.name)).length, 1);
  });

  it('credits nothing from logs that belong to another block, and credits once when the node answers consistently', async () => {
    const node = await startNode();
    const proxy = await startRpcProxy(node.anvil.rpcUrl);
    const entry = chainEntry(node, proxy.url, { confirmations: 2 });
    const t = await startGateway(entry);
    const merchant = await t.createMerchant('Tampered-logs merchant');
    const payment = await createPayment(t, merchant.apiKey, 13);
    await waitForChainState(t, entry.name, 'ok', (chain) => chain.processed_block !== null);

    let tampered = 0;
    // Logs that pay the payment's address come back claiming another block hash.
    const paysPayment = (log: { topics: string[] }) => log.topics[2]?.toLowerCase() === `0x${payment.address.slice(2).padStart(64, '0')}`;
    proxy.tamper = (call, result) => {
      if (call.method !== 'eth_getLogs' || !Array.isArray(result) || !result.some(paysPayment)) return result;
      tampered++;
      return result.map((log: { blockHash: string }) => ({ ...log, blockHash: `0x${'ab'.repeat(32)}` }));
    };
    const paid = await node.pay(payment.address, payment.due);
    await mine(node.anvil.rpcUrl, 2);
    const degraded = await waitForChainState(t, entry.name, 'degraded', (chain) => chain.error !== null && tampered >= 2);
    assert.match(degraded.error!, new RegExp(`logs for block ${paid.block} carry block ${paid.block} 0x(ab){32}`));
    assert.deepEqual(await transfers(dbOf(t), entry.name), []);
    assert.deepEqual(await amountsOf(dbOf(t), payment), { paid: 0n, detected: 0n });
    assert.ok((await cursorOf(dbOf(t), entry.name))!.number < paid.block, 'the block was not taken as processed');
    assert.equal(await paymentStatus(t, merchant.apiKey, payment), 'pending');

    proxy.tamper = undefined;
    await waitForStatus(t, merchant.apiKey, payment, 'completed', 20_000);
    await waitForChainState(t, entry.name, 'ok', (chain) => chain.error === null);
    const rows = await transfers(dbOf(t), entry.name);
    assert.deepEqual(rows.map((row) => [row.tx_hash, row.block_number, row.amount]), [[paid.hash.toLowerCase(), paid.block, payment.due.toString()]]);
  });

  it('credits nothing while the node hangs on a call, and credits once after it drops the connection and answers again', async () => {
    const node = await startNode();
    const proxy = await startRpcProxy(node.anvil.rpcUrl);
    const entry = chainEntry(node, proxy.url, { confirmations: 2 });
    const t = await startGateway(entry);
    const merchant = await t.createMerchant('Hanging-node merchant');
    const payment = await createPayment(t, merchant.apiKey, 14);
    await waitForChainState(t, entry.name, 'ok', (chain) => chain.processed_block !== null);

    proxy.fault = (call) => (call.method === 'eth_getLogs' ? 'hang' : undefined);
    const paid = await node.pay(payment.address, payment.due);
    await mine(node.anvil.rpcUrl, 2);
    await waitFor('the watcher to wait on the node', async () => proxy.hanging() > 0);
    assert.deepEqual(await transfers(dbOf(t), entry.name), []);
    assert.equal(await paymentStatus(t, merchant.apiKey, payment), 'pending');

    proxy.fault = undefined;
    proxy.dropHanging();
    await waitForStatus(t, merchant.apiKey, payment, 'completed');
    const rows = await transfers(dbOf(t), entry.name);
    assert.deepEqual(rows.map((row) => row.tx_hash), [paid.hash.toLowerCase()]);
    assert.deepEqual(await amountsOf(dbOf(t), payment), { paid: payment.due, detected: payment.due });
  });

  it('undoes nothing when the node goes backwards, and goes on when it catches up', async () => {
    const node = await startNode();
    const proxy = await startRpcProxy(node.anvil.rpcUrl);
    const entry = chainEntry(node, proxy.url, { confirmations: 2 });
    const t = await startGateway(entry);
    const merchant = await t.createMerchant('Backwards-node merchant');
    const first = await createPayment(t, merchant.apiKey, 15);
    await waitForChainState(t, entry.name, 'ok', (chain) => chain.processed_block !== null);
    await node.pay(first.address, first.due);
    await mine(node.anvil.rpcUrl, 3);
    await waitForStatus(t, merchant.apiKey, first, 'completed');
    const head = await waitForCaughtUp(t, entry.name, node);
    const cursor = await cursorOf(dbOf(t), entry.name);
    const before = await transfers(dbOf(t), entry.name);

    // The node now claims a head 3 blocks back (a node restarted from an older snapshot, or a lagging one behind a load balancer).
    let lowered = 0;
    proxy.tamper = (call, result) => {
      if (call.method !== 'eth_blockNumber') return result;
      lowered++;
      return numberToHex(head - 3);
    };
    const second = await createPayment(t, merchant.apiKey, 16);
    const before2 = lowered;
    await waitFor('the watcher to see the lower head a few times', async () => lowered >= before2 + 3);
    const behind = await waitForChainState(t, entry.name, 'degraded', (chain) => chain.head === head - 3);
    assert.equal(behind.processed_block, head, 'what was processed stays processed');
    assert.match(behind.error!, new RegExp(`the node's head ${head - 3} is behind the last processed block ${head}`));
    assert.deepEqual(await cursorOf(dbOf(t), entry.name), cursor, 'the cursor stays where it was');
    assert.deepEqual(await transfers(dbOf(t), entry.name), before, 'no transfer undone');
    assert.equal(await paymentStatus(t, merchant.apiKey, first), 'completed');
    assert.ok(!(await eventTypes(t, merchant.apiKey, first)).includes('payment.reversed'));

    proxy.tamper = undefined;
    await node.pay(second.address, second.due);
    await mine(node.anvil.rpcUrl, 1);
    await waitForStatus(t, merchant.apiKey, second, 'completed');
    await waitForCaughtUp(t, entry.name, node);
    assert.equal((await transfers(dbOf(t), entry.name)).length, 2);
    assert.deepEqual(await amountsOf(dbOf(t), first), { paid: first.due, detected: first.due });
  });

  it('does not undo a transfer that is still on the chain when a block lookup fails while it looks for a fork', async () => {
    const node = await startNode();
    const proxy = await startRpcProxy(node.anvil.rpcUrl);
    const entry = chainEntry(node, proxy.url, { confirmations: 2, reorg_window: 10 });
    const t = await startGateway(entry);
    const merchant = await t.createMerchant('Flaky-fork merchant');
    const payment = await createPayment(t, merchant.apiKey, 17);
    await waitForChainState(t, entry.name, 'ok', (chain) => chain.processed_block !== null);
    const paid = await node.pay(payment.address, payment.due);
    await mine(node.anvil.rpcUrl, 1);
    await waitForStatus(t, merchant.apiKey, payment, 'completed');
    await waitForCaughtUp(t, entry.name, node);

    // The block after the transfer's is replaced; the transfer's own block stays. Looking back for
    // the fork, the node fails once to return the transfer's block.
    let failed = 0;
    proxy.fault = (call) => {
      if (call.method === 'eth_getBlockByNumber' && call.params?.[0] === numberToHex(paid.block) && failed === 0) {
        failed++;
        return { error: { code: -32603, message: 'internal error: backend temporarily unavailable' } };
      }
      return undefined;
    };
    await anvilReorg(node.anvil.rpcUrl, 1);
    await mine(node.anvil.rpcUrl, 1);
    await waitFor('the watcher to meet the failure', async () => failed === 1);
    await waitForCaughtUp(t, entry.name, node);

    assert.equal(await paymentStatus(t, merchant.apiKey, payment), 'completed');
    const events = await eventTypes(t, merchant.apiKey, payment);
    assert.ok(!events.includes('payment.reversed'), `no reversal: ${events.join(', ')}`);
    assert.equal(events.filter((type) => type === 'payment.completed').length, 1);
    const rows = await transfers(dbOf(t), entry.name);
    assert.deepEqual(rows.map((row) => [row.tx_hash, row.block_number, row.state]), [[paid.hash.toLowerCase(), paid.block, 'confirmed']]);
  });

  it('credits nothing from a node that turns into another chain (another chain id, or the same id with another history), and resumes on the right one', async () => {
    const node = await startNode();
    const proxy = await startRpcProxy(node.anvil.rpcUrl);
    const entry = chainEntry(node, proxy.url, { confirmations: 2, reorg_window: 5 });
    const t = await startGateway(entry);
    const merchant = await t.createMerchant('Switched-node merchant');
    const first = await createPayment(t, merchant.apiKey, 18);
    const second = await createPayment(t, merchant.apiKey, 19);
    await waitForChainState(t, entry.name, 'ok', (chain) => chain.processed_block !== null);
    await node.pay(first.address, first.due);
    await mine(node.anvil.rpcUrl, 8);
    await waitForStatus(t, merchant.apiKey, first, 'completed');
    const cursor = (await cursorOf(dbOf(t), entry.name))!;
    const firstRows = await transfers(dbOf(t), entry.name);
    const unchanged = async () => {
      assert.deepEqual(await transfers(dbOf(t), entry.name), firstRows, 'nothing credited, nothing undone');
      assert.deepEqual(await amountsOf(dbOf(t), second), { paid: 0n, detected: 0n });
      assert.equal(await paymentStatus(t, merchant.apiKey, first), 'completed');
    };

    // Another chain id. Its token sits at the same address (same deployer, same nonce) and pays the second payment's address.
    const otherChain = await startNode({ chainId: 31_338 });
    assert.equal(otherChain.token, node.token);
    await otherChain.pay(second.address, second.due);
    await mine(otherChain.anvil.rpcUrl, 3);
    const chainIdCalls = proxy.calls('eth_chainId');
    proxy.target = otherChain.anvil.rpcUrl;
    const wrongId = await waitForChainState(t, entry.name, 'degraded', (chain) => chain.error !== null && proxy.calls('eth_chainId') > chainIdCalls);
    assert.match(wrongId.error!, new RegExp(`serves chain id 31338, configured ${node.anvil.chainId}`));
    await unchanged();

    // The same chain id with another history: far behind our cursor, then at a height we still hold a block of, then ahead of our cursor.
    const otherHistory = await startNode();
    assert.equal(otherHistory.token, node.token);
    await otherHistory.pay(second.address, second.due);
    assert.ok((await otherHistory.head()) < cursor.number - entry.reorg_window);
    /** Waits for the watcher to have looked at the node as it now is, and to report `error`; checks nothing changed. */
    const watched = async (state: string, error: RegExp) => {
      const headCalls = proxy.calls('eth_blockNumber');
      await waitForChainState(t, entry.name, state, (chain) => error.test(chain.error ?? '') && proxy.calls('eth_blockNumber') > headCalls);
      await unchanged();
    };
    proxy.target = otherHistory.anvil.rpcUrl;
    await watched('degraded', new RegExp(`the node's head ${await otherHistory.head()} is behind the last processed block ${cursor.number}`));

    await mine(otherHistory.anvil.rpcUrl, cursor.number - 1 - (await otherHistory.head()));
    await watched('degraded', new RegExp(`reorg deeper than the reorg window of ${entry.reorg_window} blocks`));

    await mine(otherHistory.anvil.rpcUrl, 6);
    assert.ok((await otherHistory.head()) > cursor.number);
    await watched('degraded', new RegExp(`reorg deeper than the reorg window of ${entry.reorg_window} blocks`));

    proxy.target = node.anvil.rpcUrl;
    await waitForChainState(t, entry.name, 'ok', (chain) => chain.error === null, 20_000);
    const paid = await node.pay(second.address, second.due);
    await mine(node.anvil.rpcUrl, 1);
    await waitForStatus(t, merchant.apiKey, second, 'completed');
    const rows = await transfers(dbOf(t), entry.name);
    assert.equal(rows.length, 2);
    assert.equal(rows[1]!.tx_hash, paid.hash.toLowerCase());
  });
});

describe('EVM watcher: chain reorganizations', () => {
  it('a reorg deeper than the confirmations but within the window marks the transfer removed and reverses the payment; mined again, it counts once', async () => {
    const node = await startNode();
    const entry = chainEntry(node, node.anvil.rpcUrl, { confirmations: 2, reorg_window: 10 });
    const t = await startGateway(entry);
    const merchant = await t.createMerchant('Reorg merchant');
    const payment = await createPayment(t, merchant.apiKey, 24);
    await waitForChainState(t, entry.name, 'ok', (chain) => chain.processed_block !== null);
    const paid = await node.pay(payment.address, payment.due);
    const raw = (await anvilRpc(node.anvil.rpcUrl, 'eth_getRawTransactionByHash', [paid.hash])) as Hex;
    await mine(node.anvil.rpcUrl, 3);
    await waitForStatus(t, merchant.apiKey, payment, 'completed');
    await waitForCaughtUp(t, entry.name, node);

    // Four blocks replaced, the transfer's among them: deeper than the 2 confirmations that completed the payment.
    const head = await node.head();
    assert.equal(head - paid.block + 1, 4);
    await anvilReorg(node.anvil.rpcUrl, 4);
    await mine(node.anvil.rpcUrl, 1);
    await waitFor('the transfer to be marked removed', async () => (await transfers(dbOf(t), entry.name))[0]?.state === 'removed');
    await waitForStatus(t, merchant.apiKey, payment, 'pending');
    assert.deepEqual(await amountsOf(dbOf(t), payment), { paid: 0n, detected: 0n });
    const events = await eventTypes(t, merchant.apiKey, payment);
    assert.equal(events.filter((type) => type === 'payment.reversed').length, 1, events.join(', '));
    assert.ok(events.indexOf('payment.reversed') > events.indexOf('payment.completed'), events.join(', '));
    await waitForCaughtUp(t, entry.name, node);

    // The same signed transaction mined again: the same transfer comes back, and is counted once.
    await anvilRpc(node.anvil.rpcUrl, 'eth_sendRawTransaction', [raw]);
    await mine(node.anvil.rpcUrl, 1);
    await waitForStatus(t, merchant.apiKey, payment, 'completed');
    const rows = await transfers(dbOf(t), entry.name);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.tx_hash, paid.hash.toLowerCase());
    assert.equal(rows[0]!.state, 'confirmed');
    assert.ok(rows[0]!.block_number > paid.block);
    assert.deepEqual(await amountsOf(dbOf(t), payment), { paid: payment.due, detected: payment.due });
    const after = await eventTypes(t, merchant.apiKey, payment);
    assert.equal(after.filter((type) => type === 'payment.reversed').length, 1, after.join(', '));
    assert.equal(after.filter((type) => type === 'payment.completed').length, 2, after.join(', '));
    assert.equal(after.at(-1), 'payment.completed', after.join(', '));
  });

  it('a reorg deeper than the reorg window stops crediting with a degraded chain that says so', async () => {
    const node = await startNode();
    const proxy = await startRpcProxy(node.anvil.rpcUrl);
    const entry = chainEntry(node, proxy.url, { confirmations: 2, reorg_window: 3 });
    const t = await startGateway(entry);
    const merchant = await t.createMerchant('Deep-reorg merchant');
    const first = await createPayment(t, merchant.apiKey, 25);
    const second = await createPayment(t, merchant.apiKey, 26);
    await waitForChainState(t, entry.name, 'ok', (chain) => chain.processed_block !== null);
    await node.pay(first.address, first.due);
    await mine(node.anvil.rpcUrl, 5);
    await waitForStatus(t, merchant.apiKey, first, 'completed');
    await waitForCaughtUp(t, entry.name, node);
    const firstRows = await transfers(dbOf(t), entry.name);

    await anvilReorg(node.anvil.rpcUrl, 6);
    await node.pay(second.address, second.due);
    await mine(node.anvil.rpcUrl, 2);
    const degraded = await waitForChainState(t, entry.name, 'degraded', (chain) => chain.error !== null);
    assert.match(degraded.error!, /reorg deeper than the reorg window of 3 blocks/);
    const report = await health(t, entry.name);
    assert.equal(report.overall, 'degraded');
    assert.equal(report.status, 200);

    // It keeps refusing: retries look at the node, credit nothing, and never report the chain "ok" in between.
    const blockCalls = proxy.calls('eth_getBlockByNumber');
    const seen = new Set<string>();
    await waitFor('the watcher to retry', async () => {
      seen.add((await health(t, entry.name)).chain.state);
      return proxy.calls('eth_getBlockByNumber') >= blockCalls + 10;
    });
    assert.deepEqual([...seen], ['degraded']);
    assert.deepEqual(await amountsOf(dbOf(t), second), { paid: 0n, detected: 0n });
    assert.deepEqual(await transfers(dbOf(t), entry.name), firstRows);
  });
});
