import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { apiKeyCacheTtlMs } from '../../core/api-keys.ts';
import { startTestGateway, type TestGateway, type TestResponse } from '../../testing/harness.ts';

type Merchant = Awaited<ReturnType<TestGateway['createMerchant']>>;

function assertErrorEnvelope(response: TestResponse, status: number, code: string): { code: string; message: string; details?: Record<string, unknown> } {
  assert.equal(response.status, status, response.text);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(Object.keys(response.json ?? {}), ['error'], response.text);
  assert.equal(response.json.error.code, code);
  assert.equal(typeof response.json.error.message, 'string');
  return response.json.error;
}

const paymentBody = (clientReference: string) => ({ amount: 10.0, currency: 'USD', method: 'crypto', type: 'deposit', client_reference: clientReference });

async function paymentsWithReference(t: TestGateway, clientReference: string): Promise<number> {
  const row = await t.gateway.context.storage.db
    .selectFrom('payments')
    .select((eb) => eb.fn.countAll<number>().as('rows'))
    .where('client_reference', '=', clientReference)
    .executeTakeFirstOrThrow();
  return Number(row.rows);
}

async function rowsOf(t: TestGateway, merchantId: number): Promise<{ payments: number; events: number }> {
  const db = t.gateway.context.storage.db;
  const [payments, events] = await Promise.all(
    (['payments', 'events'] as const).map((table) =>
      db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as('rows'))
        .where('merchant_id', '=', merchantId)
        .executeTakeFirstOrThrow(),
    ),
  );
  return { payments: Number(payments!.rows), events: Number(events!.rows) };
}

describe('PayCrypt v1 authentication', () => {
  let t: TestGateway;
  let merchant: Merchant;
  before(async () => {
    t = await startTestGateway();
    merchant = await t.createMerchant('Authentication');
  });
  after(() => t.close());

  const refusedHeaders = (): Array<[string, Record<string, string>]> => [
    ['no Authorization header', {}],
    ['an empty Authorization header', { authorization: '' }],
    ['the Basic scheme', { authorization: `Basic ${Buffer.from(`${merchant.apiKey}:`).toString('base64')}` }],
    ['a Token scheme', { authorization: `Token ${merchant.apiKey}` }],
    ['the key without a scheme', { authorization: merchant.apiKey }],
    ['Bearer without a key', { authorization: 'Bearer' }],
    ['Bearer with blanks for a key', { authorization: 'Bearer    ' }],
    ['Bearer with two words', { authorization: `Bearer ${merchant.apiKey} extra` }],
    ['an unknown key of the right shape', { authorization: `Bearer pk_${'0'.repeat(32)}` }],
    ['an unknown key of another shape', { authorization: 'Bearer not-a-key' }],
    ['the key with one character changed', { authorization: `Bearer ${merchant.apiKey.slice(0, -1)}${merchant.apiKey.endsWith('a') ? 'b' : 'a'}` }],
    ["the merchant's API secret instead of its key", { authorization: `Bearer ${merchant.apiSecret}` }],
    ['the admin token', { authorization: `Bearer ${t.adminToken}` }],
  ];

  it('serves the merchant with its key, in the documented header', async () => {
    const response = await t.request('GET', '/api/v1/payments', { headers: { authorization: `Bearer ${merchant.apiKey}` } });
    assert.equal(response.status, 200, response.text);
  });

  it('refuses every other Authorization with 401 authentication_failed and creates no payment', async () => {
    for (const [what, headers] of refusedHeaders()) {
      const reference = `auth-${randomUUID()}`;
      const created = await t.request('POST', '/api/v1/payments', { headers, body: paymentBody(reference) });
      assertErrorEnvelope(created, 401, 'authentication_failed');
      assert.equal(await paymentsWithReference(t, reference), 0, `${what}: no payment may be written`);

      for (const path of ['/api/v1/payments', '/api/v1/payments/1', '/api/v1/payments/pay_abc']) {
        assertErrorEnvelope(await t.request('GET', path, { headers }), 401, 'authentication_failed');
      }
    }
    assert.deepEqual(await rowsOf(t, merchant.merchantId), { payments: 0, events: 0 });
  });

  it('says a key is missing when there is none, and gives unknown keys one answer that reveals nothing', async () => {
    const missing = assertErrorEnvelope(await t.request('GET', '/api/v1/payments'), 401, 'authentication_failed');
    assert.match(missing.message, /Authorization: Bearer/);
    const unknown = await t.request('GET', '/api/v1/payments', { key: `pk_${'1'.repeat(32)}` });
    const malformed = await t.request('GET', '/api/v1/payments', { key: 'pk_short' });
    assert.deepEqual(unknown.json, malformed.json);
  });

  it('checks the key before the body: a bad body with a bad key is a 401, not a 400', async () => {
    const response = await t.request('POST', '/api/v1/payments', { key: `pk_${'2'.repeat(32)}`, rawBody: '{"amount":' });
    assertErrorEnvelope(response, 401, 'authentication_failed');
  });

  describe('a revoked key', () => {
    let revoked: Merchant;
    let secondKey: string;
    let earlier: { id: number; transaction_id: string };
    before(async () => {
      revoked = await t.createMerchant('Revoked key');
      const created = await t.request('POST', '/api/v1/payments', { key: revoked.apiKey, body: paymentBody(`before-revoke-${randomUUID()}`) });
      assert.equal(created.status, 201, created.text);
      earlier = created.json;
      const issued = await t.request('POST', `/admin/v1/merchants/${revoked.merchantId}/keys`, { key: t.adminToken });
      assert.equal(issued.status, 201, issued.text);
      secondKey = issued.json.api_key;
      const revocation = await t.request('POST', `/admin/v1/keys/${revoked.keyId}/revoke`, { key: t.adminToken });
      assert.equal(revocation.status, 200, revocation.text);
      assert.match(revocation.json.revoked_at, /Z$/);
    });

    it('is refused at once on every route, exactly like an unknown key', async () => {
      const unknown = await t.request('GET', '/api/v1/payments', { key: `pk_${'3'.repeat(32)}` });
      for (const path of ['/api/v1/payments', `/api/v1/payments/${earlier.id}`, `/api/v1/payments/${earlier.transaction_id}`]) {
        const response = await t.request('GET', path, { key: revoked.apiKey });
        assertErrorEnvelope(response, 401, 'authentication_failed');
        assert.deepEqual(response.json, unknown.json);
        assert.ok(!response.text.includes(earlier.transaction_id));
      }
    });

    it('creates nothing', async () => {
      const rowsBefore = await rowsOf(t, revoked.merchantId);
      const reference = `after-revoke-${randomUUID()}`;
      assertErrorEnvelope(await t.request('POST', '/api/v1/payments', { key: revoked.apiKey, body: paymentBody(reference) }), 401, 'authentication_failed');
      assert.equal(await paymentsWithReference(t, reference), 0);
      assert.deepEqual(await rowsOf(t, revoked.merchantId), rowsBefore);
    });

    it("leaves the merchant's other key and its payments as they were", async () => {
      const fetched = await t.request('GET', `/api/v1/payments/${earlier.id}`, { key: secondKey });
      assert.equal(fetched.status, 200, fetched.text);
      assert.equal(fetched.json.transaction_id, earlier.transaction_id);
      const created = await t.request('POST', '/api/v1/payments', { key: secondKey, body: paymentBody(`second-key-${randomUUID()}`) });
      assert.equal(created.status, 201, created.text);
    });

    it('is refused by another gateway process on the same database, within the key cache time', async () => {
      // Note: on PostgreSQL the second gateway opens its own pool and listener, as another process would; embedded PGlite admits one process, so there it shares the storage.
      const storage = t.gateway.context.storage;
      const other = await startTestGateway({}, storage.kind === 'pglite' ? { storage } : {});
      try {
        const merchant = await t.createMerchant('Revoked elsewhere');
        assert.equal((await other.request('GET', '/api/v1/payments', { key: merchant.apiKey })).status, 200);
        const revocation = await t.request('POST', `/admin/v1/keys/${merchant.keyId}/revoke`, { key: t.adminToken });
        assert.equal(revocation.status, 200, revocation.text);
        assertErrorEnvelope(await t.request('GET', '/api/v1/payments', { key: merchant.apiKey }), 401, 'authentication_failed');
        const deadline = Date.now() + apiKeyCacheTtlMs;
        let status = 200;
        while (status === 200 && Date.now() < deadline) status = (await other.request('GET', '/api/v1/payments', { key: merchant.apiKey })).status;
        assert.equal(status, 401, 'the other gateway refuses the key within the cache time');
      } finally {
        await other.close();
      }
    });

    it('stays revoked when revoked again', async () => {
      const again = await t.request('POST', `/admin/v1/keys/${revoked.keyId}/revoke`, { key: t.adminToken });
      assert.equal(again.status, 200, again.text);
      assertErrorEnvelope(await t.request('GET', '/api/v1/payments', { key: revoked.apiKey }), 401, 'authentication_failed');
    });
  });
});

describe('Admin API authentication', () => {
  let t: TestGateway;
  let merchant: Merchant;
  before(async () => {
    t = await startTestGateway();
    merchant = await t.createMerchant('Admin authentication');
  });
  after(() => t.close());

  const wrongTokens = (): Array<[string, Record<string, string>]> => [
    ['no token', {}],
    ['a wrong token', { authorization: `Bearer wrong-${t.adminToken}` }],
    ['the token with its last character cut', { authorization: `Bearer ${t.adminToken.slice(0, -1)}` }],
    ['the token under the Basic scheme', { authorization: `Basic ${t.adminToken}` }],
    ["a merchant's API key", { authorization: `Bearer ${merchant.apiKey}` }],
  ];

  it('serves the operator with the admin token', async () => {
    const listed = await t.request('GET', '/admin/v1/merchants', { key: t.adminToken });
    assert.equal(listed.status, 200, listed.text);
    assert.ok(listed.json.data.some((m: { merchant_id: number }) => m.merchant_id === merchant.merchantId));
  });

  it('refuses to create a merchant without the right token, and creates none', async () => {
    for (const [what, headers] of wrongTokens()) {
      const name = `Intruder ${randomUUID()}`;
      assertErrorEnvelope(await t.request('POST', '/admin/v1/merchants', { headers, body: { name } }), 401, 'authentication_failed');
      const listed = await t.request('GET', '/admin/v1/merchants', { key: t.adminToken });
      assert.ok(!listed.json.data.some((m: { name: string }) => m.name === name), `${what}: no merchant may be created`);
    }
  });

  it('refuses to list merchants or keys, issue a key, or move a payment without the right token', async () => {
    const created = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: paymentBody(`admin-${randomUUID()}`) });
    assert.equal(created.status, 201, created.text);
    for (const [, headers] of wrongTokens()) {
      for (const [method, path] of [
        ['GET', '/admin/v1/merchants'],
        ['GET', `/admin/v1/merchants/${merchant.merchantId}/keys`],
        ['POST', `/admin/v1/merchants/${merchant.merchantId}/keys`],
        ['POST', `/admin/v1/payments/${created.json.id}/complete`],
      ] as const) {
        const response = await t.request(method, path, { headers });
        assertErrorEnvelope(response, 401, 'authentication_failed');
        assert.ok(!response.text.includes(merchant.apiKey.slice(0, 11)));
      }
    }
    const keys = await t.request('GET', `/admin/v1/merchants/${merchant.merchantId}/keys`, { key: t.adminToken });
    assert.equal(keys.json.data.length, 1, 'no key may have been issued');
    const payment = await t.request('GET', `/api/v1/payments/${created.json.id}`, { key: merchant.apiKey });
    assert.equal(payment.json.status, 'pending', 'the payment may not have moved');
  });

  it('refuses to revoke a key without the right token, and the key keeps working', async () => {
    for (const [, headers] of wrongTokens()) {
      assertErrorEnvelope(await t.request('POST', `/admin/v1/keys/${merchant.keyId}/revoke`, { headers }), 401, 'authentication_failed');
    }
    const served = await t.request('GET', '/api/v1/payments', { key: merchant.apiKey });
    assert.equal(served.status, 200, served.text);
  });
});

describe('PayCrypt v1 rate limiting', () => {
  let t: TestGateway;
  let busy: Merchant;
  let other: Merchant;
  before(async () => {
    t = await startTestGateway({ PAYCRYPT_RATE_LIMIT_PER_MINUTE: '3' });
    busy = await t.createMerchant('Busy');
    other = await t.createMerchant('Other');
  });
  after(() => t.close());

  it('serves 3 requests of a key in a minute and answers the 4th with 429 rate_limit_exceeded and Retry-After', async () => {
    const created = await t.request('POST', '/api/v1/payments', { key: busy.apiKey, body: paymentBody(`limit-${randomUUID()}`) });
    assert.equal(created.status, 201, created.text);
    assert.equal((await t.request('GET', `/api/v1/payments/${created.json.id}`, { key: busy.apiKey })).status, 200);
    assert.equal((await t.request('GET', '/api/v1/payments', { key: busy.apiKey })).status, 200);

    const limited = await t.request('GET', '/api/v1/payments', { key: busy.apiKey });
    const error = assertErrorEnvelope(limited, 429, 'rate_limit_exceeded');
    assert.match(error.message, /3 per minute/);
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${limited.headers.get('retry-after')}`);
  });

  it('writes nothing for a request over the limit', async () => {
    const rowsBefore = await rowsOf(t, busy.merchantId);
    const reference = `over-limit-${randomUUID()}`;
    assertErrorEnvelope(await t.request('POST', '/api/v1/payments', { key: busy.apiKey, body: paymentBody(reference) }), 429, 'rate_limit_exceeded');
    assert.equal(await paymentsWithReference(t, reference), 0);
    assert.deepEqual(await rowsOf(t, busy.merchantId), rowsBefore);
    assert.deepEqual(rowsBefore, { payments: 1, events: 1 });
  });

  it("still serves another merchant's key", async () => {
    const listed = await t.request('GET', '/api/v1/payments', { key: other.apiKey });
    assert.equal(listed.status, 200, listed.text);
    assert.equal(listed.json.pagination.total, 0);
    const created = await t.request('POST', '/api/v1/payments', { key: other.apiKey, body: paymentBody(`other-${randomUUID()}`) });
    assert.equal(created.status, 201, created.text);
  });
});
