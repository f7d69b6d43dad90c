import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../../../testing/harness.ts';

describe('PayCrypt v1 payments: happy paths', () => {
  let t: TestGateway;
  let merchant: Awaited<ReturnType<TestGateway['createMerchant']>>;
  before(async () => {
    t = await startTestGateway();
    merchant = await t.createMerchant('Happy paths');
  });
  after(() => t.close());

  it('creates a crypto deposit with the documented fields, quoted at the documented 99.5 USDT for 100.00 USD', async () => {
    const response = await t.request('POST', '/api/v1/payments', {
      key: merchant.apiKey,
      rawBody:
        '{"amount": 100.00, "currency": "USD", "method": "crypto", "type": "deposit", "crypto_currency": "USDT", "crypto_network": "TRC20", "client_reference": "order_123", "description": "Payment for order 123"}',
    });
    assert.equal(response.status, 201);
    const payment = response.json;
    assert.equal(typeof payment.id, 'number');
    assert.match(payment.transaction_id, /^pay_[0-9a-z]+$/);
    assert.equal(payment.status, 'pending');
    assert.equal(payment.method, 'crypto');
    assert.equal(payment.type, 'deposit');
    assert.equal(payment.currency, 'USD');
    assert.equal(payment.crypto_currency, 'USDT');
    assert.equal(payment.crypto_network, 'TRC20');
    assert.equal(payment.client_reference, 'order_123');
    assert.equal(payment.description, 'Payment for order 123');
    assert.match(payment.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    // Amounts are JSON numbers written exactly: the fiat with its 2 decimals.
    assert.match(response.text, /"amount":100\.00,/);
    assert.match(response.text, /"crypto_amount":99\.5,/);
  });

  it('gets a payment by its numeric id and by its transaction id', async () => {
    const created = await t.request('POST', '/api/v1/payments', {
      key: merchant.apiKey,
      body: { amount: 25.5, currency: 'EUR', method: 'bank', type: 'withdraw' },
    });
    assert.equal(created.status, 201);
    assert.equal(created.json.crypto_amount, null);
    for (const id of [created.json.id, created.json.transaction_id]) {
      const fetched = await t.request('GET', `/api/v1/payments/${id}`, { key: merchant.apiKey });
      assert.equal(fetched.status, 200);
      assert.deepEqual(fetched.json, created.json);
      assert.match(fetched.text, /"amount":25\.50,/);
      assert.match(fetched.json.updated_at, /Z$/);
    }
  });

  it('lists payments newest first with the documented pagination object', async () => {
    const other = await t.createMerchant('Lister');
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const created = await t.request('POST', '/api/v1/payments', { key: other.apiKey, body: { amount: 10 + i, currency: 'USD', method: 'crypto', type: 'deposit' } });
      ids.push(created.json.id);
    }
    const list = await t.request('GET', '/api/v1/payments?page=1&per_page=2', { key: other.apiKey });
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.pagination, { page: 1, per_page: 2, total: 3, pages: 2 });
    assert.deepEqual(list.json.data.map((p: { id: number }) => p.id), [ids[2], ids[1]]);
    const second = await t.request('GET', '/api/v1/payments?page=2&per_page=2', { key: other.apiKey });
    assert.deepEqual(second.json.data.map((p: { id: number }) => p.id), [ids[0]]);
  });

  it('defaults a crypto payment without crypto fields to USDT on its first network', async () => {
    const response = await t.request('POST', '/api/v1/payments', {
      key: merchant.apiKey,
      body: { amount: 100.0, currency: 'USD', method: 'crypto', type: 'deposit', description: 'Test payment' },
    });
    assert.equal(response.status, 201);
    assert.equal(response.json.crypto_currency, 'USDT');
    assert.equal(response.json.crypto_network, 'TRC20');
  });
});
