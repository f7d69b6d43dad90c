import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../../../testing/harness.ts';
import { type ReceivedWebhook, startWebhookReceiver, type WebhookReceiver } from '../../../testing/webhook-receiver.ts';

type Merchant = Awaited<ReturnType<TestGateway['createMerchant']>>;

/** The event types of the PayCrypt v1 document. */
const documentedEventTypes = ['payment.created', 'payment.pending', 'payment.approved', 'payment.completed', 'payment.failed', 'payment.rejected', 'payment.cancelled'];
const deposit = { amount: 100.0, currency: 'USD', method: 'crypto', type: 'deposit', crypto_currency: 'USDT', description: 'Payment for order 123' };

/** HMAC-SHA256(secret, timestamp + "." + body), as the PayCrypt v1 document defines the signature. */
function sign(secret: string, webhook: ReceivedWebhook): string {
  return createHmac('sha256', secret).update(`${webhook.headers['x-paycrypt-timestamp']}.${webhook.body}`).digest('hex');
}

function eventOf(webhook: ReceivedWebhook): { type: string; paymentId: number } {
  const body = JSON.parse(webhook.body);
  return { type: body.event_type, paymentId: body.payment.id };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Longer than the dispatcher's longest sleep between looks at the queue. */
const quietPeriodMs = 1_500;

describe('webhook settings: GET, PUT, DELETE and rotate_secret on /api/v1/webhook_settings', () => {
  let t: TestGateway;
  const receivers: WebhookReceiver[] = [];

  before(async () => {
    t = await startTestGateway();
  });
  after(async () => {
    await Promise.all(receivers.map((receiver) => receiver.close()));
    await t?.close();
  });

  async function receiver(): Promise<WebhookReceiver> {
    const started = await startWebhookReceiver();
    receivers.push(started);
    return started;
  }

  async function settings(merchant: Merchant) {
    const response = await t.request('GET', '/api/v1/webhook_settings', { key: merchant.apiKey });
    assert.equal(response.status, 200, response.text);
    return response.json;
  }

  async function put(merchant: Merchant, body: unknown) {
    return t.request('PUT', '/api/v1/webhook_settings', { key: merchant.apiKey, body });
  }

  async function createPayment(merchant: Merchant, body: object = deposit): Promise<{ id: number; transaction_id: string }> {
    const response = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body });
    assert.equal(response.status, 201, response.text);
    return response.json;
  }

  async function move(paymentId: number, action: string) {
    const response = await t.request('POST', `/admin/v1/payments/${paymentId}/${action}`, { key: t.adminToken });
    assert.equal(response.status, 200, response.text);
  }

  async function eventsOf(merchant: Merchant, query = ''): Promise<Array<{ id: string; type: string; payment_id: number }>> {
    const response = await t.request('GET', `/api/v1/events?limit=100${query}`, { key: merchant.apiKey });
    assert.equal(response.status, 200, response.text);
    return response.json.data;
  }

  async function deliveriesOf(merchant: Merchant, eventId: string): Promise<any[]> {
    const response = await t.request('GET', `/api/v1/webhook_deliveries?event_id=${eventId}`, { key: merchant.apiKey });
    assert.equal(response.status, 200, response.text);
    return response.json.data;
  }

  it('GET before any set-up shows webhooks off, with no URL, events or secret', async () => {
    const merchant = await t.createMerchant('Not set up');
    assert.deepEqual(await settings(merchant), {
      enabled: false,
      url: null,
      events: null,
      secret: null,
      secret_rotation: null,
      created_at: null,
      updated_at: null,
    });
  });

  it('needs the merchant\'s API key', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/webhook_settings'],
      ['PUT', '/api/v1/webhook_settings'],
      ['DELETE', '/api/v1/webhook_settings'],
      ['POST', '/api/v1/webhook_settings/rotate_secret'],
    ] as const) {
      const response = await t.request(method, path, { body: method === 'PUT' ? { url: 'http://127.0.0.1:9/hook', enabled: true } : undefined });
      assert.equal(response.status, 401, `${method} ${path}`);
      assert.equal(response.json.error.code, 'authentication_failed');
    }
  });

  it('PUT generates a whsec_ secret shown in full once; GET and later PUTs show it masked; webhooks are signed with it', async () => {
    const merchant = await t.createMerchant('Generated secret');
    const hooks = await receiver();
    const first = await put(merchant, { url: hooks.url, enabled: true });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.enabled, true);
    assert.equal(first.json.url, hooks.url);
    assert.equal(first.json.events, null);
    assert.equal(first.json.secret_rotation, null);
    assert.match(first.json.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    const secret: string = first.json.secret;
    assert.match(secret, /^whsec_[0-9a-z]{40}$/);

    const shown = await settings(merchant);
    assert.equal(shown.url, hooks.url);
    assert.equal(shown.enabled, true);
    assert.equal(shown.secret, `whsec_••••••••${secret.slice(-4)}`);

    const again = await put(merchant, { url: hooks.url, enabled: true });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.secret, shown.secret, 'a PUT that does not change the secret does not show it');
    assert.ok(!again.text.includes(secret));

    const payment = await createPayment(merchant);
    const [webhook] = await hooks.waitFor(1);
    assert.deepEqual(eventOf(webhook!), { type: 'payment.created', paymentId: payment.id });
    assert.equal(webhook!.headers['x-paycrypt-signature'], sign(secret, webhook!));
  });

  it('PUT with the merchant\'s own secret shows it in full, because it changed, and webhooks are signed with it', async () => {
    const merchant = await t.createMerchant('Own secret');
    const hooks = await receiver();
    const generated = await put(merchant, { url: hooks.url, enabled: true });
    const own = 'my-own-webhook-secret-0123456789';
    const changed = await put(merchant, { url: hooks.url, enabled: true, secret: own });
    assert.equal(changed.status, 200, changed.text);
    assert.equal(changed.json.secret, own);
    assert.notEqual(own, generated.json.secret);
    assert.equal((await settings(merchant)).secret, '••••••••6789');

    const payment = await createPayment(merchant);
    const [webhook] = await hooks.waitFor(1);
    assert.deepEqual(eventOf(webhook!), { type: 'payment.created', paymentId: payment.id });
    assert.equal(webhook!.headers['x-paycrypt-signature'], sign(own, webhook!));
    assert.notEqual(webhook!.headers['x-paycrypt-signature'], sign(generated.json.secret, webhook!));
    assert.equal(webhook!.headers['x-paycrypt-signature-next'], undefined, 'a secret the merchant sets replaces the old one at once');
  });

  it('refuses a secret shorter than 16 characters with 400 and keeps the settings as they were', async () => {
    const merchant = await t.createMerchant('Short secret');
    const hooks = await receiver();
    await put(merchant, { url: hooks.url, enabled: true, secret: 'a-good-long-secret-abcd' });
    const before = await settings(merchant);
    const refused = await put(merchant, { url: 'http://127.0.0.1:9/elsewhere', enabled: false, secret: 'short-secret' });
    assert.equal(refused.status, 400, refused.text);
    assert.equal(refused.json.error.code, 'invalid_request');
    assert.equal(refused.json.error.details.invalid_fields[0].field, 'secret');
    assert.match(refused.json.error.message, /16/);
    assert.deepEqual(await settings(merchant), before);
  });

  it('refuses URLs that are not absolute http(s) URLs, or that carry credentials, with 400', async () => {
    const merchant = await t.createMerchant('Bad URLs');
    const hooks = await receiver();
    await put(merchant, { url: hooks.url, enabled: true });
    const before = await settings(merchant);
    for (const url of ['ftp://x', 'not a url', '/relative/path', 'javascript:alert(1)', 'http://user:pass@127.0.0.1:9/hook', 'https://token@shop.example/hook']) {
      const refused = await put(merchant, { url, enabled: true });
      assert.equal(refused.status, 400, `${url}: ${refused.text}`);
      assert.equal(refused.json.error.code, 'invalid_request');
      assert.equal(refused.json.error.details.invalid_fields[0].field, 'url', url);
    }
    assert.deepEqual(await settings(merchant), before);
  });

  it('refuses an unknown event type with 400 listing the allowed ones, and an empty events list with 400', async () => {
    const merchant = await t.createMerchant('Bad events');
    const hooks = await receiver();
    const unknown = await put(merchant, { url: hooks.url, enabled: true, events: ['payment.completed', 'payment.refunded'] });
    assert.equal(unknown.status, 400, unknown.text);
    assert.equal(unknown.json.error.code, 'invalid_request');
    assert.match(unknown.json.error.message, /payment\.refunded/);
    assert.doesNotMatch(unknown.json.error.message, /payment\.completed/);
    assert.equal(unknown.json.error.details.invalid_fields[0].field, 'events');
    for (const type of documentedEventTypes) assert.ok(unknown.json.error.details.allowed.includes(type), `${type} is allowed`);
    assert.ok(!unknown.json.error.details.allowed.includes('payment.refunded'));

    const empty = await put(merchant, { url: hooks.url, enabled: true, events: [] });
    assert.equal(empty.status, 400, empty.text);
    assert.equal(empty.json.error.code, 'invalid_request');
    assert.equal(empty.json.error.details.invalid_fields[0].field, 'events');

    assert.equal((await settings(merchant)).url, null, 'nothing was set up');
  });

  it('with events [payment.completed] only payment.completed arrives; the other events are still recorded', async () => {
    const merchant = await t.createMerchant('Chosen events');
    const hooks = await receiver();
    const chosen = await put(merchant, { url: hooks.url, enabled: true, events: ['payment.completed'] });
    assert.equal(chosen.status, 200, chosen.text);
    assert.deepEqual(chosen.json.events, ['payment.completed']);
    assert.deepEqual((await settings(merchant)).events, ['payment.completed']);

    const completed = await createPayment(merchant);
    const rejected = await createPayment(merchant);
    await move(completed.id, 'complete');
    await move(rejected.id, 'reject');
    const [webhook] = await hooks.waitFor(1);
    assert.deepEqual(eventOf(webhook!), { type: 'payment.completed', paymentId: completed.id });
    assert.equal(webhook!.headers['x-paycrypt-event'], 'payment.completed');
    await sleep(quietPeriodMs);
    assert.equal(hooks.received.length, 1);

    const events = await eventsOf(merchant);
    assert.deepEqual(
      events.map((event) => [event.type, event.payment_id]),
      [
        ['payment.rejected', rejected.id],
        ['payment.completed', completed.id],
        ['payment.created', rejected.id],
        ['payment.created', completed.id],
      ],
    );
    for (const event of events.filter((event) => event.type !== 'payment.completed')) {
      assert.deepEqual(await deliveriesOf(merchant, event.id), [], `${event.type} was not queued for delivery`);
    }

    const everything = await put(merchant, { url: hooks.url, enabled: true, events: null });
    assert.equal(everything.json.events, null);
    const later = await createPayment(merchant);
    await hooks.waitFor(2);
    assert.deepEqual(eventOf(hooks.received[1]!), { type: 'payment.created', paymentId: later.id });
  });

  it('switching webhooks off stops deliveries while events are still recorded; switching on sends the ones that waited, in order', async () => {
    const merchant = await t.createMerchant('Off and on');
    const hooks = await receiver();
    await put(merchant, { url: hooks.url, enabled: true });
    const first = await createPayment(merchant);
    await hooks.waitFor(1);

    const off = await put(merchant, { url: hooks.url, enabled: false });
    assert.equal(off.status, 200, off.text);
    assert.equal(off.json.enabled, false);
    assert.equal((await settings(merchant)).enabled, false);
    await move(first.id, 'approve');
    const second = await createPayment(merchant);
    await move(first.id, 'complete');
    await sleep(quietPeriodMs);
    assert.equal(hooks.received.length, 1, 'nothing is sent while webhooks are off');

    const recorded = await eventsOf(merchant);
    assert.deepEqual(
      recorded.map((event) => [event.type, event.payment_id]),
      [
        ['payment.completed', first.id],
        ['payment.created', second.id],
        ['payment.approved', first.id],
        ['payment.created', first.id],
      ],
    );
    for (const event of recorded.slice(0, 3)) {
      const deliveries = await deliveriesOf(merchant, event.id);
      assert.deepEqual(
        deliveries.map((delivery) => [delivery.state, delivery.attempts]),
        [['pending', 0]],
        `${event.type} waits`,
      );
    }

    const on = await put(merchant, { url: hooks.url, enabled: true });
    assert.equal(on.json.enabled, true);
    await hooks.waitFor(4);
    await sleep(300);
    assert.equal(hooks.received.length, 4);
    const waited = hooks.received.slice(1);
    assert.deepEqual(waited.map((webhook) => webhook.headers['x-paycrypt-event-id']).sort(), recorded.slice(0, 3).map((event) => event.id).sort());
    assert.deepEqual(
      waited.map(eventOf).filter((event) => event.paymentId === first.id),
      [
        { type: 'payment.approved', paymentId: first.id },
        { type: 'payment.completed', paymentId: first.id },
      ],
      'a payment\'s events arrive in order',
    );
  });

  it('DELETE removes the settings: GET shows them off, waiting deliveries end as failed, and nothing is sent any more', async () => {
    const merchant = await t.createMerchant('Deleted');
    const hooks = await receiver();
    const created = await put(merchant, { url: hooks.url, enabled: true });
    await put(merchant, { url: hooks.url, enabled: false });
    const waiting = await createPayment(merchant);
    const [waitingEvent] = await eventsOf(merchant, `&payment_id=${waiting.id}`);

    const deleted = await t.request('DELETE', '/api/v1/webhook_settings', { key: merchant.apiKey });
    assert.equal(deleted.status, 200, deleted.text);
    assert.equal(deleted.json.url, null);
    assert.equal(deleted.json.enabled, false);
    const shown = await settings(merchant);
    assert.deepEqual([shown.enabled, shown.url, shown.secret], [false, null, null]);

    const [delivery] = await deliveriesOf(merchant, waitingEvent!.id);
    assert.equal(delivery.state, 'failed');
    assert.equal(delivery.attempts, 0);
    assert.equal(delivery.last_error, 'webhook settings deleted');

    const after = await createPayment(merchant);
    const [afterEvent] = await eventsOf(merchant, `&payment_id=${after.id}`);
    assert.equal(afterEvent!.type, 'payment.created');
    assert.deepEqual(await deliveriesOf(merchant, afterEvent!.id), []);
    await sleep(quietPeriodMs);
    assert.equal(hooks.received.length, 0);

    const again = await put(merchant, { url: hooks.url, enabled: true });
    assert.match(again.json.secret, /^whsec_[0-9a-z]{40}$/, 'a new set-up generates a new secret and shows it');
    assert.notEqual(again.json.secret, created.json.secret);

    const missing = await t.request('DELETE', '/api/v1/webhook_settings', { key: (await t.createMerchant('Never set up')).apiKey });
    assert.equal(missing.status, 200);
    assert.equal(missing.json.url, null);
  });

  it('rotate_secret shows the new secret in full; during the overlap X-Paycrypt-Signature uses the old secret and X-Paycrypt-Signature-Next the new one', async () => {
    const merchant = await t.createMerchant('Rotation with overlap');
    const hooks = await receiver();
    const oldSecret: string = (await put(merchant, { url: hooks.url, enabled: true })).json.secret;

    const startedAt = Date.now();
    const rotated = await t.request('POST', '/api/v1/webhook_settings/rotate_secret', { key: merchant.apiKey, body: {} });
    assert.equal(rotated.status, 200, rotated.text);
    const newSecret: string = rotated.json.secret;
    assert.match(newSecret, /^whsec_[0-9a-z]{40}$/);
    assert.notEqual(newSecret, oldSecret);
    const expiresAt = Date.parse(rotated.json.secret_rotation.previous_secret_expires_at);
    assert.ok(Math.abs(expiresAt - (startedAt + 24 * 3_600_000)) < 5_000, 'the old secret signs for the default 24 hours');

    const shown = await settings(merchant);
    assert.equal(shown.secret, `whsec_••••••••${newSecret.slice(-4)}`);
    assert.deepEqual(shown.secret_rotation, rotated.json.secret_rotation);

    const payment = await createPayment(merchant);
    const [webhook] = await hooks.waitFor(1);
    assert.deepEqual(eventOf(webhook!), { type: 'payment.created', paymentId: payment.id });
    assert.equal(webhook!.headers['x-paycrypt-signature'], sign(oldSecret, webhook!), 'receivers on the old secret keep working');
    assert.equal(webhook!.headers['x-paycrypt-signature-next'], sign(newSecret, webhook!));

    const shorter = await t.request('POST', '/api/v1/webhook_settings/rotate_secret', { key: merchant.apiKey, body: { overlap_hours: 2 } });
    assert.equal(shorter.status, 200, shorter.text);
    assert.ok(Math.abs(Date.parse(shorter.json.secret_rotation.previous_secret_expires_at) - (Date.now() + 2 * 3_600_000)) < 5_000);
  });

  it('rotate_secret with overlap_hours 0 signs X-Paycrypt-Signature with the new secret at once, without X-Paycrypt-Signature-Next', async () => {
    const merchant = await t.createMerchant('Rotation without overlap');
    const hooks = await receiver();
    const oldSecret: string = (await put(merchant, { url: hooks.url, enabled: true })).json.secret;
    const rotated = await t.request('POST', '/api/v1/webhook_settings/rotate_secret', { key: merchant.apiKey, body: { overlap_hours: 0 } });
    assert.equal(rotated.status, 200, rotated.text);
    assert.equal(rotated.json.secret_rotation, null);
    const newSecret: string = rotated.json.secret;
    assert.notEqual(newSecret, oldSecret);

    await createPayment(merchant);
    const [webhook] = await hooks.waitFor(1);
    assert.equal(webhook!.headers['x-paycrypt-signature'], sign(newSecret, webhook!));
    assert.notEqual(webhook!.headers['x-paycrypt-signature'], sign(oldSecret, webhook!));
    assert.equal(webhook!.headers['x-paycrypt-signature-next'], undefined);
  });

  it('rotate_secret before any set-up is 404; an overlap outside 0 to 720 hours is 400', async () => {
    const merchant = await t.createMerchant('Nothing to rotate');
    const missing = await t.request('POST', '/api/v1/webhook_settings/rotate_secret', { key: merchant.apiKey, body: {} });
    assert.equal(missing.status, 404, missing.text);
    assert.equal(missing.json.error.code, 'resource_not_found');

    const hooks = await receiver();
    const before = (await put(merchant, { url: hooks.url, enabled: true })).json;
    for (const overlap_hours of [-1, 721, 1.5, '24']) {
      const refused = await t.request('POST', '/api/v1/webhook_settings/rotate_secret', { key: merchant.apiKey, body: { overlap_hours } });
      assert.equal(refused.status, 400, `${JSON.stringify(overlap_hours)}: ${refused.text}`);
      assert.equal(refused.json.error.code, 'invalid_request');
    }
    assert.equal((await settings(merchant)).secret, `whsec_••••••••${before.secret.slice(-4)}`, 'the secret did not change');
  });

  it('a merchant sees and changes only its own settings, and receives only its own events', async () => {
    const alice = await t.createMerchant('Alice');
    const bob = await t.createMerchant('Bob');
    const aliceHooks = await receiver();
    const bobHooks = await receiver();
    const aliceSecret: string = (await put(alice, { url: aliceHooks.url, enabled: true, events: ['payment.created'] })).json.secret;

    const bobsView = await settings(bob);
    assert.deepEqual([bobsView.enabled, bobsView.url, bobsView.secret], [false, null, null]);
    const bobSecret: string = (await put(bob, { url: bobHooks.url, enabled: true })).json.secret;
    assert.notEqual(bobSecret, aliceSecret);

    const alicesView = await settings(alice);
    assert.equal(alicesView.url, aliceHooks.url);
    assert.deepEqual(alicesView.events, ['payment.created']);
    assert.equal(alicesView.secret, `whsec_••••••••${aliceSecret.slice(-4)}`);

    assert.equal((await t.request('POST', '/api/v1/webhook_settings/rotate_secret', { key: bob.apiKey, body: { overlap_hours: 0 } })).status, 200);
    assert.equal((await t.request('DELETE', '/api/v1/webhook_settings', { key: bob.apiKey })).status, 200);
    assert.deepEqual(await settings(alice), alicesView, 'Bob\'s rotation and deletion left Alice\'s settings alone');

    await put(bob, { url: bobHooks.url, enabled: true });
    const alicePayment = await createPayment(alice);
    const bobPayment = await createPayment(bob);
    const [aliceWebhook] = await aliceHooks.waitFor(1);
    const [bobWebhook] = await bobHooks.waitFor(1);
    assert.deepEqual(eventOf(aliceWebhook!), { type: 'payment.created', paymentId: alicePayment.id });
    assert.deepEqual(eventOf(bobWebhook!), { type: 'payment.created', paymentId: bobPayment.id });
    assert.equal(aliceWebhook!.headers['x-paycrypt-signature'], sign(aliceSecret, aliceWebhook!));
    await sleep(300);
    assert.equal(aliceHooks.received.length, 1);
    assert.equal(bobHooks.received.length, 1);
  });
});
