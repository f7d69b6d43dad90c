import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Storage } from '../storage/database.ts';
import { inTransaction } from '../storage/database.ts';
import { openTestStorage } from '../testing/harness.ts';
import { appendEvents, listEvents } from './events.ts';
import { createMerchant } from './merchants.ts';
import { webhookChannel } from './webhooks/delivery-queue.ts';
import { putWebhookSettings } from './webhooks/endpoints.ts';

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

describe('appendEvents and the webhook dispatchers', () => {
  let storage: Storage;

  before(async () => {
    storage = await openTestStorage();
  });
  after(() => storage.close());

  it('wakes the dispatchers for a delivery to a switched-on endpoint, not for one paused behind a switched-off endpoint', async () => {
    const off = (await createMerchant(storage.db, master, { name: 'Webhooks off' })).merchant.id;
    const on = (await createMerchant(storage.db, master, { name: 'Webhooks on' })).merchant.id;
    // Note: nothing listens at these URLs; no dispatcher runs here, only the notifications are counted.
    await putWebhookSettings(storage.db, master, { merchantId: off, policy: 'any', url: 'http://127.0.0.1:9/off', enabled: false });
    await putWebhookSettings(storage.db, master, { merchantId: on, policy: 'any', url: 'http://127.0.0.1:9/on', enabled: true });
    let notifications = 0;
    let notified: () => void = () => {};
    const unlisten = await storage.listen(webhookChannel, () => {
      notifications += 1;
      notified();
    });
    try {
      // Note: a listener on PostgreSQL is woken once when it connects (to look at what it may have missed); that one is not counted.
      notifications = 0;
      const firstNotification = new Promise<void>((resolve) => (notified = resolve));
      const at = new Date();
      // Two transactions, in this order: a notification of the first would arrive before the second's.
      await inTransaction(storage.db, (trx) => appendEvents(trx, [{ merchantId: off, paymentId: null, type: 'payment.created', data: {}, at }]));
      await inTransaction(storage.db, (trx) => appendEvents(trx, [{ merchantId: on, paymentId: null, type: 'payment.created', data: {}, at }]));
      await firstNotification;
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(notifications, 1);
      const states = await storage.db.selectFrom('webhook_deliveries').select(['merchant_id', 'state']).orderBy('merchant_id').execute();
      assert.deepEqual(
        states.map((row) => [Number(row.merchant_id), row.state]),
        [
          [off, 'paused'],
          [on, 'pending'],
        ],
      );
    } finally {
      await unlisten();
    }
  });
});
