import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway, type TestResponse } from '../../../testing/harness.ts';

type Merchant = Awaited<ReturnType<TestGateway['createMerchant']>>;
type ErrorBody = { code: string; message: string; details?: Record<string, any> };

/** The PayCrypt v1 envelope, `{"error":{"code","message","details"?}}`, and nothing else. */
function assertErrorEnvelope(response: TestResponse, status: number, code: string): ErrorBody {
  assert.equal(response.status, status, response.text);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(Object.keys(response.json ?? {}), ['error'], response.text);
  const error = response.json.error as ErrorBody;
  assert.equal(error.code, code);
  assert.equal(typeof error.message, 'string');
  assert.ok(error.message.length > 0);
  for (const key of Object.keys(error)) assert.ok(['code', 'message', 'details'].includes(key), `unexpected key ${key} in ${response.text}`);
  if (error.details !== undefined) assert.equal(typeof error.details, 'object');
  return error;
}

/** Every field an error points at, whether missing, invalid or refused by a business rule: always in one of the two documented lists. */
function fieldsNamedBy(error: ErrorBody): string[] {
  const details = error.details ?? {};
  assert.equal(details.field, undefined, 'refused fields are listed in invalid_fields');
  return [
    ...((details.missing_fields as string[] | undefined) ?? []),
    ...((details.invalid_fields as Array<{ field: string }> | undefined) ?? []).map((invalid) => invalid.field),
  ];
}

const validBody = { amount: 100.0, currency: 'USD', method: 'crypto', type: 'deposit' };

/** A body with `amount` written as exactly `amountText`, so its JSON number keeps its own characters. */
function withAmount(amountText: string, currency = 'USD'): string {
  return `{"amount": ${amountText}, "currency": "${currency}", "method": "crypto", "type": "deposit"}`;
}

describe('PayCrypt v1 payments: bad input', () => {
  let t: TestGateway;
  let merchant: Merchant;
  before(async () => {
    t = await startTestGateway();
    merchant = await t.createMerchant('Bad input');
    const first = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: { ...validBody, description: 'The one good payment' } });
    assert.equal(first.status, 201, first.text);
  });
  after(() => t.close());

  /** What the merchant can see and what the database holds for it. */
  async function footprint() {
    const db = t.gateway.context.storage.db;
    const count = async (table: 'payments' | 'events') =>
      Number(
        (
          await db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll<number>().as('rows'))
            .where('merchant_id', '=', merchant.merchantId)
            .executeTakeFirstOrThrow()
        ).rows,
      );
    const listed = await t.request('GET', '/api/v1/payments', { key: merchant.apiKey });
    assert.equal(listed.status, 200, listed.text);
    return { listedTotal: listed.json.pagination.total as number, paymentRows: await count('payments'), eventRows: await count('events') };
  }

  /** Sends a request that must be refused in the envelope, and checks that it wrote nothing. */
  async function refused(send: () => Promise<TestResponse>, status: number, code: string): Promise<ErrorBody> {
    const before = await footprint();
    const error = assertErrorEnvelope(await send(), status, code);
    assert.deepEqual(await footprint(), before, 'a refused request must write nothing');
    return error;
  }

  const create = (options: { body?: unknown; rawBody?: string; headers?: Record<string, string> }) => () =>
    t.request('POST', '/api/v1/payments', { key: merchant.apiKey, ...options });

  describe('a body that is not a JSON object', () => {
    for (const [what, rawBody] of [
      ['a cut-off object', '{"amount": 100.00,'],
      ['unquoted keys', '{amount: 100, currency: "USD"}'],
      ['single quotes', "{'amount': 100}"],
      ['text after the object', '{"amount": 100, "currency": "USD", "method": "crypto", "type": "deposit"} trailing'],
      ['NaN as a number', '{"amount": NaN, "currency": "USD", "method": "crypto", "type": "deposit"}'],
      ['a key given twice', '{"amount": 1, "amount": 100, "currency": "USD", "method": "crypto", "type": "deposit"}'],
    ] as const) {
      it(`refuses malformed JSON (${what}) as invalid_request`, async () => {
        const error = await refused(create({ rawBody }), 400, 'invalid_request');
        assert.match(error.message, /^Malformed JSON/);
      });
    }

    for (const [what, rawBody] of [
      ['an array', '[{"amount": 100, "currency": "USD", "method": "crypto", "type": "deposit"}]'],
      ['a string', '"100 USD"'],
      ['null', 'null'],
      ['a number', '100'],
      ['an empty body', ''],
      ['a body of blanks', '  \n '],
    ] as const) {
      it(`refuses ${what} with "Request body must be a JSON object"`, async () => {
        const error = await refused(create({ rawBody }), 400, 'invalid_request');
        assert.equal(error.message, 'Request body must be a JSON object');
      });
    }

    it('refuses a POST with no body and no Content-Type at all', async () => {
      const error = await refused(() => t.request('POST', '/api/v1/payments', { key: merchant.apiKey }), 400, 'invalid_request');
      assert.equal(error.message, 'Request body must be a JSON object');
    });
  });

  describe('missing fields', () => {
    for (const field of ['amount', 'currency', 'method', 'type'] as const) {
      it(`answers "Missing required field: ${field}" and lists it in details.missing_fields`, async () => {
        const { [field]: _omitted, ...body } = validBody;
        const error = await refused(create({ body }), 400, 'invalid_request');
        assert.equal(error.message, `Missing required field: ${field}`);
        assert.deepEqual(error.details, { missing_fields: [field] });
      });
    }

    it('lists every missing field of an empty object', async () => {
      const error = await refused(create({ body: {} }), 400, 'invalid_request');
      assert.equal(error.message, 'Missing required fields: amount, currency, method, type');
      assert.deepEqual(error.details, { missing_fields: ['amount', 'currency', 'method', 'type'] });
    });

    it('reports missing and invalid fields together', async () => {
      const error = await refused(create({ body: { amount: '100.00', currency: 'USD' } }), 400, 'invalid_request');
      assert.equal(error.message, 'Missing required fields: method, type');
      assert.deepEqual(error.details?.missing_fields, ['method', 'type']);
      assert.deepEqual(
        error.details?.invalid_fields.map((invalid: { field: string }) => invalid.field),
        ['amount'],
      );
    });
  });

  describe('fields of the wrong type or out of their enum', () => {
    for (const [field, value, expected] of [
      ['amount', '100.00', /expected a number/],
      ['amount', true, /expected a number/],
      ['amount', null, /expected a number/],
      ['amount', { value: 100 }, /expected a number/],
      ['currency', 840, /expected string, received number/],
      ['method', 'card', /crypto.*bank/],
      ['method', 'CRYPTO', /crypto.*bank/],
      ['type', 'refund', /deposit.*withdraw/],
      ['description', 5, /expected string, received number/],
      ['client_reference', 123, /expected string, received number/],
      ['crypto_currency', ['USDT'], /expected string/],
    ] as const) {
      it(`refuses ${field} = ${JSON.stringify(value)}, naming the field`, async () => {
        const error = await refused(create({ body: { ...validBody, [field]: value } }), 400, 'invalid_request');
        assert.ok(error.message.startsWith(`Invalid field ${field}: `), error.message);
        assert.match(error.message, expected);
        assert.deepEqual(fieldsNamedBy(error), [field]);
      });
    }
  });

  describe('amounts', () => {
    for (const [amountText, currency, message] of [
      ['-1', 'USD', 'amount must be greater than zero'],
      ['-100.00', 'USD', 'amount must be greater than zero'],
      ['0', 'USD', 'amount must be greater than zero'],
      ['0.00', 'USD', 'amount must be greater than zero'],
      ['-0', 'USD', 'amount must be greater than zero'],
      ['1000000000000.01', 'USD', 'amount must not exceed 1000000000000'],
      ['1e13', 'USD', 'amount must not exceed 1000000000000'],
      ['1e100', 'USD', 'amount must not exceed 1000000000000'],
      ['100.001', 'USD', 'amount has more than 2 decimal places for USD'],
      ['0.001', 'USD', 'amount has more than 2 decimal places for USD'],
      ['1.5', 'JPY', 'amount has more than 0 decimal places for JPY'],
      ['1e999', 'USD', 'Invalid field amount: expected a finite decimal number'],
      ['1e-999', 'USD', 'Invalid field amount: expected a finite decimal number'],
    ] as const) {
      it(`refuses ${amountText} ${currency}: "${message}"`, async () => {
        const error = await refused(create({ rawBody: withAmount(amountText, currency) }), 400, 'invalid_request');
        assert.equal(error.message, message);
        assert.deepEqual(fieldsNamedBy(error), ['amount']);
      });
    }
  });

  describe('currencies, assets and networks', () => {
    for (const [what, body, field, message] of [
      ['an unknown fiat currency', { ...validBody, currency: 'XXX' }, 'currency', /^Unsupported currency: XXX/],
      ['a lower-case currency code', { ...validBody, currency: 'usd' }, 'currency', /3-letter upper-case currency code/],
      ['a currency code of four letters', { ...validBody, currency: 'USDT' }, 'currency', /3-letter upper-case currency code/],
      ['a crypto asset as the fiat currency', { ...validBody, currency: 'BTC' }, 'currency', /^currency must be a fiat currency code, got BTC$/],
      ['an unknown crypto_currency', { ...validBody, crypto_currency: 'DOGE' }, 'crypto_currency', /^Unsupported crypto_currency: DOGE$/],
      ['a lower-case crypto_currency', { ...validBody, crypto_currency: 'usdt' }, 'crypto_currency', /upper-case asset symbol/],
      [
        'a network the asset is not on (USDT on BTC)',
        { ...validBody, crypto_currency: 'USDT', crypto_network: 'BTC' },
        'crypto_network',
        /^Unsupported crypto_network BTC for USDT; use one of TRC20, ERC20, BEP20$/,
      ],
      ['a network for the default asset it is not on', { ...validBody, crypto_network: 'LTC' }, 'crypto_network', /^Unsupported crypto_network LTC for USDT/],
      ['crypto_currency with method bank', { ...validBody, method: 'bank', crypto_currency: 'USDT' }, 'crypto_currency', /apply only to method "crypto"/],
      ['crypto_network with method bank', { ...validBody, method: 'bank', crypto_network: 'TRC20' }, 'crypto_network', /apply only to method "crypto"/],
    ] as const) {
      it(`refuses ${what}, naming ${field}`, async () => {
        const error = await refused(create({ body }), 400, 'invalid_request');
        assert.match(error.message, message);
        assert.deepEqual(fieldsNamedBy(error), [field]);
      });
    }
  });

  describe('unknown and overlong fields', () => {
    it('refuses a field the API does not define, rather than ignoring it', async () => {
      const error = await refused(create({ body: { ...validBody, callback_url: 'https://example.com/hook' } }), 400, 'invalid_request');
      assert.equal(error.message, 'Invalid field callback_url: unknown field');
      assert.deepEqual(error.details, { invalid_fields: [{ field: 'callback_url', message: 'unknown field' }] });
    });

    for (const [field, length] of [
      ['description', 1001],
      ['client_reference', 256],
    ] as const) {
      it(`refuses a ${field} of ${length} characters`, async () => {
        const error = await refused(create({ body: { ...validBody, [field]: 'x'.repeat(length) } }), 400, 'invalid_request');
        assert.equal(error.message, `Invalid field ${field}: must be at most ${length - 1} characters`);
        assert.deepEqual(fieldsNamedBy(error), [field]);
      });
    }
  });

  describe('Idempotency-Key on a refused request', () => {
    for (const [what, body] of [
      ['a body the schema refuses', { ...validBody, amount: '100.00' }],
      ['a body the payment rules refuse', { ...validBody, currency: 'XXX' }],
    ] as const) {
      it(`does not spend the key on ${what}: the corrected request is created, then replayed`, async () => {
        const headers = { 'idempotency-key': `refused-${Math.random().toString(36).slice(2)}` };
        await refused(create({ body, headers }), 400, 'invalid_request');
        const createdOnce = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: validBody, headers });
        assert.equal(createdOnce.status, 201, createdOnce.text);
        const replayed = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: validBody, headers });
        assert.equal(replayed.status, 201);
        assert.equal(replayed.headers.get('idempotent-replayed'), 'true');
        assert.equal(replayed.json.id, createdOnce.json.id);
      });
    }
  });

  describe('getting a payment that is not there', () => {
    for (const id of ['999999999999', 'pay_doesnotexist0000000']) {
      it(`answers 404 resource_not_found for ${id}`, async () => {
        const error = await refused(() => t.request('GET', `/api/v1/payments/${id}`, { key: merchant.apiKey }), 404, 'resource_not_found');
        assert.equal(error.message, `Payment not found: ${id}`);
      });
    }

    for (const id of ['abc', '0', '-1', '1.5', '1e3', '007', 'pay_', 'PAY_ABC', '1234567890123456', `pay_${'a'.repeat(65)}`]) {
      it(`answers 404 resource_not_found for the malformed id ${JSON.stringify(id)}`, async () => {
        await refused(() => t.request('GET', `/api/v1/payments/${encodeURIComponent(id)}`, { key: merchant.apiKey }), 404, 'resource_not_found');
      });
    }
  });

  describe("another merchant's payment", () => {
    let owner: Merchant;
    let theirs: any;
    before(async () => {
      owner = await t.createMerchant('Owner of a private payment');
      const created = await t.request('POST', '/api/v1/payments', {
        key: owner.apiKey,
        body: { amount: 4321.09, currency: 'EUR', method: 'crypto', type: 'deposit', client_reference: 'owner-private-ref-7f3a', description: 'Owner private order 7f3a' },
      });
      assert.equal(created.status, 201, created.text);
      theirs = created.json;
    });

    it('is visible to its owner by both of its ids', async () => {
      for (const id of [theirs.id, theirs.transaction_id]) {
        const fetched = await t.request('GET', `/api/v1/payments/${id}`, { key: owner.apiKey });
        assert.equal(fetched.status, 200, fetched.text);
        assert.equal(fetched.json.client_reference, 'owner-private-ref-7f3a');
      }
    });

    for (const by of ['numeric id', 'transaction id'] as const) {
      it(`is not found by its ${by}, exactly like a payment that never existed, and leaks none of its data`, async () => {
        const id = by === 'numeric id' ? theirs.id : theirs.transaction_id;
        const response = await t.request('GET', `/api/v1/payments/${id}`, { key: merchant.apiKey });
        const error = assertErrorEnvelope(response, 404, 'resource_not_found');
        assert.deepEqual(error, { code: 'resource_not_found', message: `Payment not found: ${id}` });
        const secrets = ['owner-private-ref-7f3a', 'Owner private order 7f3a', '4321.09', ...(by === 'numeric id' ? [theirs.transaction_id] : [])];
        for (const secret of secrets) assert.ok(!response.text.includes(secret), `the answer must not reveal ${secret}`);
      });
    }

    it('is not counted in the other merchant\'s list', async () => {
      const listed = await t.request('GET', '/api/v1/payments?per_page=100', { key: merchant.apiKey });
      assert.equal(listed.status, 200);
      assert.ok(!listed.json.data.some((payment: { id: number }) => payment.id === theirs.id));
      assert.ok(!listed.text.includes('owner-private-ref-7f3a'));
    });
  });

  describe('list filters', () => {
    for (const [query, field] of [
      ['per_page=101', 'per_page'],
      ['per_page=0', 'per_page'],
      ['per_page=-5', 'per_page'],
      ['per_page=', 'per_page'],
      ['page=0', 'page'],
      ['page=abc', 'page'],
      ['page=1.5', 'page'],
      ['page=1&page=2', 'page'],
      ['status=paid', 'status'],
      ['status=PENDING', 'status'],
      ['from_date=2025-13-01', 'from_date'],
      ['to_date=2025-02-30', 'to_date'],
      ['from_date=yesterday', 'from_date'],
      ['to_date=2025-11-21T25:00:00Z', 'to_date'],
      ['from_date=21.11.2025', 'from_date'],
      ['from_date=2025-11-22&to_date=2025-11-21', 'from_date'],
      ['from_date=2025-11-21T12:00:01Z&to_date=2025-11-21T12:00:00Z', 'from_date'],
    ] as const) {
      it(`refuses ?${query}, naming ${field}`, async () => {
        const error = await refused(() => t.request('GET', `/api/v1/payments?${query}`, { key: merchant.apiKey }), 400, 'invalid_request');
        assert.ok(error.message.includes(field), error.message);
        assert.deepEqual(fieldsNamedBy(error), [field]);
      });
    }

    for (const query of ['per_page=100', 'per_page=1&page=1000000', 'status=cancelled', 'from_date=2025-11-21&to_date=2025-11-21', 'from_date=2025-11-21T12:00:00Z&to_date=2025-11-21T12:00:00Z']) {
      it(`accepts the limit case ?${query}`, async () => {
        const listed = await t.request('GET', `/api/v1/payments?${query}`, { key: merchant.apiKey });
        assert.equal(listed.status, 200, listed.text);
        assert.ok(Array.isArray(listed.json.data));
      });
    }
  });
});

describe('PayCrypt v1 payments: amounts and texts at the limits that are accepted', () => {
  let t: TestGateway;
  let merchant: Merchant;
  before(async () => {
    t = await startTestGateway();
    merchant = await t.createMerchant('Limits');
  });
  after(() => t.close());

  for (const [amountText, written] of [
    ['1e2', '100.00'],
    ['1E+2', '100.00'],
    ['0.5e1', '5.00'],
    ['100.10', '100.10'],
    ['100.000', '100.00'],
    ['0.01', '0.01'],
    ['1000000000000', '1000000000000.00'],
  ] as const) {
    it(`creates a payment of ${amountText} USD, written back as ${written}`, async () => {
      const response = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, rawBody: withAmount(amountText) });
      assert.equal(response.status, 201, response.text);
      assert.match(response.text, new RegExp(`"amount":${written.replace('.', '\\.')},`));
    });
  }

  it('creates a payment whose description and client_reference are exactly at their limits', async () => {
    const body = { ...validBody, description: 'd'.repeat(1000), client_reference: 'r'.repeat(255) };
    const response = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body });
    assert.equal(response.status, 201, response.text);
    assert.equal(response.json.description, body.description);
    assert.equal(response.json.client_reference, body.client_reference);
  });
});
