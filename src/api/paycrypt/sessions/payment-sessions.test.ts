import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { type Address, createPublicClient, createWalletClient, http, parseUnits, type PublicClient } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { anvilChain, type Anvil, mine, startAnvil } from '../../../chains/evm/anvil.ts';
import { deployTestToken, testTokenAbi } from '../../../chains/evm/test-token.ts';
import { expireDuePayments } from '../../../workers/payment-expiry.ts';
import { type DjangoReceiver, startDjangoReceiver } from '../../../testing/django-receiver.ts';
import { startTestGateway, type TestGateway } from '../../../testing/harness.ts';
import { exampleSessionBody, signedRequest } from '../../../testing/signed-requests.ts';
import { createHmac } from 'node:crypto';
import { until } from '../../../testing/until.ts';

/**
 * Payment sessions end to end, as a merchant and a customer see them: a real
 * gateway watching a real anvil chain with a real USDT contract, sessions
 * created and read over the signed API, the asset chosen on the hosted
 * checkout's form, on-chain payments, and the session's webhooks answered by
 * the Payment Session document's own Django verification code.
 */
const chainName = `sessions-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
/** Seconds a quote stays locked once the asset is chosen: short, so that expiry can be watched. */
const quoteLockSeconds = 15;

let anvil: Anvil;
let t: TestGateway;
let reader: PublicClient;
let usdt: Address;
let merchant: Awaited<ReturnType<TestGateway['createMerchant']>>;
let django: DjangoReceiver;
let payer: ReturnType<typeof createPayerWallet>;

function createPayerWallet(node: Anvil) {
  return createWalletClient({ chain: anvilChain(node), account: privateKeyToAccount(node.accounts[0]!.privateKey), transport: http(node.rpcUrl), cacheTime: 0 });
}

async function createSession(orderId: string, overrides: Record<string, unknown> = {}) {
  const response = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', exampleSessionBody(orderId, { webhook_url: django.url, ...overrides }));
  assert.equal(response.status, 201, response.text);
  return response.json as { id: string; checkout_url: string };
}

const readSession = async (id: string) => {
  const response = await signedRequest(t, merchant, 'GET', `/api/v1/payment_sessions/${id}`);
  assert.equal(response.status, 200, response.text);
  return response.json;
};

const sessionUntil = (id: string, label: string, done: (session: any) => boolean) => until(`${id} ${label}`, () => readSession(id), done);

/** What the customer does on the checkout page: submit the form choosing `asset`. */
async function choose(session: { checkout_url: string }, asset = 'ERC20:USDT') {
  const response = await fetch(`${session.checkout_url}/asset`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
    body: new URLSearchParams({ asset }),
    redirect: 'manual',
  });
  assert.equal(response.status, 303, await response.text());
}

async function payUsdt(to: string, amount: string) {
  const hash = await payer.writeContract({ address: usdt, abi: testTokenAbi, functionName: 'transfer', args: [to as Address, parseUnits(amount, 6)] });
  const receipt = await reader.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, 'success');
  return hash;
}

/** Which session each webhook event belongs to, read from the gateway's events. */
async function sessionOfEvents(): Promise<Map<string, string>> {
  const rows = await t.gateway.context.storage.db
    .selectFrom('events')
    .innerJoin('payment_sessions', 'payment_sessions.payment_id', 'events.payment_id')
    .select(['events.id', 'payment_sessions.id as session_id'])
    .execute();
  return new Map(rows.map((row) => [row.id, row.session_id]));
}

/** The Django view's answers to a session's webhooks, once at least `count` have come. */
async function webhookTypes(sessionId: string, count: number) {
  return until(
    `${count} webhooks of ${sessionId}`,
    async () => {
      const sessions = await sessionOfEvents();
      return django.answers.filter((answer) => answer.id !== null && sessions.get(answer.id) === sessionId);
    },
    (answers) => answers.length >= count,
    30_000,
  );
}

before(async () => {
  anvil = await startAnvil();
  reader = createPublicClient({ chain: anvilChain(anvil), transport: http(anvil.rpcUrl), cacheTime: 0, pollingInterval: 50 });
  payer = createPayerWallet(anvil);
  usdt = await deployTestToken(payer, reader, { name: 'Tether USD', symbol: 'USDT', decimals: 6 });
  const minted = await payer.writeContract({ address: usdt, abi: testTokenAbi, functionName: 'mint', args: [payer.account.address, parseUnits('1000000', 6)] });
  await reader.waitForTransactionReceipt({ hash: minted });
  t = await startTestGateway({
    PAYCRYPT_CHAINS: JSON.stringify([
      {
        name: chainName,
        family: 'evm',
        chain_id: anvil.chainId,
        networks: ['ERC20'],
        rpc_url: anvil.rpcUrl,
        native: { symbol: 'ETH', decimals: 18 },
        tokens: [{ symbol: 'USDT', contract: usdt, decimals: 6 }],
        confirmations: 2,
        reorg_window: 10,
        poll_interval_ms: 100,
        addresses: { mnemonic_env: 'TEST_SESSIONS_WALLET_MNEMONIC' },
      },
    ]),
    TEST_SESSIONS_WALLET_MNEMONIC: generateMnemonic(wordlist),
    PAYCRYPT_RATES: '{"ETH":"2000"}',
    PAYCRYPT_CHECKOUT_QUOTE_SECONDS: String(quoteLockSeconds),
    PAYCRYPT_WEBHOOK_TIME_SCALE: '0.001',
  });
  merchant = await t.createMerchant('Sessions merchant');
  django = await startDjangoReceiver(merchant);
});

after(async () => {
  await t?.close();
  await django?.close();
  await anvil?.stop();
});

describe('payment sessions on a chain', () => {
  it('created → (asset chosen) pending → confirming → succeeded; webhooks verified by the document\'s Django code', async () => {
    const session = await createSession('ORD-PAID');
    const page = await (await fetch(session.checkout_url)).text();
    assert.match(page, /USDT <\/strong> ?<span class="network">on ERC20<\/span>|<strong>USDT<\/strong> <span class="network">on ERC20<\/span>/);

    await choose(session);
    const pending = await readSession(session.id);
    assert.equal(pending.status, 'pending');
    assert.equal(pending.payment.asset, 'USDT');
    assert.equal(pending.payment.network, 'ERC20');
    assert.match(pending.payment.address, /^0x[0-9a-f]{40}$/);
    // 49.00 USD at 1.00 USD per USDT, less the default 0.5 % fee, rounded down to the token's unit.
    assert.equal(pending.payment.amount, '48.755');
    assert.equal(pending.payment.amount_remaining, '48.755');
    assert.equal(pending.payment.required_confirmations, 2);
    assert.equal(pending.payment.payment_uri, `ethereum:${usdt.toLowerCase()}@${anvil.chainId}/transfer?address=${pending.payment.address}&uint256=48755000`);
    assert.ok(pending.expires_at > Math.floor(Date.now() / 1000) && pending.expires_at <= Math.floor(Date.now() / 1000) + quoteLockSeconds + 1);

    const txHash = await payUsdt(pending.payment.address, '48.755');
    const confirming = await sessionUntil(session.id, 'confirming', (s) => s.status === 'confirming');
    assert.equal(confirming.payment.amount_received, '48.755');
    assert.equal(confirming.payment.amount_confirmed, '0');
    assert.deepEqual(confirming.payment.transactions, [{ tx_hash: txHash, amount: '48.755', state: 'detected', confirmations: 1 }]);
    await mine(anvil.rpcUrl, 1);
    const succeeded = await sessionUntil(session.id, 'succeeded', (s) => s.status === 'succeeded');
    assert.equal(succeeded.payment.amount_confirmed, '48.755');
    assert.equal(succeeded.payment.amount_remaining, '0');

    const answers = await webhookTypes(session.id, 3);
    assert.deepEqual(
      answers.map((answer) => [answer.type, answer.status]),
      [
        ['payment.pending', 200],
        ['payment.confirming', 200],
        ['payment.succeeded', 200],
      ],
    );
    // The gateway's delivery log records the Django view's answer (once the attempt is written, just after the answer).
    const delivery = await until(
      'the succeeded delivery to be logged',
      () =>
        t.gateway.context.storage.db
          .selectFrom('webhook_deliveries as d')
          .innerJoin('webhook_attempts as a', 'a.delivery_id', 'd.id')
          .innerJoin('events as e', 'e.id', 'd.event_id')
          .select(['e.id', 'e.type', 'a.status_code', 'a.url'])
          .where('e.id', '=', answers[2]!.id!)
          .executeTakeFirst(),
      (row) => row !== undefined,
    ).then((row) => row!);
    assert.equal(delivery.type, 'payment.completed');
    assert.equal(delivery.status_code, 200);
    assert.equal(delivery.url, django.url);
  });

  it('a succeeded webhook carries the session, order id, amounts, asset, network and transaction hash, signed with the API key\'s secret', async () => {
    const received: Array<{ headers: Record<string, string>; body: string }> = [];
    const { startWebhookReceiver } = await import('../../../testing/webhook-receiver.ts');
    const receiver = await startWebhookReceiver('/hook');
    try {
      const session = await createSession('ORD-BODY', { webhook_url: receiver.url, metadata: { cart: 'c-9', exact: 10.10 } });
      await choose(session);
      const { payment } = await readSession(session.id);
      const txHash = await payUsdt(payment.address, payment.amount);
      await mine(anvil.rpcUrl, 1);
      await sessionUntil(session.id, 'succeeded', (s) => s.status === 'succeeded');
      const webhooks = await receiver.waitFor(3, 20_000);
      for (const webhook of webhooks) received.push({ headers: webhook.headers as Record<string, string>, body: webhook.body });
      const succeeded = received.find((webhook) => JSON.parse(webhook.body).type === 'payment.succeeded')!;
      assert.ok(succeeded, JSON.stringify(received.map((webhook) => webhook.body)));
      assert.equal(succeeded.headers['x-paycrypt-key'], merchant.apiKey);
      assert.match(succeeded.headers['x-paycrypt-timestamp']!, /^\d{10}$/);
      const expected = createHmac('sha256', merchant.apiSecret).update(`${succeeded.headers['x-paycrypt-timestamp']}.${succeeded.body}`).digest('hex');
      assert.equal(succeeded.headers['x-paycrypt-signature'], expected);
      const event = JSON.parse(succeeded.body);
      assert.match(event.id, /^evt_/);
      assert.ok(Number.isInteger(event.created));
      assert.equal(event.data.object, 'payment_session');
      assert.equal(event.data.id, session.id);
      assert.equal(event.data.order_id, 'ORD-BODY');
      assert.equal(event.data.status, 'succeeded');
      assert.equal(event.data.amount, '49.00');
      assert.equal(event.data.currency, 'USD');
      assert.equal(event.data.crypto_amount, '48.755');
      assert.equal(event.data.asset, 'USDT');
      assert.equal(event.data.network, 'ERC20');
      assert.equal(event.data.address, payment.address);
      assert.equal(event.data.amount_confirmed, '48.755');
      assert.equal(event.data.tx_hash, txHash);
      assert.deepEqual(event.data.customer, { email: 'buyer@example.com' });
      // The merchant's metadata comes back with its numbers exactly as sent.
      assert.match(succeeded.body, /"metadata":\{"cart":"c-9","exact":10\.1\}/);
    } finally {
      await receiver.close();
    }
  });

  it('underpaid: the remaining amount is asked for at the same address, and the rest completes it', async () => {
    const session = await createSession('ORD-UNDER');
    await choose(session);
    const { payment } = await readSession(session.id);
    await payUsdt(payment.address, '20');
    await mine(anvil.rpcUrl, 1);
    const underpaid = await sessionUntil(session.id, 'underpaid', (s) => s.status === 'underpaid');
    assert.equal(underpaid.payment.amount_confirmed, '20');
    assert.equal(underpaid.payment.amount_remaining, '28.755');
    assert.equal(underpaid.payment.address, payment.address);
    assert.match(underpaid.payment.payment_uri, /uint256=28755000$/);
    const page = await (await fetch(session.checkout_url)).text();
    assert.match(page, /Send the remaining 28\.755 USDT to the same address/);

    await payUsdt(payment.address, '28.755');
    await mine(anvil.rpcUrl, 1);
    await sessionUntil(session.id, 'succeeded', (s) => s.status === 'succeeded');
    const types = (await webhookTypes(session.id, 5)).map((answer) => answer.type);
    assert.deepEqual(types, ['payment.pending', 'payment.confirming', 'payment.underpaid', 'payment.confirming', 'payment.succeeded']);
  });

  it('overpaid: succeeded, with the excess shown to the merchant and explained to the customer', async () => {
    const session = await createSession('ORD-OVER');
    await choose(session);
    const { payment } = await readSession(session.id);
    await payUsdt(payment.address, '50');
    await mine(anvil.rpcUrl, 1);
    const succeeded = await sessionUntil(session.id, 'succeeded', (s) => s.status === 'succeeded');
    assert.equal(succeeded.payment.amount_overpaid, '1.245');
    const page = await (await fetch(session.checkout_url)).text();
    assert.match(page, /You sent 1\.245 USDT more than the amount due/);
  });

  it('expired, then paid late: the session is expired, the funds are recorded and the merchant is told', async () => {
    const session = await createSession('ORD-LATE');
    await choose(session);
    const { payment } = await readSession(session.id);
    await sessionUntil(session.id, 'expired', (s) => s.status === 'expired');
    const page = await (await fetch(session.checkout_url)).text();
    assert.match(page, /This payment has expired/);

    const txHash = await payUsdt(payment.address, payment.amount);
    await mine(anvil.rpcUrl, 1);
    const late = await sessionUntil(session.id, 'late funds recorded', (s) => s.payment.amount_confirmed === payment.amount);
    assert.equal(late.status, 'expired');
    assert.deepEqual(
      late.payment.transactions.map((transfer: { tx_hash: string; state: string }) => [transfer.tx_hash, transfer.state]),
      [[txHash, 'confirmed']],
    );
    const types = (await webhookTypes(session.id, 3)).map((answer) => answer.type);
    assert.deepEqual(types.slice(0, 2), ['payment.pending', 'payment.expired']);
    assert.ok(types.includes('payment.late_transfer'), types.join(', '));
  });

  it('a session whose customer never chooses an asset expires at its expires_at', async () => {
    const session = await createSession('ORD-NOCHOICE', { expires_in: 60 });
    const created = await readSession(session.id);
    // Note: the expiry worker is run here with a clock past the session's end, instead of waiting a minute.
    await expireDuePayments(t.gateway.context.storage.db, new Date((created.expires_at + 1) * 1000));
    const expired = await readSession(session.id);
    assert.equal(expired.status, 'expired');
    const choice = await fetch(`${session.checkout_url}/asset`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
      body: 'asset=ERC20%3AUSDT',
      redirect: 'manual',
    });
    assert.equal(choice.status, 409);
    assert.match(await choice.text(), /cannot be chosen now: it is expired/);
  });

  it('the checkout offers only the assets the merchant accepts, and refuses any other', async () => {
    const picky = await t.createMerchant('USDT only');
    const set = await t.request('PUT', `/admin/v1/merchants/${picky.merchantId}/assets`, { key: t.adminToken, body: { assets: [{ network: 'ERC20', symbol: 'USDT' }] } });
    assert.equal(set.status, 200, set.text);
    const created = await signedRequest(t, picky, 'POST', '/api/v1/payment_sessions', exampleSessionBody('ORD-PICKY'));
    const page = await (await fetch(created.json.checkout_url)).text();
    assert.match(page, /value="ERC20:USDT"/);
    assert.doesNotMatch(page, /value="ERC20:ETH"/);
    const refused = await fetch(`${created.json.checkout_url}/asset`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
      body: 'asset=ERC20%3AETH',
      redirect: 'manual',
    });
    assert.equal(refused.status, 400);
    assert.equal((await signedRequest(t, picky, 'GET', `/api/v1/payment_sessions/${created.json.id}`)).json.status, 'created');
    // A merchant accepting everything is offered ETH too (it has a price here).
    const all = await (await fetch((await createSession('ORD-ALL')).checkout_url)).text();
    assert.match(all, /value="ERC20:ETH"/);
  });

  it('a form post from another site is refused', async () => {
    const session = await createSession('ORD-CSRF');
    const response = await fetch(`${session.checkout_url}/asset`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'cross-site' },
      body: 'asset=ERC20%3AUSDT',
      redirect: 'manual',
    });
    assert.equal(response.status, 403);
    assert.equal((await readSession(session.id)).status, 'created');
  });

  it('cancel: a pending session without funds is cancelled; once funds arrived it cannot be', async () => {
    const session = await createSession('ORD-CANCEL');
    await choose(session);
    const cancelled = await signedRequest(t, merchant, 'POST', `/api/v1/payment_sessions/${session.id}/cancel`);
    assert.equal(cancelled.status, 200, cancelled.text);
    assert.equal(cancelled.json.status, 'cancelled');
    assert.match(await (await fetch(session.checkout_url)).text(), /This payment was cancelled/);

    const paid = await createSession('ORD-NOCANCEL');
    await choose(paid);
    const { payment } = await readSession(paid.id);
    await payUsdt(payment.address, '1');
    await sessionUntil(paid.id, 'confirming', (s) => s.status === 'confirming');
    const refused = await signedRequest(t, merchant, 'POST', `/api/v1/payment_sessions/${paid.id}/cancel`);
    assert.equal(refused.status, 409, refused.text);
    assert.equal(refused.json.error.code, 'invalid_state_transition');
    assert.equal((await readSession(paid.id)).status, 'confirming');
  });
});

describe('payment session requests', () => {
  const refusals: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a missing order_id', { order_id: undefined }, /order_id/],
    ['an amount that is not a decimal string', { amount: 'forty' }, /amount/],
    ['a zero amount', { amount: '0.00' }, /amount must be greater than zero/],
    ['a negative amount', { amount: '-5.00' }, /amount/],
    ['an amount with more decimals than the currency', { amount: '49.001' }, /more than 2 decimal places/],
    ['a huge amount', { amount: '10000000000000.00' }, /must not exceed/],
    ['a crypto currency instead of fiat', { currency: 'BTC' }, /fiat currency/],
    ['an unknown currency', { currency: 'XYZ' }, /XYZ/],
    ['a javascript: success_url', { success_url: 'javascript:alert(1)' }, /success_url/],
    ['an ftp cancel_url', { cancel_url: 'ftp://merchant.tld/cancel' }, /cancel_url/],
    ['a relative webhook_url', { webhook_url: '/hook' }, /webhook_url/],
    ['an order_id over 128 characters', { order_id: 'x'.repeat(129) }, /order_id/],
    ['metadata over 4096 bytes', { metadata: { blob: 'x'.repeat(5000) } }, /metadata/],
    ['metadata that is not an object', { metadata: ['a'] }, /metadata/],
    ['an invalid customer email', { customer: { email: 'not-an-email' } }, /customer\.email/],
    ['an unknown field', { tip: '1.00' }, /tip/],
  ];
  for (const [label, change, message] of refusals) {
    it(`${label}: 400 invalid_request, and nothing is created`, async () => {
      const before = await t.gateway.context.storage.db.selectFrom('payment_sessions').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      const body: Record<string, unknown> = { ...exampleSessionBody('ORD-BAD'), ...change };
      for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key];
      const response = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', body);
      assert.equal(response.status, 400, response.text);
      assert.equal(response.json.error.code, 'invalid_request');
      assert.match(`${response.json.error.message} ${JSON.stringify(response.json.error.details ?? {})}`, message);
      const after = await t.gateway.context.storage.db.selectFrom('payment_sessions').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      assert.equal(Number(after.n), Number(before.n));
    });
  }

  it('lists sessions newest first by cursor, and by order_id', async () => {
    const lister = await t.createMerchant('Lister');
    const ids: string[] = [];
    for (const [index, order] of ['A', 'B', 'A', 'C', 'A'].entries()) {
      // Note: identical bytes signed in the same second would be one request replayed; each carries its own metadata.
      const response = await signedRequest(t, lister, 'POST', '/api/v1/payment_sessions', exampleSessionBody(`ORD-${order}`, { metadata: { attempt: index } }));
      assert.equal(response.status, 201, response.text);
      ids.push(response.json.id);
    }
    const first = await signedRequest(t, lister, 'GET', '/api/v1/payment_sessions?limit=2');
    assert.deepEqual(first.json.data.map((s: { id: string }) => s.id), [ids[4], ids[3]]);
    assert.equal(first.json.has_more, true);
    const second = await signedRequest(t, lister, 'GET', `/api/v1/payment_sessions?limit=2&starting_after=${first.json.next_cursor}`);
    assert.deepEqual(second.json.data.map((s: { id: string }) => s.id), [ids[2], ids[1]]);
    const third = await signedRequest(t, lister, 'GET', `/api/v1/payment_sessions?limit=2&starting_after=${second.json.next_cursor}`);
    assert.deepEqual(third.json.data.map((s: { id: string }) => s.id), [ids[0]]);
    assert.equal(third.json.has_more, false);
    const byOrder = await signedRequest(t, lister, 'GET', '/api/v1/payment_sessions?order_id=ORD-A');
    assert.deepEqual(byOrder.json.data.map((s: { id: string }) => s.id), [ids[4], ids[2], ids[0]]);
    const foreignCursor = await signedRequest(t, merchant, 'GET', `/api/v1/payment_sessions?starting_after=${ids[0]}`);
    assert.equal(foreignCursor.status, 400);
  });
});
