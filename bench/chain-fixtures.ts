import { execFileSync } from 'node:child_process';
import type pg from 'pg';
import { type Address, createPublicClient, createWalletClient, type Hex, http, parseUnits, type PublicClient } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { type Anvil, anvilBinaryPath, anvilChain, anvilRpc } from '../src/chains/evm/anvil.ts';
import { deployTestToken, testTokenAbi } from '../src/chains/evm/test-token.ts';
import { hardfork, startBenchAnvil } from './chain-anvil.ts';

/**
 * What the chain benchmark stands on: an anvil node with a USDT test token
 * and a payer holding plenty of it, payments created through the PayCrypt v1
 * API, and the SQL that pads the watched-address table.
 */

export const tokenDecimals = 6;

/** Above anvil's default of 30 M gas: the throughput block carries about 126 M (5,000 first-time token balances). */
const blockGasLimit = 1_000_000_000n;

/** Fixed fees, so that no transaction asks the node for an estimate while blocks are mined by hand. */
const fees = { maxFeePerGas: 100_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n };

export type BenchChain = {
  anvil: Anvil;
  anvilVersion: string;
  token: Address;
  reader: PublicClient;
  payer: ReturnType<typeof createPayer>;
};

function createPayer(anvil: Anvil) {
  return createWalletClient({ account: privateKeyToAccount(anvil.accounts[0]!.privateKey), chain: anvilChain(anvil), transport: http(anvil.rpcUrl) });
}

/** Anvil on 127.0.0.1 with one USDT token; its first dev account owns the token and a billion USDT. */
export async function startBenchChain(): Promise<BenchChain> {
  const anvil = await startBenchAnvil();
  try {
    const reader = createPublicClient({ chain: anvilChain(anvil), transport: http(anvil.rpcUrl), cacheTime: 0, pollingInterval: 20 }) as PublicClient;
    const payer = createPayer(anvil);
    const token = await deployTestToken(payer, reader, { name: 'Tether USD (bench)', symbol: 'USDT', decimals: tokenDecimals });
    const minted = await payer.writeContract({ address: token, abi: testTokenAbi, functionName: 'mint', args: [payer.account.address, parseUnits('1000000000', tokenDecimals)] });
    await reader.waitForTransactionReceipt({ hash: minted });
    await anvilRpc(anvil.rpcUrl, 'evm_setBlockGasLimit', [`0x${blockGasLimit.toString(16)}`]);
    const version = execFileSync(anvilBinaryPath(), ['--version'], { encoding: 'utf8' }).split('\n')[0]!.replace(/^anvil Version:\s*/, '').trim();
    const anvilVersion = `anvil ${version} (--hardfork ${hardfork})`;
    return { anvil, anvilVersion, token, reader, payer };
  } catch (error) {
    await anvil.stop();
    throw error;
  }
}

/**
 * Sends token transfers from the payer without waiting for them to be mined
 * (automine is off while measuring): the nonce is counted here and gas and
 * fees are fixed, so a send is one `eth_sendRawTransaction`.
 */
export async function createTokenSender(chain: BenchChain) {
  let nonce = await chain.reader.getTransactionCount({ address: chain.payer.account.address, blockTag: 'pending' });
  const common = { address: chain.token, abi: testTokenAbi, chain: chain.payer.chain, ...fees } as const;
  return {
    transfer(to: string, amount: bigint): Promise<Hex> {
      return chain.payer.writeContract({ ...common, functionName: 'transfer', args: [to as Address, amount], nonce: nonce++, gas: 100_000n });
    },
    /** One Transfer event per recipient; about 25,200 gas each to a fresh address, so 500 fit well under 16 M. */
    batchTransfer(to: readonly string[], amounts: readonly bigint[]): Promise<Hex> {
      return chain.payer.writeContract({ ...common, functionName: 'batchTransfer', args: [to as Address[], [...amounts]], nonce: nonce++, gas: 16_000_000n });
    },
  };
}

// ---------------------------------------------------------------------------
// The PayCrypt v1 API, as a merchant's server calls it.

export type PaymentView = { id: number; status: string; settlement: string; address: string };

export type PaymentsApi = {
  create(): Promise<PaymentView>;
  get(id: number): Promise<PaymentView>;
};

// Note: the amount is written as in the API docs, `10.00`; JSON.stringify would shorten it to `10`.
const createBody = '{"amount": 10.00, "currency": "USD", "method": "crypto", "type": "deposit", "crypto_currency": "USDT", "crypto_network": "ERC20"}';

export function paymentsApi(baseUrl: string, apiKey: string): PaymentsApi {
  const headers = { authorization: `Bearer ${apiKey}` };
  return {
    async create() {
      const response = await fetch(`${baseUrl}/api/v1/payments`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: createBody });
      const text = await response.text();
      if (response.status !== 201) throw new Error(`POST /api/v1/payments answered ${response.status}: ${text}`);
      return JSON.parse(text) as PaymentView;
    },
    async get(id) {
      const response = await fetch(`${baseUrl}/api/v1/payments/${id}`, { headers });
      const text = await response.text();
      if (response.status !== 200) throw new Error(`GET /api/v1/payments/${id} answered ${response.status}: ${text}`);
      return JSON.parse(text) as PaymentView;
    },
  };
}

/** Creates `count` payments one after the other; returns their ids in creation order. */
export async function createPayments(api: PaymentsApi, count: number): Promise<number[]> {
  const ids: number[] = [];
  for (let index = 0; index < count; index++) ids.push((await api.create()).id);
  return ids;
}

// ---------------------------------------------------------------------------
// Straight SQL, on the benchmark's own connection.

export type DuePayment = { id: number; address: string; amount: bigint };

/** Each payment's deposit address and the exact amount due, in base units, as the gateway stored them. */
export async function duePayments(client: pg.Client, ids: readonly number[]): Promise<DuePayment[]> {
  const { rows } = await client.query<{ id: string; address: string; crypto_amount: string }>(
    'select id, address, crypto_amount from payments where id = any($1::bigint[]) order by id',
    [ids],
  );
  if (rows.length !== ids.length) throw new Error(`expected ${ids.length} payments, found ${rows.length}`);
  return rows.map((row) => ({ id: Number(row.id), address: row.address, amount: BigInt(row.crypto_amount) }));
}

/**
 * Copies one payment made through the API `count` times, each copy with an
 * address of its own in `deposit_addresses`, as the API would have left it;
 * returns the copies' ids.
 *
 * @dev Every column but the id, the public transaction id and the address is
 * taken from the template, read from the catalog so that a column added
 * later is copied too. The addresses are md5-derived hex and their
 * derivation indexes start at 2·10⁹: the watcher only looks them up, it never
 * derives them. Set-up time only, in place of 5,000 API requests.
 */
export async function clonePayment(client: pg.Client, input: { templateId: number; count: number }): Promise<number[]> {
  const { rows: columns } = await client.query<{ name: string }>(
    `select column_name as name from information_schema.columns
     where table_schema = current_schema() and table_name = 'payments' and column_name not in ('id', 'transaction_id', 'address')
       and is_generated = 'NEVER'
     order by ordinal_position`,
  );
  const copied = columns.map((column) => client.escapeIdentifier(column.name)).join(', ');
  const { rows } = await client.query<{ id: string }>(
    `with copies as (
       insert into payments (${copied}, transaction_id, address)
       select ${copied}, 'pay_benchcopy' || lpad(g::text, 8, '0'), '0x' || md5('copy-' || g) || left(md5('copy-padding-' || g), 8)
       from payments, generate_series(1, $2::int) as g
       where id = $1
       returning id, chain, address, merchant_id, status
     ),
     -- Note: counted as insertPayment counts the payments it writes (see payment-counts.ts).
     counted as (
       insert into payment_count_changes (merchant_id, status, change) select merchant_id, status, count(*) from copies group by merchant_id, status
     )
     insert into deposit_addresses (chain, address, derivation_index, merchant_id, payment_id)
     select chain, address, 2000000000 + row_number() over (order by id), merchant_id, id from copies
     returning payment_id as id`,
    [input.templateId, input.count],
  );
  if (rows.length !== input.count) throw new Error(`copied payment ${input.templateId} ${rows.length} times, expected ${input.count}`);
  return rows.map((row) => Number(row.id)).sort((a, b) => a - b);
}

/**
 * Pads `deposit_addresses` on `chain` to `total` rows with addresses of a
 * merchant of their own and no payment, then VACUUM ANALYZE, as a table that
 * grew over time would be. Returns how many rows were added.
 *
 * @dev The addresses are md5-derived hex, spread over the whole key space
 * like real ones; their derivation indexes start at 10⁹, far from the
 * gateway's own.
 */
export async function padWatchedAddresses(client: pg.Client, input: { chain: string; total: number }): Promise<number> {
  const existing = Number((await client.query<{ count: string }>('select count(*) from deposit_addresses where chain = $1', [input.chain])).rows[0]!.count);
  const missing = input.total - existing;
  if (missing <= 0) return 0;
  const merchant = (await client.query<{ id: string }>(`insert into merchants (name) values ('Watched-address filler') returning id`)).rows[0]!.id;
  await client.query(
    `insert into deposit_addresses (chain, address, derivation_index, merchant_id, payment_id)
     select $1, '0x' || md5('filler-' || g) || left(md5('padding-' || g), 8), 1000000000 + g, $2, null
     from generate_series(1, $3::int) as g`,
    [input.chain, merchant, missing],
  );
  await client.query('vacuum analyze deposit_addresses');
  return missing;
}

export async function cursorOf(client: pg.Client, chain: string): Promise<number | undefined> {
  const { rows } = await client.query<{ block_number: string }>('select block_number from chain_cursors where chain = $1', [chain]);
  return rows[0] ? Number(rows[0].block_number) : undefined;
}
