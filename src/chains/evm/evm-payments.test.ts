import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { type Address, createPublicClient, createWalletClient, encodeFunctionData, type Hex, http, parseEther, parseUnits, type PublicClient } from 'viem';
import { mnemonicToAccount, privateKeyToAccount } from 'viem/accounts';
import type { Db } from '../../storage/database.ts';
import { startTestGateway, type TestGateway } from '../../testing/harness.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../../testing/webhook-receiver.ts';
import { anvilChain, anvilReorg, anvilRpc, type Anvil, mine, startAnvil } from './anvil.ts';
import { deployTestToken, testTokenAbi } from './test-token.ts';

/**
 * The on-chain payment flow end to end, as a merchant sees it: a real anvil
 * node with real ERC-20 contracts, a real gateway watching it as network
 * `ERC20`, payments created and read over the PayCrypt v1 API, events over
 * `/api/v1/events`, webhooks at a real receiver.
 *
 * @dev Tests run one after the other on one chain; each pays its own
 * payment's address. Reorgs only replace blocks the reorging test mined
 * itself. The chain's name is unique per run, because a shared PostgreSQL
 * database keys chain cursors and address counters by chain name.
 */

const confirmations = 3;
const reorgWindow = 10;
const chainName = `erc20-payments-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
const mnemonic = generateMnemonic(wordlist);

let anvil: Anvil;
let t: TestGateway;
let db: Db;
let reader: PublicClient;
let wallet: ReturnType<typeof createPayerWallet>;
let usdt: Address;
let usdc: Address;
let key: string;

function createPayerWallet(node: Anvil) {
  return createWalletClient({ chain: anvilChain(node), account: privateKeyToAccount(node.accounts[0]!.privateKey), transport: http(node.rpcUrl), cacheTime: 0 });
}

type PaymentJson = {
  id: number;
  status: string;
  address: string;
  chain: string;
  settlement: string;
  crypto_amount: number;
  crypto_currency: string;
  crypto_network: string;
  required_confirmations: number;
  amount_due: number;
  amount_paid: number;
  amount_detected: number;
  amount_remaining: number;
  expires_at: string;
  created_at: string;
};

async function createPayment(body: Record<string, unknown>, apiKey = key): Promise<PaymentJson> {
  const response = await t.request('POST', '/api/v1/payments', {
    key: apiKey,
    body: { amount: 10, currency: 'USD', method: 'crypto', type: 'deposit', crypto_currency: 'USDT', crypto_network: 'ERC20', ...body },
  });
  assert.equal(response.status, 201, response.text);
  return response.json;
}

async function getPayment(id: number, apiKey = key): Promise<PaymentJson> {
  const response = await t.request('GET', `/api/v1/payments/${id}`, { key: apiKey });
  assert.equal(response.status, 200, response.text);
  return response.json;
}

/** Polls until `done` holds; fails with the last value seen after `timeoutMs`. */
async function until<T>(label: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}; last seen: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const paymentUntil = (id: number, label: string, done: (payment: PaymentJson) => boolean, apiKey = key) =>
  until(`payment ${id}: ${label}`, () => getPayment(id, apiKey), done);

/** The payment's event types, oldest first, as `GET /api/v1/events` lists them. */
async function eventTypes(paymentId: number, apiKey = key): Promise<string[]> {
  const response = await t.request('GET', `/api/v1/events?payment_id=${paymentId}&limit=100`, { key: apiKey });
  assert.equal(response.status, 200, response.text);
  return (response.json.data as Array<{ type: string }>).map((event) => event.type).reverse();
}

/** The gateway's record of a transfer, once its watcher has counted `confirmations` for it. */
async function transferRows(txHash: Hex) {
  return db.selectFrom('chain_transfers').selectAll().where('chain', '=', chainName).where('tx_hash', '=', txHash.toLowerCase()).orderBy('log_index').execute();
}

const transferConfirmedUpTo = (txHash: Hex, count: number) =>
  until(`${txHash} at ${count} confirmations`, () => transferRows(txHash), (rows) => rows.length > 0 && rows.every((row) => row.confirmations >= count));

/** The watcher has processed every block up to `block`. */
const processedUpTo = (block: bigint) =>
  until(
    `block ${block} processed`,
    () => db.selectFrom('chain_cursors').select('block_number').where('chain', '=', chainName).executeTakeFirst(),
    (cursor) => cursor !== undefined && BigInt(cursor.block_number) >= block,
  );

async function payToken(token: Address, to: string, amount: string, decimals = 6) {
  const hash = await wallet.writeContract({ address: token, abi: testTokenAbi, functionName: 'transfer', args: [to as Address, parseUnits(amount, decimals)] });
  const receipt = await reader.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, 'success');
  return receipt;
}

async function payEth(to: string, amount: string) {
  const hash = await wallet.sendTransaction({ to: to as Address, value: parseEther(amount) });
  const receipt = await reader.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, 'success');
  return receipt;
}

/** A USDT transfer signed but not sent, so that the very same transaction can be sent again after a reorg dropped it. */
async function signUsdtTransfer(to: string, amount: string): Promise<Hex> {
  const request = await wallet.prepareTransactionRequest({
    to: usdt,
    data: encodeFunctionData({ abi: testTokenAbi, functionName: 'transfer', args: [to as Address, parseUnits(amount, 6)] }),
  });
  return wallet.signTransaction(request);
}

async function sendRaw(serializedTransaction: Hex) {
  const hash = await reader.sendRawTransaction({ serializedTransaction });
  const receipt = await reader.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, 'success');
  return receipt;
}

before(async () => {
  anvil = await startAnvil();
  reader = createPublicClient({ chain: anvilChain(anvil), transport: http(anvil.rpcUrl), cacheTime: 0, pollingInterval: 50 });
  wallet = createPayerWallet(anvil);
  usdt = await deployTestToken(wallet, reader, { name: 'Tether USD', symbol: 'USDT', decimals: 6 });
  usdc = await deployTestToken(wallet, reader, { name: 'USD Coin', symbol: 'USDC', decimals: 6 });
  for (const token of [usdt, usdc]) {
    const hash = await wallet.writeContract({ address: token, abi: testTokenAbi, functionName: 'mint', args: [wallet.account.address, parseUnits('1000000', 6)] });
    await reader.waitForTransactionReceipt({ hash });
  }
  t = await startTestGateway({
    PAYCRYPT_CHAINS: JSON.stringify([
      {
        name: chainName,
        family: 'evm',
        chain_id: anvil.chainId,
        networks: ['ERC20'],
        rpc_url: anvil.rpcUrl,
        native: { symbol: 'ETH', decimals: 18 },
        tokens: [
          { symbol: 'USDT', contract: usdt, decimals: 6 },
          { symbol: 'USDC', contract: usdc, decimals: 6 },
        ],
        confirmations,
        reorg_window: reorgWindow,
        poll_interval_ms: 100,
        addresses: { mnemonic_env: 'TEST_PAYMENTS_WALLET_MNEMONIC' },
      },
    ]),
    TEST_PAYMENTS_WALLET_MNEMONIC: mnemonic,
    PAYCRYPT_RATES: '{"ETH":"2000"}',
  });
  db = t.gateway.context.storage.db;
  key = (await t.createMerchant('On-chain shop')).apiKey;
  // The watcher starts at the head it finds; wait until it follows the chain.
  await processedUpTo(await reader.getBlockNumber());
});

after(async () => {
  await t?.close();
  await anvil?.stop();
});

describe('deposit addresses', () => {
  it('gives each payment its own address, stored with its BIP-32 index and derived at m/44\'/60\'/0\'/0/<index>', async () => {
    const payments: PaymentJson[] = [];
    for (let i = 0; i < 10; i++) payments.push(await createPayment({}));
    const addresses = payments.map((payment) => payment.address);
    assert.equal(new Set(addresses).size, 10, 'ten distinct addresses');
    for (const payment of payments) {
      assert.match(payment.address, /^0x[0-9a-f]{40}$/);
      assert.equal(payment.chain, chainName);
      assert.equal(payment.crypto_network, 'ERC20');
      assert.equal(payment.status, 'pending');
      assert.equal(payment.settlement, 'awaiting_payment');
      assert.equal(payment.required_confirmations, confirmations);
      assert.equal(payment.amount_due, 9.95);
      assert.equal(payment.amount_remaining, 9.95);
      assert.equal(payment.amount_paid, 0);
      // The chain's default payment window: 60 minutes.
      assert.equal(Date.parse(payment.expires_at) - Date.parse(payment.created_at), 60 * 60_000);
    }

    const rows = await db
      .selectFrom('deposit_addresses')
      .selectAll()
      .where('chain', '=', chainName)
      .where('payment_id', 'in', payments.map((payment) => payment.id))
      .execute();
    assert.equal(rows.length, 10);
    const byPayment = new Map(rows.map((row) => [Number(row.payment_id), row]));
    const indexes = payments.map((payment) => Number(byPayment.get(payment.id)!.derivation_index));
    // One counter per chain hands out consecutive indexes, so a wallet scanning the seed finds every address.
    assert.deepEqual(indexes, indexes.map((_, i) => indexes[0]! + i));
    for (const [i, payment] of payments.entries()) {
      const row = byPayment.get(payment.id)!;
      assert.equal(row.address, payment.address);
      assert.equal(mnemonicToAccount(mnemonic, { addressIndex: indexes[i]! }).address.toLowerCase(), payment.address, `index ${indexes[i]}`);
    }

    // Note: a payment with a deposit address is written apart from the others (in a transaction with its address); it is counted all the same.
    const listed = await t.request('GET', '/api/v1/payments?status=pending', { key });
    const { merchant_id } = await db.selectFrom('payments').select('merchant_id').where('id', '=', payments[0]!.id).executeTakeFirstOrThrow();
    const pending = await db.selectFrom('payments').select((eb) => eb.fn.countAll<number>().as('count')).where('merchant_id', '=', merchant_id).where('status', '=', 'pending').executeTakeFirstOrThrow();
    assert.equal(listed.json.pagination.total, Number(pending.count));
  });
});

describe('paying a payment', () => {
  it('USDT, exact amount: detected once mined, completed only at 3 confirmations', async () => {
    const payment = await createPayment({ client_reference: 'usdt-exact' });
    assert.equal(payment.crypto_amount, 9.95);

    const receipt = await payToken(usdt, payment.address, '9.95');
    const detected = await paymentUntil(payment.id, 'detected', (p) => p.settlement === 'detected');
    assert.equal(detected.status, 'pending');
    assert.equal(detected.amount_detected, 9.95);
    assert.equal(detected.amount_paid, 0);
    assert.equal(detected.amount_remaining, 9.95);
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.detected']);

    // Two confirmations of three: still waiting.
    await mine(anvil.rpcUrl, 1);
    await transferConfirmedUpTo(receipt.transactionHash, 2);
    const confirming = await getPayment(payment.id);
    assert.equal(confirming.status, 'pending');
    assert.equal(confirming.settlement, 'detected');
    assert.equal(confirming.amount_paid, 0);
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.detected']);

    await mine(anvil.rpcUrl, 1);
    const completed = await paymentUntil(payment.id, 'completed', (p) => p.status === 'completed');
    assert.equal(completed.settlement, 'paid');
    assert.equal(completed.amount_paid, 9.95);
    assert.equal(completed.amount_detected, 9.95);
    assert.equal(completed.amount_remaining, 0);
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.detected', 'payment.completed']);
  });

  it('ETH (the native coin), exact amount: detected, then completed at 3 confirmations', async () => {
    const payment = await createPayment({ crypto_currency: 'ETH', client_reference: 'eth-exact' });
    // 10 USD at 2000 USD/ETH, less the 0.5 % fee.
    assert.equal(payment.crypto_amount, 0.004975);
    assert.equal(payment.crypto_currency, 'ETH');

    const receipt = await payEth(payment.address, '0.004975');
    const detected = await paymentUntil(payment.id, 'detected', (p) => p.settlement === 'detected');
    assert.equal(detected.status, 'pending');
    assert.equal(detected.amount_detected, 0.004975);
    assert.equal(detected.amount_paid, 0);

    await mine(anvil.rpcUrl, 1);
    await transferConfirmedUpTo(receipt.transactionHash, 2);
    assert.equal((await getPayment(payment.id)).status, 'pending');

    await mine(anvil.rpcUrl, 1);
    const completed = await paymentUntil(payment.id, 'completed', (p) => p.status === 'completed');
    assert.equal(completed.settlement, 'paid');
    assert.equal(completed.amount_paid, 0.004975);
    assert.equal(completed.amount_remaining, 0);
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.detected', 'payment.completed']);
  });

  it('underpaid, then completed by further transfers (two in one transaction both count)', async () => {
    const payment = await createPayment({ client_reference: 'underpaid' });
    const first = await payToken(usdt, payment.address, '4');
    await paymentUntil(payment.id, 'detected', (p) => p.settlement === 'detected');
    await mine(anvil.rpcUrl, 2);
    const underpaid = await paymentUntil(payment.id, 'underpaid', (p) => p.settlement === 'underpaid');
    assert.equal(underpaid.status, 'pending');
    assert.equal(underpaid.amount_paid, 4);
    assert.equal(underpaid.amount_remaining, 5.95);
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.detected', 'payment.underpaid']);
    assert.equal((await transferRows(first.transactionHash)).length, 1);

    // The rest in one transaction of two transfers to the address: two logs, two credits.
    const hash = await wallet.writeContract({
      address: usdt,
      abi: testTokenAbi,
      functionName: 'batchTransfer',
      args: [[payment.address as Address, payment.address as Address], [parseUnits('3', 6), parseUnits('2.95', 6)]],
    });
    await reader.waitForTransactionReceipt({ hash });
    const topped = await paymentUntil(payment.id, 'the rest detected', (p) => p.amount_detected === 9.95);
    assert.equal(topped.status, 'pending');
    assert.equal(topped.settlement, 'detected');
    assert.equal(topped.amount_paid, 4);
    assert.equal(topped.amount_remaining, 5.95);

    await mine(anvil.rpcUrl, 2);
    const completed = await paymentUntil(payment.id, 'completed', (p) => p.status === 'completed');
    assert.equal(completed.settlement, 'paid');
    assert.equal(completed.amount_paid, 9.95);
    assert.equal(completed.amount_remaining, 0);
    const rows = await transferRows(hash);
    assert.deepEqual(
      rows.map((row) => [row.amount.toString(), row.state]),
      [
        ['3000000', 'confirmed'],
        ['2950000', 'confirmed'],
      ],
    );
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.detected', 'payment.underpaid', 'payment.detected', 'payment.completed']);
  });

  it('overpaid: completed with settlement overpaid; a later transfer is recorded as a late transfer', async () => {
    const payment = await createPayment({ client_reference: 'overpaid' });
    await payToken(usdt, payment.address, '12.5');
    await paymentUntil(payment.id, 'detected', (p) => p.settlement === 'detected');
    await mine(anvil.rpcUrl, 2);
    const completed = await paymentUntil(payment.id, 'completed', (p) => p.status === 'completed');
    assert.equal(completed.settlement, 'overpaid');
    assert.equal(completed.amount_due, 9.95);
    assert.equal(completed.amount_paid, 12.5);
    assert.equal(completed.amount_remaining, 0);
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.detected', 'payment.completed']);

    // Funds after completion: counted in what was received, the payment stays completed.
    const late = await payToken(usdt, payment.address, '1');
    await paymentUntil(payment.id, 'late funds detected', (p) => p.amount_detected === 13.5);
    await mine(anvil.rpcUrl, 2);
    await transferConfirmedUpTo(late.transactionHash, 3);
    const after = await paymentUntil(payment.id, 'late funds paid', (p) => p.amount_paid === 13.5);
    assert.equal(after.status, 'completed');
    assert.equal(after.settlement, 'overpaid');
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.detected', 'payment.completed', 'payment.late_transfer']);
  });

  it('another token (USDC) or the native coin sent to a USDT payment is recorded but never counted', async () => {
    const payment = await createPayment({ client_reference: 'wrong-asset' });
    const wrongToken = await payToken(usdc, payment.address, '9.95');
    const wrongCoin = await payEth(payment.address, '0.01');
    await mine(anvil.rpcUrl, 3);
    await transferConfirmedUpTo(wrongToken.transactionHash, 3);
    await transferConfirmedUpTo(wrongCoin.transactionHash, 3);
    const recorded = [...(await transferRows(wrongToken.transactionHash)), ...(await transferRows(wrongCoin.transactionHash))];
    assert.deepEqual(
      recorded.map((row) => [row.asset, row.amount.toString(), Number(row.payment_id), row.state]),
      [
        ['USDC', '9950000', payment.id, 'confirmed'],
        ['ETH', '10000000000000000', payment.id, 'confirmed'],
      ],
    );
    const unpaid = await getPayment(payment.id);
    assert.equal(unpaid.status, 'pending');
    assert.equal(unpaid.settlement, 'awaiting_payment');
    assert.equal(unpaid.amount_detected, 0);
    assert.equal(unpaid.amount_paid, 0);
    assert.equal(unpaid.amount_remaining, 9.95);
    assert.deepEqual(await eventTypes(payment.id), ['payment.created']);
  });

  it('a reverted native transfer to the address moves nothing and is not counted', async () => {
    const payment = await createPayment({ crypto_currency: 'ETH', client_reference: 'reverted' });
    // Note: a deposit address is an account without code, to which a plain
    // transfer cannot fail; code that always reverts (as an EIP-7702 delegation
    // could give it) makes the node mine the transfer as failed.
    await anvilRpc(anvil.rpcUrl, 'anvil_setCode', [payment.address, '0x60006000fd']);
    const hash = await wallet.sendTransaction({ to: payment.address as Address, value: parseEther('0.004975'), gas: 100_000n });
    const reverted = await reader.waitForTransactionReceipt({ hash });
    assert.equal(reverted.status, 'reverted');
    assert.equal(await reader.getBalance({ address: payment.address as Address }), 0n);
    await anvilRpc(anvil.rpcUrl, 'anvil_setCode', [payment.address, '0x']);

    await mine(anvil.rpcUrl, 3);
    await processedUpTo(reverted.blockNumber + 3n);
    const unpaid = await getPayment(payment.id);
    assert.equal(unpaid.settlement, 'awaiting_payment');
    assert.equal(unpaid.amount_detected, 0);
    assert.deepEqual(await transferRows(hash), []);

    // A transfer that succeeds pays it, and only that one counts.
    await payEth(payment.address, '0.004975');
    await mine(anvil.rpcUrl, 2);
    const completed = await paymentUntil(payment.id, 'completed', (p) => p.status === 'completed');
    assert.equal(completed.settlement, 'paid');
    assert.equal(completed.amount_paid, 0.004975);
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.detected', 'payment.completed']);
  });
});

describe('expiry', () => {
  it('an unpaid payment past its window is cancelled (settlement expired); funds after that are recorded as a late transfer', async () => {
    const payment = await createPayment({ expires_in: 60, client_reference: 'expires' });
    assert.equal(Date.parse(payment.expires_at) - Date.parse(payment.created_at), 60_000);
    // Note: 60 s is the shortest window; move this one's end into the past rather than wait it out.
    await db.updateTable('payments').set({ expires_at: new Date(Date.now() - 1_000) }).where('id', '=', payment.id).execute();

    const cancelled = await paymentUntil(payment.id, 'cancelled', (p) => p.status === 'cancelled');
    assert.equal(cancelled.settlement, 'expired');
    assert.equal(cancelled.amount_paid, 0);
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.cancelled']);

    const late = await payToken(usdt, payment.address, '9.95');
    const seen = await paymentUntil(payment.id, 'late funds detected', (p) => p.amount_detected === 9.95);
    assert.equal(seen.status, 'cancelled');
    assert.equal(seen.settlement, 'expired');
    await mine(anvil.rpcUrl, 2);
    await transferConfirmedUpTo(late.transactionHash, 3);
    const paidLate = await paymentUntil(payment.id, 'late funds confirmed', (p) => p.amount_paid === 9.95);
    assert.equal(paidLate.status, 'cancelled');
    assert.equal(paidLate.settlement, 'expired');
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.cancelled', 'payment.late_transfer']);
  });
});

describe('chain reorganizations', () => {
  it('a reorg before completion takes the detected transfer back; the same transaction mined again counts once', async () => {
    const payment = await createPayment({ client_reference: 'reorg-early' });
    const signed = await signUsdtTransfer(payment.address, '9.95');
    const mined = await sendRaw(signed);
    await paymentUntil(payment.id, 'detected', (p) => p.settlement === 'detected');

    // The block with the transfer is replaced by one without it, and the new branch grows.
    await anvilReorg(anvil.rpcUrl, 1);
    await mine(anvil.rpcUrl, 1);
    const undone = await paymentUntil(payment.id, 'back to awaiting_payment', (p) => p.settlement === 'awaiting_payment');
    assert.equal(undone.status, 'pending');
    assert.equal(undone.amount_detected, 0);
    assert.equal(undone.amount_paid, 0);
    assert.equal(undone.amount_remaining, 9.95);
    assert.deepEqual((await transferRows(mined.transactionHash)).map((row) => row.state), ['removed']);

    // Blocks on the new branch confirm nothing that is not on it.
    await mine(anvil.rpcUrl, 3);
    await processedUpTo(mined.blockNumber + 4n);
    assert.equal((await getPayment(payment.id)).status, 'pending');

    // The payer's wallet broadcasts the same signed transaction again.
    const again = await sendRaw(signed);
    assert.equal(again.transactionHash, mined.transactionHash);
    await paymentUntil(payment.id, 'detected again', (p) => p.settlement === 'detected');
    await mine(anvil.rpcUrl, 2);
    const completed = await paymentUntil(payment.id, 'completed', (p) => p.status === 'completed');
    assert.equal(completed.settlement, 'paid');
    assert.equal(completed.amount_paid, 9.95);
    assert.deepEqual((await transferRows(mined.transactionHash)).map((row) => row.state), ['confirmed']);
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.detected', 'payment.reversed', 'payment.detected', 'payment.completed']);
  });

  it('a reorg deeper than the confirmations reverses a completed payment (payment.reversed); mined again it completes once more, counted once', async () => {
    const payment = await createPayment({ client_reference: 'reorg-late' });
    const signed = await signUsdtTransfer(payment.address, '9.95');
    // Blocks of this test only, so that the reorg below replaces nothing another test paid.
    await mine(anvil.rpcUrl, 3);
    const mined = await sendRaw(signed);
    await mine(anvil.rpcUrl, 2);
    const completed = await paymentUntil(payment.id, 'completed', (p) => p.status === 'completed');
    assert.equal(completed.settlement, 'paid');

    // Five blocks replaced (more than 3 confirmations, within the window of 10); the new branch grows by one.
    const depth = 5;
    assert.ok(depth > confirmations && depth <= reorgWindow);
    await anvilReorg(anvil.rpcUrl, depth);
    await mine(anvil.rpcUrl, 1);
    const reversed = await paymentUntil(payment.id, 'reversed', (p) => p.status !== 'completed');
    assert.equal(reversed.status, 'pending');
    assert.equal(reversed.settlement, 'awaiting_payment');
    assert.equal(reversed.amount_paid, 0);
    assert.equal(reversed.amount_detected, 0);
    assert.equal(reversed.amount_remaining, 9.95);
    // The return to pending is announced as every status change is, and the reorg by name.
    assert.deepEqual(await eventTypes(payment.id), ['payment.created', 'payment.detected', 'payment.completed', 'payment.pending', 'payment.reversed']);

    const again = await sendRaw(signed);
    assert.equal(again.transactionHash, mined.transactionHash);
    await paymentUntil(payment.id, 'detected again', (p) => p.settlement === 'detected');
    await mine(anvil.rpcUrl, 2);
    const recompleted = await paymentUntil(payment.id, 'completed again', (p) => p.status === 'completed');
    assert.equal(recompleted.settlement, 'paid');
    assert.equal(recompleted.amount_paid, 9.95);
    assert.equal(recompleted.amount_detected, 9.95);
    const rows = await transferRows(mined.transactionHash);
    assert.deepEqual(rows.map((row) => [row.state, Number(row.block_number)]), [['confirmed', Number(again.blockNumber)]]);
    assert.deepEqual(await eventTypes(payment.id), [
      'payment.created',
      'payment.detected',
      'payment.completed',
      'payment.pending',
      'payment.reversed',
      'payment.detected',
      'payment.completed',
    ]);
  });
});

describe('events and webhooks', () => {
  let receiver: WebhookReceiver;
  before(async () => {
    receiver = await startWebhookReceiver();
  });
  after(() => receiver?.close());

  it('each change commits with its event: one payment.completed, and webhooks for payment.detected and payment.completed', async () => {
    const merchant = await t.createMerchant('Webhook shop');
    const settings = await t.request('PUT', '/api/v1/webhook_settings', { key: merchant.apiKey, body: { url: receiver.url, enabled: true } });
    assert.equal(settings.status, 200, settings.text);

    const payment = await createPayment({ client_reference: 'webhooks' }, merchant.apiKey);
    await payToken(usdt, payment.address, '9.95');
    await paymentUntil(payment.id, 'detected', (p) => p.settlement === 'detected', merchant.apiKey);
    await mine(anvil.rpcUrl, 2);
    await paymentUntil(payment.id, 'completed', (p) => p.status === 'completed', merchant.apiKey);

    const events = await t.request('GET', `/api/v1/events?payment_id=${payment.id}`, { key: merchant.apiKey });
    const recorded = (events.json.data as Array<{ id: string; type: string; data: { payment: { status: string } } }>).reverse();
    assert.deepEqual(recorded.map((event) => event.type), ['payment.created', 'payment.detected', 'payment.completed']);
    // Each event carries the payment as the change left it.
    assert.deepEqual(recorded.map((event) => event.data.payment.status), ['pending', 'pending', 'completed']);
    const completedRows = await db.selectFrom('events').select('id').where('payment_id', '=', payment.id).where('type', '=', 'payment.completed').execute();
    assert.equal(completedRows.length, 1);

    const received = await receiver.waitFor(3);
    assert.deepEqual(received.map((webhook) => webhook.headers['x-paycrypt-event']), ['payment.created', 'payment.detected', 'payment.completed']);
    assert.deepEqual(received.map((webhook) => webhook.headers['x-paycrypt-event-id']), recorded.map((event) => event.id));
    const bodies = received.map((webhook) => JSON.parse(webhook.body) as { event_type: string; payment: { id: number; status: string } });
    assert.deepEqual(bodies.map((body) => [body.event_type, body.payment.id, body.payment.status]), [
      ['payment.created', payment.id, 'pending'],
      ['payment.detected', payment.id, 'pending'],
      ['payment.completed', payment.id, 'completed'],
    ]);
  });
});

describe('bad input', () => {
  it('an unknown network or a token the chain does not carry: 400 invalid_request, nothing written', async () => {
    const merchant = await t.createMerchant('Careless shop');
    const counter = () => db.selectFrom('address_counters').select('next_index').where('chain', '=', chainName).executeTakeFirst();
    const before = await counter();

    const unknownNetwork = await t.request('POST', '/api/v1/payments', {
      key: merchant.apiKey,
      body: { amount: 10, currency: 'USD', method: 'crypto', type: 'deposit', crypto_currency: 'USDT', crypto_network: 'NOPE' },
    });
    assert.equal(unknownNetwork.status, 400, unknownNetwork.text);
    assert.equal(unknownNetwork.json.error.code, 'invalid_request');
    assert.match(unknownNetwork.json.error.message, /NOPE/);

    const missingToken = await t.request('POST', '/api/v1/payments', {
      key: merchant.apiKey,
      body: { amount: 10, currency: 'USD', method: 'crypto', type: 'deposit', crypto_currency: 'DAI', crypto_network: 'ERC20' },
    });
    assert.equal(missingToken.status, 400, missingToken.text);
    assert.equal(missingToken.json.error.code, 'invalid_request');
    assert.match(missingToken.json.error.message, /DAI is not accepted on ERC20; it accepts ETH, USDT, USDC/);

    const listed = await t.request('GET', '/api/v1/payments', { key: merchant.apiKey });
    assert.equal(listed.json.pagination.total, 0);
    const events = await t.request('GET', '/api/v1/events', { key: merchant.apiKey });
    assert.deepEqual(events.json.data, []);
    assert.deepEqual(await counter(), before, 'no address index was taken');
  });
});
