import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Storage } from '../storage/database.ts';
import { inTransaction } from '../storage/database.ts';
import { openTestStorage } from '../testing/harness.ts';
import { appendEvents, listEvents } from './events.ts';
import { createMerchant } from './merchants.ts';

const master = { key: Buffer.alloc(32, 7) };

describe('appendEvents', () => {
  let storage: Storage;
  let merchantId: number;

  before(async () => {
    storage = await openTestStorage();
    merchantId = (await createMerchant(storage.db, master, { name: 'Appender' })).merchant.id;
  });
  after(() => storage.close());

  it('writes more events than one statement takes, all of them and in the order given', async () => {
    const at = new Date('2026-11-22T10:00:00.000Z');
    const events = Array.from({ length: 2_345 }, (_, index) => ({ merchantId, paymentId: null, type: 'payment.detected', data: { index }, at }));
    const appended = await inTransaction(storage.db, (trx) => appendEvents(trx, events));
    assert.equal(new Set(appended.map((event) => event.id)).size, 2_345);

    // Newest first: the last one given is the first listed.
    const listed = await listEvents(storage.db, { merchantId, limit: 3_000 });
    assert.deepEqual(
      listed.events.map((event) => (event.data as { index: number }).index),
      events.map((_, index) => index).reverse(),
    );
    assert.deepEqual(
      listed.events.map((event) => event.id),
      appended.map((event) => event.id).reverse(),
    );
  });

  it('writes none of them when a batch fails, and reports that failure', async () => {
    const before = (await listEvents(storage.db, { merchantId, limit: 10_000 })).events.length;
    const at = new Date('2026-11-22T10:00:00.000Z');
    // Note: PostgreSQL text cannot hold a NUL character (`\u0000` in the batch's JSON), so the first
    // batch fails while the second is being built; the second is then refused too, and the call
    // rejects once, with the first batch's error.
    const events = Array.from({ length: 2_000 }, (_, index) => ({
      merchantId,
      paymentId: null,
      type: index === 5 ? 'payment.\u0000detected' : 'payment.detected',
      data: { index },
      at,
    }));
    await assert.rejects(inTransaction(storage.db, (trx) => appendEvents(trx, events)), /unsupported Unicode escape sequence/);
    assert.equal((await listEvents(storage.db, { merchantId, limit: 10_000 })).events.length, before);
  });
});
