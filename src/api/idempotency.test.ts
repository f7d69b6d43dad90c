import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../testing/harness.ts';
import { pruneIdempotencyKeys } from './idempotency.ts';

const body = { amount: 42.0, currency: 'USD', method: 'crypto', type: 'deposit', crypto_currency: 'USDT' };

describe('Idempotency-Key on POST /api/v1/payments', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway();
  });
  after(() => t.close());

  async function paymentCount(merchantId: number) {
    const row = await t.gateway.context.storage.db
      .selectFrom('payments')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('merchant_id', '=', merchantId)
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  it('returns the first response again for the same key and body, creating one payment', async () => {
    const merchant = await t.createMerchant();
    const headers = { 'idempotency-key': 'order-1001' };
    const first = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body, headers });
    const second = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body, headers });
    assert.equal(first.status, 201);
    assert.equal(second.status, 201);
    assert.equal(second.text, first.text);
    assert.equal(first.headers.get('idempotent-replayed'), null);
    assert.equal(second.headers.get('idempotent-replayed'), 'true');
    assert.equal(await paymentCount(merchant.merchantId), 1);
  });

  it('refuses the same key with another body and writes nothing', async () => {
    const merchant = await t.createMerchant();
    const headers = { 'idempotency-key': 'order-1002' };
    await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body, headers });
    const conflict = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: { ...body, amount: 43 }, headers });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.json.error.code, 'idempotency_conflict');
    assert.match(conflict.json.error.message, /different request/);
    assert.equal(await paymentCount(merchant.merchantId), 1);
  });

  it('keeps keys apart per merchant', async () => {
    const [a, b] = [await t.createMerchant('A'), await t.createMerchant('B')];
    const headers = { 'idempotency-key': 'shared-key' };
    const fromA = await t.request('POST', '/api/v1/payments', { key: a.apiKey, body, headers });
    const fromB = await t.request('POST', '/api/v1/payments', { key: b.apiKey, body, headers });
    assert.equal(fromB.status, 201);
    assert.notEqual(fromB.json.id, fromA.json.id);
  });

  it('creates one payment when the same request races with itself', async () => {
    const merchant = await t.createMerchant();
    const headers = { 'idempotency-key': 'race-1' };
    const responses = await Promise.all(
      Array.from({ length: 8 }, () => t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body, headers })),
    );
    assert.deepEqual(new Set(responses.map((response) => response.status)), new Set([201]));
    assert.equal(new Set(responses.map((response) => response.json.id)).size, 1);
    assert.equal(await paymentCount(merchant.merchantId), 1);
  });

  it('does not spend a key on a request that failed', async () => {
    const merchant = await t.createMerchant();
    const headers = { 'idempotency-key': 'retry-after-fix' };
    const rejected = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: { ...body, currency: 'XYZ' }, headers });
    assert.equal(rejected.status, 400);
    const accepted = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body, headers });
    assert.equal(accepted.status, 201);
  });

  it('refuses a malformed key', async () => {
    const merchant = await t.createMerchant();
    for (const key of ['has space', 'x'.repeat(256)]) {
      const response = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body, headers: { 'idempotency-key': key } });
      assert.equal(response.status, 400);
      assert.equal(response.json.error.code, 'invalid_request');
    }
    assert.equal(await paymentCount(merchant.merchantId), 0);
  });

  it('forgets a key only once it is older than the retention period', async () => {
    const merchant = await t.createMerchant();
    const headers = { 'idempotency-key': 'old-key' };
    const first = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body, headers });
    const db = t.gateway.context.storage.db;
    await pruneIdempotencyKeys(db, new Date(Date.now() - 24 * 3_600_000));
    const replay = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body, headers });
    assert.equal(replay.json.id, first.json.id);
    await db.updateTable('idempotency_keys').set({ created_at: new Date(Date.now() - 49 * 3_600_000) }).where('merchant_id', '=', merchant.merchantId).execute();
    await pruneIdempotencyKeys(db, new Date(Date.now() - 48 * 3_600_000));
    const fresh = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body, headers });
    assert.equal(fresh.status, 201);
    assert.notEqual(fresh.json.id, first.json.id);
  });
});
