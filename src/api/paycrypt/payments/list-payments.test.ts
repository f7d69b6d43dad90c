import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../../../testing/harness.ts';

/** Payments at known instants, oldest first. */
const created = [
  { at: '2025-11-20T23:59:59.500Z', status: 'pending' },
  { at: '2025-11-21T00:00:00.000Z', status: 'completed' },
  { at: '2025-11-21T12:00:00.400Z', status: 'completed' },
  { at: '2025-11-21T23:59:59.999Z', status: 'failed' },
  { at: '2025-11-22T00:00:00.000Z', status: 'pending' },
] as const;

describe('listing payments: pagination and date filters', () => {
  let t: TestGateway;
  let key: string;
  const ids: number[] = [];

  before(async () => {
    t = await startTestGateway();
    const merchant = await t.createMerchant('Listing');
    key = merchant.apiKey;
    for (const { at, status } of created) {
      const response = await t.request('POST', '/api/v1/payments', { key, body: { amount: 5, currency: 'USD', method: 'bank', type: 'deposit' } });
      await t.gateway.context.storage.db.updateTable('payments').set({ created_at: new Date(at), status }).where('id', '=', response.json.id).execute();
      ids.push(response.json.id);
    }
  });
  after(() => t.close());

  async function list(query: string) {
    const response = await t.request('GET', `/api/v1/payments?${query}`, { key });
    assert.equal(response.status, 200, response.text);
    return { ids: response.json.data.map((payment: { id: number }) => payment.id) as number[], pagination: response.json.pagination };
  }

  const cases: Array<[string, string, number[]]> = [
    ['a calendar to_date covers its whole day', 'to_date=2025-11-21', [3, 2, 1, 0]],
    ['a calendar from_date starts at midnight UTC', 'from_date=2025-11-21', [4, 3, 2, 1]],
    ['one calendar day on both ends', 'from_date=2025-11-21&to_date=2025-11-21', [3, 2, 1]],
    ['a to_date with seconds covers that whole second', 'to_date=2025-11-21T12:00:00Z', [2, 1, 0]],
    ['a from_date with an offset is converted to UTC', 'from_date=2025-11-21T14:00:00%2B02:00', [4, 3, 2]],
    ['a date-time without offset is UTC', 'from_date=2025-11-21T00:00:00&to_date=2025-11-21T00:00:00', [1]],
    ['status and dates combine', 'status=completed&from_date=2025-11-21T06:00:00Z', [2]],
    ['a range with nothing in it', 'from_date=2030-01-01', []],
  ];
  for (const [name, query, expected] of cases) {
    it(`filters: ${name}`, async () => {
      const result = await list(query);
      assert.deepEqual(result.ids, expected.map((index) => ids[index]));
      assert.equal(result.pagination.total, expected.length);
    });
  }

  it('pages newest first without gaps or repeats, and past the end answers an empty page', async () => {
    const seen: number[] = [];
    for (let page = 1; page <= 3; page++) {
      const result = await list(`page=${page}&per_page=2`);
      assert.deepEqual(result.pagination, { page, per_page: 2, total: 5, pages: 3 });
      seen.push(...result.ids);
    }
    assert.deepEqual(seen, [...ids].reverse());
    const beyond = await list('page=4&per_page=2');
    assert.deepEqual(beyond.ids, []);
    assert.deepEqual(beyond.pagination, { page: 4, per_page: 2, total: 5, pages: 3 });
  });

  it('defaults to page 1 of 20 and accepts the maximum of 100 per page', async () => {
    assert.deepEqual((await list('')).pagination, { page: 1, per_page: 20, total: 5, pages: 1 });
    assert.equal((await list('per_page=100')).pagination.per_page, 100);
  });

  it('answers zero pages when nothing matches', async () => {
    assert.deepEqual((await list('status=cancelled')).pagination, { page: 1, per_page: 20, total: 0, pages: 0 });
  });
});
