import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startTestGateway, type TestGateway } from '../../../testing/harness.ts';
import { type ReceivedWebhook, startWebhookReceiver, type WebhookReceiver } from '../../../testing/webhook-receiver.ts';

type Merchant = Awaited<ReturnType<TestGateway['createMerchant']>>;
type EventView = { id: string; type: string; payment_id: number; created_at: string; data: any };

const deposit = { amount: 100.0, currency: 'USD', method: 'crypto', type: 'deposit', crypto_currency: 'USDT', description: 'Payment for order 123' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function sign(secret: string, webhook: ReceivedWebhook): string {
  return createHmac('sha256', secret).update(`${webhook.headers['x-paycrypt-timestamp']}.${webhook.body}`).digest('hex');
}

async function closedPortUrl(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}/webhook`;
}

/**
 * A database of the gateway's own on the PostgreSQL server of `DATABASE_URL`.
 * Retry delays are scaled by the process that makes an attempt, so a gateway
 * with scaled-down retries keeps its delivery queue to itself.
 */
async function ownDatabase(): Promise<{ env: Record<string, string>; drop(): Promise<void> }> {
  if (!process.env.DATABASE_URL) return { env: {}, drop: async () => {} };
  const name = `paycrypt_events_${randomBytes(6).toString('hex')}`;
  const run = async (statement: string) => {
    const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await run(`create database ${name}`);
  const url = new URL(process.env.DATABASE_URL);
  url.pathname = `/${name}`;
  return { env: { DATABASE_URL: url.toString() }, drop: () => run(`drop database if exists ${name} with (force)`) };
}

function merchantApi(t: TestGateway, merchant: Merchant) {
  return {
    async events(query = ''): Promise<{ status: number; json: any; text: string }> {
      return t.request('GET', `/api/v1/events${query}`, { key: merchant.apiKey });
    },
    async allEvents(query = ''): Promise<EventView[]> {
      const response = await t.request('GET', `/api/v1/events?limit=100${query}`, { key: merchant.apiKey });
      assert.equal(response.status, 200, response.text);
      assert.equal(response.json.has_more, false);
      return response.json.data;
    },
    async deliveries(eventId: string): Promise<any[]> {
      const response = await t.request('GET', `/api/v1/webhook_deliveries?event_id=${eventId}`, { key: merchant.apiKey });
      assert.equal(response.status, 200, response.text);
      return response.json.data;
    },
    async createPayment(body: object = deposit): Promise<{ id: number; transaction_id: string }> {
      const response = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body });
      assert.equal(response.status, 201, response.text);
      return response.json;
    },
    async move(paymentId: number, action: string) {
      const response = await t.request('POST', `/admin/v1/payments/${paymentId}/${action}`, { key: t.adminToken });
      assert.equal(response.status, 200, response.text);
    },
    async setWebhook(url: string): Promise<string> {
      const response = await t.request('PUT', '/api/v1/webhook_settings', { key: merchant.apiKey, body: { url, enabled: true } });
      assert.equal(response.status, 200, response.text);
      return response.json.secret;
    },
  };
}

describe('events: GET /api/v1/events and /api/v1/events/{id}', () => {
  let t: TestGateway;
  const receivers: WebhookReceiver[] = [];
  before(async () => {
    t = await startTestGateway();
  });
  after(async () => {
    await Promise.all(receivers.map((receiver) => receiver.close()));
    await t?.close();
  });

  describe('a merchant with five payments and their moves', () => {
    let merchant: Merchant;
    let api: ReturnType<typeof merchantApi>;
    let payments: Array<{ id: number }>;
    const moves: Array<[number, string]> = [];

    before(async () => {
      merchant = await t.createMerchant('Event lister');
      api = merchantApi(t, merchant);
      payments = [];
      for (let i = 0; i < 5; i++) payments.push(await api.createPayment({ ...deposit, amount: 10 + i }));
      for (const [index, action] of [
        [0, 'approve'],
        [0, 'complete'],
        [1, 'reject'],
        [2, 'approve'],
        [3, 'cancel'],
        [2, 'fail'],
        [4, 'complete'],
      ] as const) {
        await api.move(payments[index]!.id, action);
        moves.push([payments[index]!.id, action]);
      }
    });

    it('lists every event newest first, each with its id, type, payment id, time and webhook payload', async () => {
      const events = await api.allEvents();
      assert.equal(events.length, 12);
      const statusOf: Record<string, string> = { approve: 'approved', complete: 'completed', reject: 'rejected', fail: 'failed', cancel: 'cancelled' };
      assert.deepEqual(
        events.map((event) => [event.type, event.payment_id]),
        [...payments.map((payment) => ['payment.created', payment.id]), ...moves.map(([id, action]) => [`payment.${statusOf[action]}`, id])].reverse(),
      );
      for (const event of events) {
        assert.match(event.id, /^evt_[0-9a-z]+$/);
        assert.match(event.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
        assert.equal(event.data.event_type, event.type);
        assert.equal(event.data.payment.id, event.payment_id);
        assert.equal(event.data.payment.client_id, merchant.merchantId);
      }
      for (let i = 1; i < events.length; i++) assert.ok(events[i - 1]!.created_at >= events[i]!.created_at, 'newest first');
      assert.equal(new Set(events.map((event) => event.id)).size, events.length);
    });

    it('pages by cursor: following next_cursor as starting_after while has_more yields every event once, in order', async () => {
      const all = await api.allEvents();
      for (const limit of [1, 5, 11, 12]) {
        const walked: string[] = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const page = await api.events(`?limit=${limit}${cursor ? `&starting_after=${cursor}` : ''}`);
          assert.equal(page.status, 200, page.text);
          assert.ok(page.json.data.length <= limit);
          walked.push(...page.json.data.map((event: EventView) => event.id));
          assert.equal(page.json.next_cursor, page.json.has_more ? page.json.data.at(-1).id : null);
          cursor = page.json.next_cursor;
          pages++;
        } while (cursor !== null);
        assert.deepEqual(walked, all.map((event) => event.id), `limit ${limit}`);
        assert.equal(pages, Math.ceil(all.length / limit));
      }
      const defaultPage = await api.events();
      assert.equal(defaultPage.json.data.length, 12, 'up to 20 events by default');
      assert.equal(defaultPage.json.has_more, false);
    });

    it('filters by type and by payment_id, alone, together and across pages', async () => {
      const all = await api.allEvents();
      const created = await api.allEvents('&type=payment.created');
      assert.deepEqual(created, all.filter((event) => event.type === 'payment.created'));
      assert.equal(created.length, 5);

      const third = payments[2]!.id;
      const ofThird = await api.allEvents(`&payment_id=${third}`);
      assert.deepEqual(
        ofThird.map((event) => event.type),
        ['payment.failed', 'payment.approved', 'payment.created'],
      );
      assert.deepEqual(ofThird, all.filter((event) => event.payment_id === third));

      const completed = await api.allEvents(`&type=payment.completed&payment_id=${payments[0]!.id}`);
      assert.deepEqual(completed.map((event) => [event.type, event.payment_id]), [['payment.completed', payments[0]!.id]]);
      assert.deepEqual(await api.allEvents(`&type=payment.rejected&payment_id=${third}`), []);

      const walked: string[] = [];
      let page = await api.events('?type=payment.created&limit=2');
      walked.push(...page.json.data.map((event: EventView) => event.id));
      while (page.json.has_more) {
        page = await api.events(`?type=payment.created&limit=2&starting_after=${page.json.next_cursor}`);
        walked.push(...page.json.data.map((event: EventView) => event.id));
      }
      assert.deepEqual(walked, created.map((event) => event.id));
    });

    it('refuses a bad limit, an unknown type or a cursor that names no event of the merchant with 400', async () => {
      const other = merchantApi(t, await t.createMerchant('Other lister'));
      await other.createPayment();
      const [othersEvent] = await other.allEvents();
      for (const query of ['?limit=0', '?limit=101', '?limit=ten', '?type=payment.refunded', '?payment_id=abc', '?starting_after=evt_doesnotexist', `?starting_after=${othersEvent!.id}`]) {
        const response = await api.events(query);
        assert.equal(response.status, 400, `${query}: ${response.text}`);
        assert.equal(response.json.error.code, 'invalid_request', query);
      }
    });
  });

  it('GET /api/v1/events/{id} returns as data the very body its webhook carried', async () => {
    const merchant = await t.createMerchant('Event bodies');
    const api = merchantApi(t, merchant);
    const hooks = await startWebhookReceiver();
    receivers.push(hooks);
    await api.setWebhook(hooks.url);
    const payment = await api.createPayment({ amount: 12345.67, currency: 'EUR', method: 'crypto', type: 'deposit', crypto_currency: 'USDC', description: 'Bestellung für €12.345,67' });
    await api.move(payment.id, 'approve');
    await api.move(payment.id, 'complete');
    const webhooks = await hooks.waitFor(3);
    for (const webhook of webhooks) {
      const eventId = webhook.headers['x-paycrypt-event-id'] as string;
      const response = await t.request('GET', `/api/v1/events/${eventId}`, { key: merchant.apiKey });
      assert.equal(response.status, 200, response.text);
      assert.equal(response.json.id, eventId);
      assert.equal(response.json.type, webhook.headers['x-paycrypt-event']);
      assert.equal(response.json.payment_id, payment.id);
      assert.deepEqual(response.json.data, JSON.parse(webhook.body));
      assert.equal(JSON.stringify(response.json.data), webhook.body);
    }
    assert.deepEqual(
      webhooks.map((webhook) => webhook.headers['x-paycrypt-event']),
      ['payment.created', 'payment.approved', 'payment.completed'],
    );
  });

  it('another merchant\'s event is 404 to read, to redeliver and in the delivery log, and never listed', async () => {
    const alice = await t.createMerchant('Alice events');
    const bob = await t.createMerchant('Bob events');
    const hooks = await startWebhookReceiver();
    receivers.push(hooks);
    await merchantApi(t, alice).setWebhook(hooks.url);
    await merchantApi(t, bob).setWebhook(hooks.url);
    await merchantApi(t, alice).createPayment();
    await merchantApi(t, bob).createPayment();
    const [alicesEvent] = await merchantApi(t, alice).allEvents();
    await hooks.waitFor(2);

    const read = await t.request('GET', `/api/v1/events/${alicesEvent!.id}`, { key: bob.apiKey });
    assert.equal(read.status, 404, read.text);
    assert.equal(read.json.error.code, 'resource_not_found');
    assert.deepEqual(Object.keys(read.json), ['error'], 'nothing of Alice\'s event is shown');

    const redeliver = await t.request('POST', `/api/v1/events/${alicesEvent!.id}/redeliver`, { key: bob.apiKey });
    assert.equal(redeliver.status, 404, redeliver.text);
    assert.equal(redeliver.json.error.code, 'resource_not_found');

    assert.deepEqual(await merchantApi(t, bob).deliveries(alicesEvent!.id), []);
    const bobsEvents = await merchantApi(t, bob).allEvents();
    assert.equal(bobsEvents.length, 1);
    assert.ok(bobsEvents.every((event) => event.id !== alicesEvent!.id));

    await sleep(500);
    assert.equal(hooks.received.length, 2, 'Bob\'s redelivery request sent nothing');
  });

  it('an unknown event id is 404, and so is a malformed one, whose message names the expected form', async () => {
    const merchant = await t.createMerchant('Unknown events');
    const unknown = await t.request('GET', '/api/v1/events/evt_doesnotexist0', { key: merchant.apiKey });
    assert.equal(unknown.status, 404, unknown.text);
    assert.equal(unknown.json.error.code, 'resource_not_found');
    assert.match(unknown.json.error.message, /evt_doesnotexist0/);
    const malformed = await t.request('GET', '/api/v1/events/pay_123', { key: merchant.apiKey });
    assert.equal(malformed.status, 404, malformed.text);
    assert.equal(malformed.json.error.code, 'resource_not_found');
    assert.match(malformed.json.error.message, /evt_/);
  });

  it('redelivering while no webhook URL is set up is refused with 400', async () => {
    const merchant = await t.createMerchant('No webhooks');
    await merchantApi(t, merchant).createPayment();
    const [event] = await merchantApi(t, merchant).allEvents();
    const refused = await t.request('POST', `/api/v1/events/${event!.id}/redeliver`, { key: merchant.apiKey });
    assert.equal(refused.status, 400, refused.text);
    assert.equal(refused.json.error.code, 'invalid_request');
    assert.match(refused.json.error.message, /not enabled/);
  });
});

describe('missed webhooks: the delivery log and redelivery, with retries 10 000 times faster', () => {
  let t: TestGateway;
  let database: Awaited<ReturnType<typeof ownDatabase>>;
  const receivers: WebhookReceiver[] = [];
  before(async () => {
    database = await ownDatabase();
    t = await startTestGateway({ ...database.env, PAYCRYPT_WEBHOOK_TIME_SCALE: '0.0001' });
  });
  after(async () => {
    await Promise.all(receivers.map((receiver) => receiver.close()));
    await t?.close();
    await database?.drop();
  });

  async function failingReceiver(): Promise<WebhookReceiver & { recover(): void }> {
    const hooks = await startWebhookReceiver();
    receivers.push(hooks);
    let healthy = false;
    hooks.respond = () => (healthy ? { status: 200, body: 'ok' } : { status: 500, body: 'database down' });
    return Object.assign(hooks, { recover: () => (healthy = true) });
  }

  async function failedForGood(api: ReturnType<typeof merchantApi>, eventId: string): Promise<any> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const [delivery] = await api.deliveries(eventId);
      if (delivery?.state === 'failed') return delivery;
      if (Date.now() > deadline) assert.fail(`the delivery of ${eventId} did not fail for good within 15 s: ${JSON.stringify(delivery)}`);
      await sleep(100);
    }
  }

  it('a webhook answered 500 six times ends failed, each attempt logged; POST /api/v1/events/{id}/redeliver sends the same event again', async () => {
    const merchant = await t.createMerchant('Missed one');
    const api = merchantApi(t, merchant);
    const hooks = await failingReceiver();
    const secret = await api.setWebhook(hooks.url);
    const payment = await api.createPayment();
    const [event] = await api.allEvents();

    const failed = await failedForGood(api, event!.id);
    assert.equal(failed.event_id, event!.id);
    assert.equal(failed.event_type, 'payment.created');
    assert.equal(failed.attempts, 6);
    assert.equal(failed.last_status_code, 500);
    assert.equal(failed.next_attempt_at, null);
    assert.match(failed.completed_at, /Z$/);
    assert.deepEqual(
      failed.attempt_log.map((attempt: any) => [attempt.attempt, attempt.url, attempt.status_code, attempt.response_excerpt, attempt.error]),
      [1, 2, 3, 4, 5, 6].map((n) => [n, hooks.url, 500, 'database down', null]),
    );
    for (const attempt of failed.attempt_log) {
      assert.equal(Number.isInteger(attempt.duration_ms) && attempt.duration_ms >= 0, true);
      assert.match(attempt.started_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
    const starts = failed.attempt_log.map((attempt: any) => Date.parse(attempt.started_at));
    for (let i = 1; i < starts.length; i++) assert.ok(starts[i] > starts[i - 1], 'attempts follow one another');
    assert.equal(hooks.received.length, 6);
    await sleep(300);
    assert.equal(hooks.received.length, 6, 'the sixth attempt is the last');

    const failedList = await t.request('GET', '/api/v1/webhook_deliveries?state=failed', { key: merchant.apiKey });
    assert.deepEqual(failedList.json.data.map((delivery: any) => delivery.id), [failed.id]);

    hooks.recover();
    const redelivered = await t.request('POST', `/api/v1/events/${event!.id}/redeliver`, { key: merchant.apiKey });
    assert.equal(redelivered.status, 202, redelivered.text);
    assert.equal(redelivered.json.event_id, event!.id);
    assert.equal(redelivered.json.state, 'pending');
    assert.match(redelivered.json.delivery_id, /^whd_/);

    const webhooks = await hooks.waitFor(7);
    const again = webhooks[6]!;
    assert.equal(again.headers['x-paycrypt-event-id'], event!.id);
    assert.equal(again.headers['x-paycrypt-event'], 'payment.created');
    assert.equal(again.body, webhooks[0]!.body, 'the same body as the missed attempts');
    assert.equal(JSON.parse(again.body).payment.id, payment.id);
    assert.equal(again.headers['x-paycrypt-signature'], sign(secret, again));

    const deadline = Date.now() + 5_000;
    let deliveries = await api.deliveries(event!.id);
    while (deliveries[0]?.state !== 'succeeded' && Date.now() < deadline) {
      await sleep(50);
      deliveries = await api.deliveries(event!.id);
    }
    assert.deepEqual(
      deliveries.map((delivery) => [delivery.id, delivery.state, delivery.attempts, delivery.last_status_code]),
      [
        [redelivered.json.delivery_id, 'succeeded', 1, 200],
        [failed.id, 'failed', 6, 500],
      ],
    );
    assert.deepEqual(
      deliveries[0].attempt_log.map((attempt: any) => [attempt.attempt, attempt.status_code, attempt.response_excerpt, attempt.error]),
      [[1, 200, 'ok', null]],
    );
  });

  it('POST /api/v1/webhook_deliveries/redeliver sends again every event that failed for good in the time range, and only those', async () => {
    const merchant = await t.createMerchant('Missed several');
    const api = merchantApi(t, merchant);
    const hooks = await failingReceiver();
    const from = new Date(Date.now() - 1_000).toISOString();
    await api.setWebhook(hooks.url);
    const first = await api.createPayment();
    const second = await api.createPayment();
    const [secondEvent, firstEvent] = await api.allEvents();
    await failedForGood(api, firstEvent!.id);
    await failedForGood(api, secondEvent!.id);

    hooks.recover();
    const delivered = await api.createPayment();
    await hooks.waitFor(13);
    const [deliveredEvent] = await api.allEvents(`&payment_id=${delivered.id}`);
    const to = new Date(Date.now() + 1_000).toISOString();

    const before = await t.request('POST', '/api/v1/webhook_deliveries/redeliver', {
      key: merchant.apiKey,
      body: { from_date: '2020-01-01T00:00:00Z', to_date: new Date(Date.parse(from) - 60_000).toISOString() },
    });
    assert.equal(before.status, 202, before.text);
    assert.deepEqual(before.json, { redelivered: 0, event_ids: [] }, 'nothing failed in a range before the payments');

    const redelivered = await t.request('POST', '/api/v1/webhook_deliveries/redeliver', { key: merchant.apiKey, body: { from_date: from, to_date: to } });
    assert.equal(redelivered.status, 202, redelivered.text);
    assert.equal(redelivered.json.redelivered, 2);
    assert.deepEqual([...redelivered.json.event_ids].sort(), [firstEvent!.id, secondEvent!.id].sort());

    const webhooks = await hooks.waitFor(15);
    const resent = webhooks.slice(13);
    assert.deepEqual(
      resent.map((webhook) => JSON.parse(webhook.body).payment.id).sort((a: number, b: number) => a - b),
      [first.id, second.id].sort((a, b) => a - b),
    );
    for (const webhook of resent) {
      const original = webhooks.find((candidate) => candidate.headers['x-paycrypt-event-id'] === webhook.headers['x-paycrypt-event-id'])!;
      assert.equal(webhook.body, original.body);
    }
    await sleep(300);
    assert.equal(hooks.received.length, 15, `the delivered ${deliveredEvent!.id} was not sent again`);

    let again = await t.request('POST', '/api/v1/webhook_deliveries/redeliver', { key: merchant.apiKey, body: { from_date: from, to_date: to } });
    const deadline = Date.now() + 5_000;
    while (again.json.redelivered !== 0 && Date.now() < deadline) {
      await sleep(100);
      again = await t.request('POST', '/api/v1/webhook_deliveries/redeliver', { key: merchant.apiKey, body: { from_date: from, to_date: to } });
    }
    assert.deepEqual(again.json, { redelivered: 0, event_ids: [] }, 'events recovered by a redelivery are not sent a third time');

    const invalid = await t.request('POST', '/api/v1/webhook_deliveries/redeliver', { key: merchant.apiKey, body: { from_date: 'yesterday', to_date: to } });
    assert.equal(invalid.status, 400, invalid.text);
    assert.equal(invalid.json.error.code, 'invalid_request');
  });

  it('the delivery log shows the error of an attempt that got no answer', async () => {
    const merchant = await t.createMerchant('Nobody listening');
    const api = merchantApi(t, merchant);
    const url = await closedPortUrl();
    await api.setWebhook(url);
    await api.createPayment();
    const [event] = await api.allEvents();
    const failed = await failedForGood(api, event!.id);
    assert.equal(failed.attempts, 6);
    assert.equal(failed.last_status_code, null);
    assert.match(failed.last_error, /ECONNREFUSED/);
    for (const attempt of failed.attempt_log) {
      assert.equal(attempt.url, url);
      assert.equal(attempt.status_code, null);
      assert.equal(attempt.response_excerpt, null);
      assert.match(attempt.error, /ECONNREFUSED/);
    }
  });
});
