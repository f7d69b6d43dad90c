import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { claimDueDeliveries, pauseRacedDeliveries, resumeRacedDeliveries } from '../core/webhooks/delivery-queue.ts';
import { createStorage, type Storage } from '../storage/database.ts';
import { createTestDatabase, startTestGateway, testAdminToken, type TestGateway } from '../testing/harness.ts';
import { type ReceivedWebhook, startWebhookReceiver, type WebhookReceiver } from '../testing/webhook-receiver.ts';

type Merchant = Awaited<ReturnType<TestGateway['createMerchant']>>;

/** Retry delays of the documented schedule (1 min, 5 min, 15 min, 1 h, 4 h) at time scale 0.001. */
const scaledDelaysMs = [60, 300, 900, 3_600, 14_400];

/**
 * Storage for the gateways of one suite, and theirs alone: in-memory PGlite,
 * or a PostgreSQL database of its own when `DATABASE_URL` is set.
 */
async function suiteStorage() {
  const database = await createTestDatabase();
  const storage = database ? undefined : await createStorage({ dataDir: 'memory://' });
  return {
    databaseUrl: database?.url,
    start: (env: Record<string, string> = {}, options: { storage?: Storage } = {}) =>
      startTestGateway({ ...env, ...(database ? { DATABASE_URL: database.url } : {}) }, { ...(storage ? { storage } : {}), ...options }),
    async close() {
      await storage?.close();
      await database?.drop();
    },
  };
}

async function useWebhook(t: TestGateway, merchant: Merchant, url: string) {
  const response = await t.request('PUT', '/api/v1/webhook_settings', { key: merchant.apiKey, body: { url, enabled: true } });
  assert.equal(response.status, 200, response.text);
  assert.equal(response.json.enabled, true);
}

async function removeWebhook(t: TestGateway, merchant: Merchant) {
  const response = await t.request('DELETE', '/api/v1/webhook_settings', { key: merchant.apiKey });
  assert.equal(response.status, 200, response.text);
}

async function createPayment(t: TestGateway, merchant: Merchant): Promise<{ id: number; transaction_id: string }> {
  const response = await t.request('POST', '/api/v1/payments', {
    key: merchant.apiKey,
    body: { amount: 10.0, currency: 'USD', method: 'crypto', type: 'deposit' },
  });
  assert.equal(response.status, 201, response.text);
  return response.json;
}

async function act(t: TestGateway, paymentId: number, action: 'approve' | 'complete') {
  const response = await t.request('POST', `/admin/v1/payments/${paymentId}/${action}`, { key: t.adminToken });
  assert.equal(response.status, 200, response.text);
}

async function deliveries(t: TestGateway, merchant: Merchant, query = ''): Promise<any[]> {
  const response = await t.request('GET', `/api/v1/webhook_deliveries${query}`, { key: merchant.apiKey });
  assert.equal(response.status, 200, response.text);
  return response.json.data;
}

async function eventIdOf(t: TestGateway, merchant: Merchant, paymentId: number, type: string): Promise<string> {
  const response = await t.request('GET', `/api/v1/events?payment_id=${paymentId}&type=${type}`, { key: merchant.apiKey });
  assert.equal(response.status, 200, response.text);
  assert.equal(response.json.data.length, 1, response.text);
  return response.json.data[0].id;
}

/** Polls `probe` until it returns something other than undefined. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** The delivery of one event once `done` holds for it. */
function deliveryOnce(t: TestGateway, merchant: Merchant, eventId: string, done: (delivery: any) => boolean, timeoutMs = 10_000) {
  return eventually(
    `the delivery of ${eventId}`,
    async () => {
      const [delivery] = await deliveries(t, merchant, `?event_id=${eventId}`);
      return delivery && done(delivery) ? delivery : undefined;
    },
    timeoutMs,
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const eventIdHeader = (webhook: ReceivedWebhook) => webhook.headers['x-paycrypt-event-id'] as string;
const eventTypeHeader = (webhook: ReceivedWebhook) => webhook.headers['x-paycrypt-event'] as string;
const paymentIdOf = (webhook: ReceivedWebhook) => (JSON.parse(webhook.body) as { payment: { id: number } }).payment.id;

/** Answers 200 after `delayMs` and records the most requests in flight at once. */
function countingConcurrency(receiver: WebhookReceiver, delayMs: number) {
  const stats = { current: 0, max: 0 };
  receiver.respond = () => {
    stats.current += 1;
    stats.max = Math.max(stats.max, stats.current);
    // Note: registered before the receiver's own answer timer of the same delay, so it runs first.
    setTimeout(() => (stats.current -= 1), delayMs);
    return { status: 200, body: 'ok', delayMs };
  };
  return stats;
}

/** How late an attempt may come past its scaled delay: scheduling slack on a busy two-core machine, not part of the schedule. */
const lateSlackMs = 1_000;

/**
 * Asserts that the gaps between attempts follow the schedule 1 : 5 : 15 : 60 : 240:
 * each gap is at least its scaled delay, and not later than a quarter more plus
 * the slack a loaded machine needs.
 */
function assertScheduled(attempts: ReceivedWebhook[]) {
  const gaps = attempts.slice(1).map((webhook, index) => webhook.receivedAt - attempts[index]!.receivedAt);
  for (const [index, gap] of gaps.entries()) {
    const delay = scaledDelaysMs[index]!;
    assert.ok(gap >= delay, `attempt ${index + 2} came ${gap} ms after attempt ${index + 1}, before its ${delay} ms delay (gaps: ${gaps.join(', ')})`);
    assert.ok(gap < delay * 1.25 + lateSlackMs, `attempt ${index + 2} came ${gap} ms after attempt ${index + 1}, far past its ${delay} ms delay (gaps: ${gaps.join(', ')})`);
  }
}

describe('webhook delivery (time scale 0.001, timeout 1 s, 8 in flight, 2 per endpoint)', () => {
  let storage: Awaited<ReturnType<typeof suiteStorage>>;
  let t: TestGateway;
  const receivers: WebhookReceiver[] = [];
  const receiver = async () => {
    const started = await startWebhookReceiver();
    receivers.push(started);
    return started;
  };

  before(async () => {
    storage = await suiteStorage();
    t = await storage.start({
      PAYCRYPT_WEBHOOK_TIME_SCALE: '0.001',
      PAYCRYPT_WEBHOOK_TIMEOUT_MS: '1000',
      PAYCRYPT_WEBHOOK_CONCURRENCY: '8',
      PAYCRYPT_WEBHOOK_ENDPOINT_CONCURRENCY: '2',
    });
  });
  after(async () => {
    await t?.close();
    await Promise.all(receivers.map((started) => started.close()));
    await storage?.close();
  });

  it('delivers each state change on an idle queue at once, well inside the 1 s poll interval', async () => {
    const merchant = await t.createMerchant('Idle queue');
    const hooks = await receiver();
    await useWebhook(t, merchant, hooks.url);

    const latencies: number[] = [];
    let paymentId = 0;
    for (const [index, change] of ['create', 'approve', 'complete'].entries()) {
      // Note: the queue is idle (every earlier delivery settled) and the dispatcher back asleep before each change.
      await eventually('the earlier deliveries to settle', async () => {
        const settled = await deliveries(t, merchant, '?state=succeeded');
        return settled.length === index ? true : undefined;
      });
      await sleep(250);
      const startedAt = Date.now();
      if (change === 'create') paymentId = (await createPayment(t, merchant)).id;
      else await act(t, paymentId, change as 'approve' | 'complete');
      const webhook = (await hooks.waitFor(index + 1, 5_000))[index]!;
      latencies.push(webhook.receivedAt - startedAt);
    }
    assert.deepEqual(hooks.received.map(eventTypeHeader), ['payment.created', 'payment.approved', 'payment.completed']);
    for (const latency of latencies) assert.ok(latency < 400, `webhooks arrived ${latencies.join(', ')} ms after the change`);
  });

  it('tries a receiver that always answers 500 six times, 1, 5, 15, 60 and 240 scaled minutes apart, then marks the delivery failed', async () => {
    const merchant = await t.createMerchant('Always 500');
    const hooks = await receiver();
    hooks.respond = () => ({ status: 500, body: 'down for maintenance' });
    await useWebhook(t, merchant, hooks.url);
    const payment = await createPayment(t, merchant);
    const eventId = await eventIdOf(t, merchant, payment.id, 'payment.created');

    const arrivals = await hooks.waitFor(6, 30_000);
    const delivery = await deliveryOnce(t, merchant, eventId, (candidate) => candidate.state !== 'pending');
    await sleep(500);
    assert.equal(hooks.received.length, 6, 'a sixth failure is final');

    assertScheduled(arrivals);
    assert.deepEqual(new Set(arrivals.map(eventIdHeader)), new Set([eventId]));

    assert.equal(delivery.state, 'failed');
    assert.equal(delivery.attempts, 6);
    assert.equal(delivery.next_attempt_at, null);
    assert.equal(delivery.last_status_code, 500);
    assert.ok(delivery.completed_at);
    assert.deepEqual(
      delivery.attempt_log.map((attempt: any) => [attempt.attempt, attempt.status_code, attempt.response_excerpt]),
      [1, 2, 3, 4, 5, 6].map((attempt) => [attempt, 500, 'down for maintenance']),
    );
    assert.deepEqual((await deliveries(t, merchant, '?state=failed')).map((failed) => failed.event_id), [eventId]);
  });

  it('stops retrying once a receiver that failed twice answers 2xx', async () => {
    const merchant = await t.createMerchant('Recovers');
    const hooks = await receiver();
    hooks.respond = (_request, index) => (index < 2 ? { status: 502, body: 'bad gateway' } : { status: 204 });
    await useWebhook(t, merchant, hooks.url);
    const payment = await createPayment(t, merchant);
    const eventId = await eventIdOf(t, merchant, payment.id, 'payment.created');

    const delivery = await deliveryOnce(t, merchant, eventId, (candidate) => candidate.state !== 'pending');
    assert.equal(delivery.state, 'succeeded');
    assert.equal(delivery.attempts, 3);
    assert.deepEqual(
      delivery.attempt_log.map((attempt: any) => attempt.status_code),
      [502, 502, 204],
    );
    await sleep(400);
    assert.equal(hooks.received.length, 3);
    assert.deepEqual(new Set(hooks.received.map(eventIdHeader)), new Set([eventId]));
  });

  it('holds back a payment\'s later events while its payment.created is retried on schedule, but not other payments\' events', async () => {
    const merchant = await t.createMerchant('Ordering');
    const hooks = await receiver();
    const refusals = 3;
    // Note: the first payment to reach the receiver is the held one.
    let heldPaymentId: number | undefined;
    hooks.respond = (request) => {
      heldPaymentId ??= paymentIdOf(request);
      const isHeldCreated = (webhook: ReceivedWebhook) => paymentIdOf(webhook) === heldPaymentId && eventTypeHeader(webhook) === 'payment.created';
      if (isHeldCreated(request) && hooks.received.filter(isHeldCreated).length <= refusals) return { status: 503, body: 'not yet' };
      return { status: 200 };
    };
    await useWebhook(t, merchant, hooks.url);

    const held = await createPayment(t, merchant);
    await hooks.waitFor(1);
    await act(t, held.id, 'approve');
    await act(t, held.id, 'complete');
    const otherCreatedAt = Date.now();
    const other = await createPayment(t, merchant);

    const completed = await eventually('payment.completed of the held payment', async () =>
      hooks.received.find((webhook) => paymentIdOf(webhook) === held.id && eventTypeHeader(webhook) === 'payment.completed'),
    );
    assert.ok(completed);
    assert.deepEqual(
      hooks.received.filter((webhook) => paymentIdOf(webhook) === held.id).map(eventTypeHeader),
      ['payment.created', 'payment.created', 'payment.created', 'payment.created', 'payment.approved', 'payment.completed'],
    );
    const heldCreated = hooks.received.filter((webhook) => paymentIdOf(webhook) === held.id && eventTypeHeader(webhook) === 'payment.created');
    assertScheduled(heldCreated);
    const heldCreatedDelivered = heldCreated[refusals]!;
    const otherCreated = hooks.received.find((webhook) => paymentIdOf(webhook) === other.id)!;
    assert.ok(otherCreated.receivedAt < heldCreatedDelivered.receivedAt, 'the other payment\'s event did not wait for the held one');
    assert.ok(otherCreated.receivedAt - otherCreatedAt < 1_000, `the other payment's event took ${otherCreated.receivedAt - otherCreatedAt} ms`);

    const createdDelivery = await deliveryOnce(t, merchant, await eventIdOf(t, merchant, held.id, 'payment.created'), (d) => d.state !== 'pending');
    assert.deepEqual(
      createdDelivery.attempt_log.map((attempt: any) => attempt.status_code),
      [503, 503, 503, 200],
    );
  });

  it('handles, logs and retries receivers that hang, redirect, answer 4xx or 5xx, reset the connection or answer a huge body, while a healthy receiver gets its webhooks at once', async () => {
    const movedTo = await receiver();
    const bad = {
      hangs: { respond: () => ({ hang: true as const }) },
      redirects: { respond: () => ({ status: 302, headers: { location: movedTo.url } }) },
      'answers 404': { respond: () => ({ status: 404, body: 'no such hook' }) },
      'answers 503': { respond: () => ({ status: 503, body: 'maintenance' }) },
      'resets the connection': { respond: () => ({ reset: true as const }) },
      'answers 500 with a 50 MB body': { respond: () => ({ hugeBodyBytes: 50 * 1024 * 1024, status: 500 }) },
    };
    const setups = await Promise.all(
      Object.entries(bad).map(async ([name, behaviour]) => {
        const merchant = await t.createMerchant(`Receiver that ${name}`);
        const hooks = await receiver();
        hooks.respond = behaviour.respond;
        await useWebhook(t, merchant, hooks.url);
        return { name, merchant, hooks };
      }),
    );
    const healthy = await t.createMerchant('Healthy receiver');
    const healthyHooks = await receiver();
    await useWebhook(t, healthy, healthyHooks.url);

    const events = await Promise.all(
      setups.map(async (setup) => ({ ...setup, eventId: await eventIdOf(t, setup.merchant, (await createPayment(t, setup.merchant)).id, 'payment.created') })),
    );
    const healthyLatencies: number[] = [];
    for (let index = 0; index < 4; index++) {
      const startedAt = Date.now();
      await createPayment(t, healthy);
      const webhook = (await healthyHooks.waitFor(index + 1, 5_000))[index]!;
      healthyLatencies.push(webhook.receivedAt - startedAt);
      await sleep(100);
    }
    for (const latency of healthyLatencies) assert.ok(latency < 500, `the healthy receiver got its webhooks ${healthyLatencies.join(', ')} ms after each change`);

    const logs = new Map<string, any>();
    for (const { name, merchant, hooks, eventId } of events) {
      const delivery = await deliveryOnce(t, merchant, eventId, (candidate) => candidate.attempt_log.length >= 2);
      assert.equal(delivery.state, 'pending', `${name}: the delivery is still being retried`);
      assert.ok(hooks.received.length >= 2, `${name}: retried`);
      assert.deepEqual(new Set(hooks.received.map(eventIdHeader)), new Set([eventId]), `${name}: the same event each time`);
      logs.set(name, delivery.attempt_log[0]);
    }

    const hung = logs.get('hangs');
    assert.equal(hung.status_code, null);
    assert.match(hung.error, /timed out/);
    assert.ok(hung.duration_ms >= 990 && hung.duration_ms < 3_000, `a hung attempt lasted ${hung.duration_ms} ms`);

    const redirected = logs.get('redirects');
    assert.equal(redirected.status_code, 302);
    assert.match(redirected.error, /redirect/);
    assert.ok(redirected.error.includes(movedTo.url), redirected.error);
    assert.equal(movedTo.received.length, 0, 'the redirect is not followed');

    assert.deepEqual([logs.get('answers 404').status_code, logs.get('answers 404').response_excerpt], [404, 'no such hook']);
    assert.deepEqual([logs.get('answers 503').status_code, logs.get('answers 503').response_excerpt], [503, 'maintenance']);

    const reset = logs.get('resets the connection');
    assert.equal(reset.status_code, null);
    assert.match(reset.error, /closed the connection before answering/);

    const huge = logs.get('answers 500 with a 50 MB body');
    assert.equal(huge.status_code, 500);
    assert.equal(huge.response_excerpt, 'x'.repeat(1024));
    assert.ok(huge.duration_ms < 1_000, `the attempt took ${huge.duration_ms} ms`);

    for (const { merchant } of events) await removeWebhook(t, merchant);
  });

  it('counts a 2xx answer with a 50 MB body as delivered, keeping its first KiB', async () => {
    const merchant = await t.createMerchant('Huge 200');
    const hooks = await receiver();
    hooks.respond = () => ({ hugeBodyBytes: 50 * 1024 * 1024, status: 200 });
    await useWebhook(t, merchant, hooks.url);
    const payment = await createPayment(t, merchant);
    const delivery = await deliveryOnce(t, merchant, await eventIdOf(t, merchant, payment.id, 'payment.created'), (d) => d.state !== 'pending');
    assert.equal(delivery.state, 'succeeded');
    assert.equal(delivery.attempts, 1);
    assert.equal(delivery.attempt_log[0].status_code, 200);
    assert.equal(delivery.attempt_log[0].response_excerpt, 'x'.repeat(1024));
    assert.ok(delivery.attempt_log[0].duration_ms < 1_000, `the attempt took ${delivery.attempt_log[0].duration_ms} ms`);
  });

  it('does not hold up other merchants behind a backlog of deliveries to a hanging receiver', async () => {
    const stuck = await t.createMerchant('Backlog behind a hanging receiver');
    const stuckHooks = await receiver();
    stuckHooks.respond = () => ({ hang: true });
    await useWebhook(t, stuck, stuckHooks.url);
    for (let index = 0; index < 30; index++) await createPayment(t, stuck);
    await stuckHooks.waitFor(2);

    const healthy = await t.createMerchant('Healthy beside a backlog');
    const healthyHooks = await receiver();
    await useWebhook(t, healthy, healthyHooks.url);
    const startedAt = Date.now();
    await createPayment(t, healthy);
    const [webhook] = await healthyHooks.waitFor(1, 10_000);
    assert.ok(webhook!.receivedAt - startedAt < 1_000, `the healthy receiver waited ${webhook!.receivedAt - startedAt} ms`);
    await removeWebhook(t, stuck);
  });

  it('never has more than 2 requests in flight at one receiver', async () => {
    const merchant = await t.createMerchant('Slow receiver');
    const hooks = await receiver();
    const stats = countingConcurrency(hooks, 300);
    await useWebhook(t, merchant, hooks.url);
    await Promise.all(Array.from({ length: 8 }, () => createPayment(t, merchant)));
    await hooks.waitFor(8, 10_000);
    assert.equal(stats.max, 2);
    assert.equal(new Set(hooks.received.map(eventIdHeader)).size, 8);
    const delivered = await eventually('every delivery to succeed', async () => {
      const all = await deliveries(t, merchant);
      return all.length === 8 && all.every((delivery) => delivery.state === 'succeeded') ? all : undefined;
    });
    assert.deepEqual(new Set(delivered.map((delivery) => delivery.attempts)), new Set([1]));
  });
});

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The environment of a shell with none of PayCrypt's settings, plus `settings`. */
function processEnv(settings: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('PAYCRYPT_') || name.startsWith('NODE_TEST') || ['DATABASE_URL', 'NODE_ENV', 'PORT', 'HOST'].includes(name)) continue;
    env[name] = value;
  }
  return { ...env, ...settings };
}

/** `paycrypt serve` in a process of its own; resolves with its base URL once it listens. */
async function serveInChildProcess(settings: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(path.join(repoRoot, 'bin', 'paycrypt'), ['serve'], {
    cwd: repoRoot,
    env: processEnv({ NODE_ENV: 'test', HOST: '127.0.0.1', PORT: '0', PAYCRYPT_LOG_LEVEL: 'info', ...settings }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (chunk) => (log += chunk));
  child.stderr!.on('data', (chunk) => (log += chunk));
  const url = await eventually(
    'paycrypt serve to listen',
    async () => {
      if (child.exitCode !== null) assert.fail(`paycrypt serve exited with ${child.exitCode}:\n${log}`);
      return /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(log)?.[1];
    },
    60_000,
  );
  return { child, url };
}

function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  return exited;
}

async function call(baseUrl: string, method: string, urlPath: string, key: string, body?: unknown) {
  const response = await fetch(`${baseUrl}${urlPath}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as any };
}

describe('deliveries waiting for a switched-off endpoint', () => {
  let storage: Awaited<ReturnType<typeof suiteStorage>>;
  let t: TestGateway;
  let hooks: WebhookReceiver;
  before(async () => {
    storage = await suiteStorage();
    t = await storage.start({ PAYCRYPT_WEBHOOK_TIME_SCALE: '0.001' });
    hooks = await startWebhookReceiver();
  });
  after(async () => {
    await t?.close();
    await hooks?.close();
    await storage?.close();
  });

  const db = () => t.gateway.context.storage.db;
  const states = async (merchant: Merchant) =>
    (await sql<{ state: string }>`select state from webhook_deliveries where merchant_id = ${merchant.merchantId} order by event_seq`.execute(db())).rows.map((row) => row.state);
  /** What a dispatcher claiming now would take of `merchant`'s deliveries. */
  const claimableOf = async (merchant: Merchant) => {
    const now = new Date();
    const claimed = await claimDueDeliveries(db(), { now, limit: 100, leaseUntil: new Date(now.getTime() + 60_000), endpointLimit: 100 });
    return claimed.filter((delivery) => delivery.merchantId === merchant.merchantId);
  };
  const switchWebhooks = async (merchant: Merchant, enabled: boolean) => {
    const response = await t.request('PUT', '/api/v1/webhook_settings', { key: merchant.apiKey, body: { url: hooks.url, enabled } });
    assert.equal(response.status, 200, response.text);
  };

  it('wait paused, out of every claim, show as pending in the log, and go out in order once it is switched on', async () => {
    const merchant = await t.createMerchant('Paused backlog');
    await switchWebhooks(merchant, false);
    const payment = await createPayment(t, merchant);
    await act(t, payment.id, 'approve');
    assert.deepEqual(await states(merchant), ['paused', 'paused']);
    assert.equal((await claimableOf(merchant)).length, 0);
    assert.deepEqual((await deliveries(t, merchant)).map((delivery) => delivery.state), ['pending', 'pending']);
    assert.equal((await deliveries(t, merchant, '?state=pending')).length, 2);

    await switchWebhooks(merchant, true);
    const arrived = await hooks.waitFor(2);
    assert.deepEqual(arrived.map(eventTypeHeader), ['payment.created', 'payment.approved']);
    await eventually('both recorded', async () => ((await states(merchant)).every((state) => state === 'succeeded') ? true : undefined));
  });

  it('a delivery left paused by an event that raced the switch-on is resumed by the sweep, and holds back its payment\'s later ones until then', async () => {
    const merchant = await t.createMerchant('Raced switch-on');
    await switchWebhooks(merchant, false);
    const payment = await createPayment(t, merchant);
    await switchWebhooks(merchant, true);
    await eventually('payment.created delivered', async () => ((await states(merchant))[0] === 'succeeded' ? true : undefined));
    // Note: as the race leaves it: the endpoint is on, its flag cleared by a sweep that found no paused delivery
    // just before the raced one committed; one of its deliveries is paused, and a later one of the same payment is pending.
    await sql`update webhook_endpoints set enabled = false where merchant_id = ${merchant.merchantId}`.execute(db());
    await act(t, payment.id, 'approve');
    await act(t, payment.id, 'complete');
    await sql`update webhook_endpoints set enabled = true, has_paused_deliveries = false, updated_at = now() where merchant_id = ${merchant.merchantId}`.execute(db());
    await sql`update webhook_deliveries set state = 'pending' where merchant_id = ${merchant.merchantId} and event_id = ${await eventIdOf(t, merchant, payment.id, 'payment.completed')}`.execute(db());
    assert.deepEqual(await states(merchant), ['succeeded', 'paused', 'pending']);
    assert.equal((await claimableOf(merchant)).length, 0, 'payment.completed went out before the paused payment.approved');

    // Note: the gateway's own dispatcher sweeps too (every 10 s), and may have resumed it a moment before.
    const sweptAt = new Date(Date.now() - 60_000);
    assert.ok((await resumeRacedDeliveries(db(), sweptAt)) <= 1);
    assert.equal(await resumeRacedDeliveries(db(), sweptAt), 0);
    assert.notEqual((await states(merchant))[1], 'paused');
    await eventually('all three events', async () => (hooks.received.filter((webhook) => paymentIdOf(webhook) === payment.id).length >= 3 ? true : undefined));
    assert.deepEqual(
      hooks.received.filter((webhook) => paymentIdOf(webhook) === payment.id).map(eventTypeHeader),
      ['payment.created', 'payment.approved', 'payment.completed'],
    );
  });

  it('a delivery left pending by an attempt or an event that raced the switch-off is paused by the sweep, unless it is under way', async () => {
    const merchant = await t.createMerchant('Raced switch-off');
    await switchWebhooks(merchant, false);
    await createPayment(t, merchant);
    await createPayment(t, merchant);
    // Note: as a retry recorded after the switch-off leaves them: the endpoint is off and its deliveries pending, one of them still leased.
    await sql`update webhook_endpoints set updated_at = now() where merchant_id = ${merchant.merchantId}`.execute(db());
    await sql`update webhook_deliveries set state = 'pending' where merchant_id = ${merchant.merchantId}`.execute(db());
    await sql`
      update webhook_deliveries set locked_until = now() + interval '10 seconds'
      where id = (select id from webhook_deliveries where merchant_id = ${merchant.merchantId} order by event_seq limit 1)
    `.execute(db());
    assert.deepEqual(await states(merchant), ['pending', 'pending']);

    // Note: the gateway's own dispatcher sweeps too (every 10 s), and may have paused it a moment before.
    const sweptAt = new Date(Date.now() - 60_000);
    assert.ok((await pauseRacedDeliveries(db(), sweptAt, new Date())) <= 1);
    assert.equal(await pauseRacedDeliveries(db(), sweptAt, new Date()), 0);
    assert.deepEqual(await states(merchant), ['pending', 'paused']);

    // Note: the leased one goes out once its lease has run out.
    await switchWebhooks(merchant, true);
    await eventually('both delivered', async () => ((await states(merchant)).every((state) => state === 'succeeded') ? true : undefined), 30_000);
  });

  it('the sweep leaves alone the paused deliveries of endpoints that are off, or were switched on before its window', async () => {
    const merchant = await t.createMerchant('Still off');
    await switchWebhooks(merchant, false);
    await createPayment(t, merchant);
    assert.equal(await resumeRacedDeliveries(db(), new Date(Date.now() - 60_000)), 0);
    assert.deepEqual(await states(merchant), ['paused']);
    await sql`update webhook_endpoints set enabled = true, has_paused_deliveries = false, updated_at = now() - interval '1 hour' where merchant_id = ${merchant.merchantId}`.execute(db());
    assert.equal(await resumeRacedDeliveries(db(), new Date(Date.now() - 60_000)), 0);
    assert.deepEqual(await states(merchant), ['paused']);
  });

  it('the sweep leaves a switched-on endpoint\'s paused backlog to the claims while the endpoint is flagged as having one', async () => {
    const merchant = await t.createMerchant('Backlog being delivered');
    await switchWebhooks(merchant, false);
    await createPayment(t, merchant);
    await createPayment(t, merchant);
    // Note: switched on in a transaction that is rolled back, so that the gateway's own dispatcher never sees the endpoint on.
    const rolledBack = new Error('rolled back');
    const seen = await db()
      .transaction()
      .execute(async (trx) => {
        await sql`update webhook_endpoints set enabled = true, updated_at = now() where merchant_id = ${merchant.merchantId}`.execute(trx);
        const resumed = await resumeRacedDeliveries(trx, new Date(Date.now() - 60_000));
        const { rows } = await sql<{ state: string }>`select state from webhook_deliveries where merchant_id = ${merchant.merchantId}`.execute(trx);
        throw Object.assign(rolledBack, { resumed, states: rows.map((row) => row.state) });
      })
      .catch((error: unknown) => {
        if (error !== rolledBack) throw error;
        return error as Error & { resumed: number; states: string[] };
      });
    assert.equal(seen.resumed, 0);
    assert.deepEqual(seen.states, ['paused', 'paused']);
  });
});

describe('a gateway stopped in the middle of an attempt', () => {
  let storage: Awaited<ReturnType<typeof suiteStorage>>;
  const receivers: WebhookReceiver[] = [];
  const children: ChildProcess[] = [];
  const dataDirs: string[] = [];
  const receiver = async () => {
    const started = await startWebhookReceiver();
    receivers.push(started);
    return started;
  };
  before(async () => {
    storage = await suiteStorage();
  });
  after(async () => {
    await Promise.all(children.map(killed));
    await Promise.all(receivers.map((started) => started.close()));
    await storage?.close();
    for (const dataDir of dataDirs) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('finishes the attempt as it stops, and the next gateway on the same database delivers the event', async () => {
    const env = { PAYCRYPT_WEBHOOK_TIME_SCALE: '0.001', PAYCRYPT_WEBHOOK_TIMEOUT_MS: '1000' };
    const first = await storage.start(env);
    const merchant = await first.createMerchant('Stopped mid-attempt');
    const hooks = await receiver();
    hooks.respond = (_request, index) => (index === 0 ? { hang: true } : { status: 200 });
    await useWebhook(first, merchant, hooks.url);
    const payment = await createPayment(first, merchant);
    const eventId = await eventIdOf(first, merchant, payment.id, 'payment.created');
    await hooks.waitFor(1);

    const stopping = Date.now();
    await first.close();
    assert.ok(Date.now() - stopping < 3_000, `stopping took ${Date.now() - stopping} ms`);

    const second = await storage.start(env);
    try {
      await hooks.waitFor(2, 10_000);
      assert.deepEqual(hooks.received.map(eventIdHeader), [eventId, eventId]);
      const delivery = await deliveryOnce(second, merchant, eventId, (candidate) => candidate.state !== 'pending');
      assert.equal(delivery.state, 'succeeded');
      assert.equal(delivery.attempt_log.length, 2);
      assert.equal(delivery.attempt_log[0].status_code, null);
      assert.match(delivery.attempt_log[0].error, /timed out/);
      assert.equal(delivery.attempt_log[1].status_code, 200);
      await sleep(300);
      assert.equal(hooks.received.length, 2);
    } finally {
      await second.close();
    }
  });

  it('retries an attempt cut off by a crash once its lease runs out, with the same event id', async () => {
    const env = { PAYCRYPT_WEBHOOK_TIME_SCALE: '0.001', PAYCRYPT_WEBHOOK_TIMEOUT_MS: '1000', PAYCRYPT_WEBHOOK_LEASE_MS: '3000' };
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-crash-'));
    dataDirs.push(dataDir);
    const served = await serveInChildProcess({
      ...env,
      PAYCRYPT_DATA_DIR: dataDir,
      PAYCRYPT_MASTER_KEY: '11'.repeat(32),
      PAYCRYPT_ADMIN_TOKEN: testAdminToken,
      ...(storage.databaseUrl ? { DATABASE_URL: storage.databaseUrl } : {}),
    });
    children.push(served.child);
    const created = await call(served.url, 'POST', '/admin/v1/merchants', testAdminToken, { name: 'Crashed mid-attempt' });
    assert.equal(created.status, 201);
    const merchant: Merchant = { merchantId: created.json.merchant_id, apiKey: created.json.api_key, apiSecret: created.json.api_secret, keyId: created.json.key_id };
    const hooks = await receiver();
    hooks.respond = (_request, index) => (index === 0 ? { hang: true } : { status: 200 });
    assert.equal((await call(served.url, 'PUT', '/api/v1/webhook_settings', merchant.apiKey, { url: hooks.url, enabled: true })).status, 200);
    assert.equal((await call(served.url, 'POST', '/api/v1/payments', merchant.apiKey, { amount: 10.0, currency: 'USD', method: 'crypto', type: 'deposit' })).status, 201);
    const [first] = await hooks.waitFor(1);
    await killed(served.child);

    const diskStorage = storage.databaseUrl ? undefined : await createStorage({ dataDir: path.join(dataDir, 'pglite') });
    const restarted = await storage.start(env, diskStorage ? { storage: diskStorage } : {});
    const restartedAt = Date.now();
    try {
      const [, second] = await hooks.waitFor(2, 15_000);
      assert.equal(eventIdHeader(second!), eventIdHeader(first!));
      const delivery = await deliveryOnce(restarted, merchant, eventIdHeader(first!), (candidate) => candidate.state !== 'pending');
      const leaseEnd = Date.parse(delivery.created_at) + 3_000;
      assert.ok(second!.receivedAt >= leaseEnd, `retried ${leaseEnd - second!.receivedAt} ms before the lease ran out`);
      const due = Math.max(leaseEnd, restartedAt);
      assert.ok(second!.receivedAt - due < 2_000, `retried ${second!.receivedAt - due} ms after the lease ran out and the gateway was back`);
      assert.equal(delivery.state, 'succeeded');
      assert.equal(delivery.attempts, 2);
      assert.deepEqual(
        delivery.attempt_log.map((attempt: any) => [attempt.attempt, attempt.status_code]),
        [[2, 200]],
      );
      await sleep(300);
      assert.equal(hooks.received.length, 2);
    } finally {
      await restarted.close();
      await diskStorage?.close();
    }
  });
});

describe('two gateways on one PostgreSQL database', { skip: process.env.DATABASE_URL ? false : 'needs DATABASE_URL' }, () => {
  let storage: Awaited<ReturnType<typeof suiteStorage>>;
  let first: TestGateway;
  let second: TestGateway;
  let hooks: WebhookReceiver;
  before(async () => {
    storage = await suiteStorage();
    // Note: one request at a time to an endpoint per process, so two at once at the receiver means both took part.
    first = await storage.start({ PAYCRYPT_WEBHOOK_ENDPOINT_CONCURRENCY: '1' });
    second = await storage.start({ PAYCRYPT_WEBHOOK_ENDPOINT_CONCURRENCY: '1' });
    hooks = await startWebhookReceiver();
  });
  after(async () => {
    await first?.close();
    await second?.close();
    await hooks?.close();
    await storage?.close();
  });

  it('delivers each of 200 events exactly once, both dispatchers taking part', async () => {
    const stats = countingConcurrency(hooks, 20);
    const merchant = await first.createMerchant('Two dispatchers');
    await useWebhook(first, merchant, hooks.url);
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(Array.from({ length: 20 }, (_, index) => createPayment(index % 2 === 0 ? first : second, merchant)));
    }
    await hooks.waitFor(200, 30_000);
    await sleep(1_000);

    const eventIds = hooks.received.map(eventIdHeader);
    assert.equal(eventIds.length, 200);
    assert.equal(new Set(eventIds).size, 200);
    assert.equal(stats.max, 2);
    const page1 = await deliveries(first, merchant, '?limit=100');
    const page2 = await deliveries(second, merchant, `?limit=100&starting_after=${page1.at(-1).id}`);
    const all = [...page1, ...page2];
    assert.equal(all.length, 200);
    assert.deepEqual(new Set(all.map((delivery) => `${delivery.state} after ${delivery.attempts}`)), new Set(['succeeded after 1']));
    assert.deepEqual(new Set(all.map((delivery) => delivery.event_id)), new Set(eventIds));
  });
});
