import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ReceivedWebhook, startWebhookReceiver, type WebhookReceiver } from '../testing/webhook-receiver.ts';
import { cli, cliEnv, cliJson, exited, freePort, paycrypt, repoRoot } from '../testing/cli.ts';


function sign(secret: string, webhook: ReceivedWebhook): string {
  return createHmac('sha256', secret).update(`${webhook.headers['x-paycrypt-timestamp']}.${webhook.body}`).digest('hex');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const deposit = { amount: 100.0, currency: 'USD', method: 'crypto', type: 'deposit', crypto_currency: 'USDT', description: 'Payment for order 123' };

describe('paycrypt webhooks set|show|rotate|disable|redeliver beside a running gateway on embedded storage', () => {
  let dataDir: string;
  let settings: Record<string, string>;
  let server: ChildProcess;
  let serverLog = '';
  let baseUrl: string;
  let adminToken: string;
  let merchant: Merchant;
  let hooks: WebhookReceiver;
  const secretsSeen: string[] = [];

  type Merchant = { merchant_id: number; api_key: string; flag: string[] };

  async function call(method: string, urlPath: string, token: string, body?: unknown): Promise<{ status: number; json: any }> {
    const response = await fetch(`${baseUrl}${urlPath}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
    });
    return { status: response.status, json: (await response.json()) as any };
  }

  async function createMerchant(name: string): Promise<Merchant> {
    const created = await call('POST', '/admin/v1/merchants', adminToken, { name });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    return { ...created.json, flag: ['--merchant', String(created.json.merchant_id)] };
  }

  async function createPayment(owner: Merchant = merchant): Promise<{ id: number; eventId: string }> {
    const created = await call('POST', '/api/v1/payments', owner.api_key, deposit);
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const events = await call('GET', `/api/v1/events?payment_id=${created.json.id}`, owner.api_key);
    return { id: created.json.id, eventId: events.json.data[0].id };
  }

  /** The webhooks that carried `eventId`, once `count` of them have arrived. */
  async function webhooksOf(eventId: string, count = 1, receiver: WebhookReceiver = hooks): Promise<ReceivedWebhook[]> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const carrying = receiver.received.filter((candidate) => candidate.headers['x-paycrypt-event-id'] === eventId);
      if (carrying.length >= count) return carrying;
      if (Date.now() > deadline) assert.fail(`${carrying.length} webhooks of ${eventId} arrived within 10 s, expected ${count}`);
      await sleep(50);
    }
  }

  const webhooks = (args: string[]) => ['webhooks', ...args];

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-webhooks-cli-'));
    settings = { PAYCRYPT_DATA_DIR: dataDir };
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    server = spawn(paycrypt, ['serve'], {
      cwd: repoRoot,
      env: cliEnv({ ...settings, PORT: String(port), PAYCRYPT_LOG_LEVEL: 'debug', PAYCRYPT_WEBHOOK_TIME_SCALE: '0.0001' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout!.on('data', (chunk) => (serverLog += chunk));
    server.stderr!.on('data', (chunk) => (serverLog += chunk));
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (server.exitCode !== null) assert.fail(`paycrypt serve exited with ${server.exitCode}:\n${serverLog}`);
      const healthy = await fetch(`${baseUrl}/health`).then(
        (response) => response.ok,
        () => false,
      );
      if (healthy) break;
      if (Date.now() > deadline) assert.fail(`paycrypt serve did not become healthy within 90 s:\n${serverLog}`);
      await sleep(200);
    }
    adminToken = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    merchant = await createMerchant('Webhook CLI');
    hooks = await startWebhookReceiver();
  });
  after(async () => {
    await hooks?.close();
    if (server && server.exitCode === null && server.signalCode === null) {
      server.kill('SIGTERM');
      const stopped = await Promise.race([exited(server).then(() => true), sleep(10_000).then(() => false)]);
      if (!stopped) {
        server.kill('SIGKILL');
        await exited(server);
      }
    }
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('webhooks set --merchant ID --url URL --json enables webhooks and prints the generated secret', async () => {
    const set = await cliJson(webhooks(['set', ...merchant.flag, '--url', hooks.url]), settings);
    assert.equal(set.enabled, true);
    assert.equal(set.url, hooks.url);
    assert.equal(set.events, null);
    assert.match(set.secret, /^whsec_[0-9a-z]{40}$/);
    secretsSeen.push(set.secret);
    assert.match(serverLog, /"url":"\/admin\/v1\/merchants\/\d+\/webhook_settings"/, 'the command went through the gateway\'s admin API');
  });

  it('webhooks show prints the settings with the secret masked', async () => {
    const shown = await cli(webhooks(['show', ...merchant.flag]), settings);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(shown.stdout, [`Webhooks enabled: ${hooks.url}`, '  events: all', `  secret: whsec_••••••••${secretsSeen[0]!.slice(-4)}`, ''].join('\n'));
    assert.ok(!shown.stdout.includes(secretsSeen[0]!));
  });

  it('a payment\'s webhooks reach the receiver and verify with that secret', async () => {
    const payment = await createPayment();
    const completed = await call('POST', `/admin/v1/payments/${payment.id}/complete`, adminToken);
    assert.equal(completed.json.status, 'completed');
    const received = await hooks.waitFor(2);
    assert.deepEqual(
      received.map((webhook) => [webhook.headers['x-paycrypt-event'], JSON.parse(webhook.body).payment.id]),
      [
        ['payment.created', payment.id],
        ['payment.completed', payment.id],
      ],
    );
    for (const webhook of received) assert.equal(webhook.headers['x-paycrypt-signature'], sign(secretsSeen[0]!, webhook));
  });

  it('webhooks rotate --overlap-hours 0 --json prints a new secret that alone signs the next webhook', async () => {
    const rotated = await cliJson(webhooks(['rotate', ...merchant.flag, '--overlap-hours', '0']), settings);
    assert.match(rotated.secret, /^whsec_[0-9a-z]{40}$/);
    assert.notEqual(rotated.secret, secretsSeen[0]);
    assert.equal(rotated.secret_rotation, null);
    secretsSeen.push(rotated.secret);

    const payment = await createPayment();
    const [webhook] = await webhooksOf(payment.eventId);
    assert.equal(webhook!.headers['x-paycrypt-signature'], sign(rotated.secret, webhook!));
    assert.notEqual(webhook!.headers['x-paycrypt-signature'], sign(secretsSeen[0]!, webhook!));
    assert.equal(webhook!.headers['x-paycrypt-signature-next'], undefined);
    assert.equal((await call('GET', '/api/v1/webhook_settings', merchant.api_key)).json.secret, `whsec_••••••••${rotated.secret.slice(-4)}`);
  });

  it('webhooks disable stops deliveries while events are recorded; webhooks set switches them on and sends what waited', async () => {
    const disabled = await cliJson(webhooks(['disable', ...merchant.flag]), settings);
    assert.equal(disabled.enabled, false);
    assert.equal(disabled.url, hooks.url);
    assert.equal((await call('GET', '/api/v1/webhook_settings', merchant.api_key)).json.enabled, false);

    const before = hooks.received.length;
    const payment = await createPayment();
    await sleep(1_500);
    assert.equal(hooks.received.length, before, 'nothing is sent while webhooks are disabled');

    const enabled = await cliJson(webhooks(['set', ...merchant.flag, '--url', hooks.url]), settings);
    assert.equal(enabled.enabled, true);
    const [waited] = await webhooksOf(payment.eventId);
    assert.equal(waited!.headers['x-paycrypt-signature'], sign(secretsSeen.at(-1)!, waited!));
  });

  it('webhooks redeliver --merchant ID EVENT_ID sends that event again, with the same id and body', async () => {
    const payment = await createPayment();
    const [first] = await webhooksOf(payment.eventId);
    const redelivered = await cli(webhooks(['redeliver', ...merchant.flag, payment.eventId]), settings);
    assert.equal(redelivered.code, 0, redelivered.stderr);
    assert.equal(redelivered.stdout, `Queued again: ${payment.eventId}\n`);
    const [, again] = await webhooksOf(payment.eventId, 2);
    assert.equal(again!.body, first!.body);
    assert.equal(again!.headers['x-paycrypt-signature'], sign(secretsSeen.at(-1)!, again!));
    const deliveries = await call('GET', `/api/v1/webhook_deliveries?event_id=${payment.eventId}`, merchant.api_key);
    assert.deepEqual(
      deliveries.json.data.map((delivery: any) => delivery.state),
      ['succeeded', 'succeeded'],
    );
  });

  it('webhooks redeliver --from --to sends again the events whose delivery failed for good in that range', async () => {
    const other = await createMerchant('Webhook CLI, unreachable');
    const from = new Date(Date.now() - 1_000).toISOString();
    const unreachable = `http://127.0.0.1:${await freePort()}/webhook`;
    const set = await call('PUT', '/api/v1/webhook_settings', other.api_key, { url: unreachable, enabled: true });
    const payment = await createPayment(other);
    const deadline = Date.now() + 15_000;
    let failed: any[] = [];
    while (failed.length === 0) {
      if (Date.now() > deadline) assert.fail('the delivery to an unreachable URL did not fail for good within 15 s');
      await sleep(100);
      failed = (await call('GET', '/api/v1/webhook_deliveries?state=failed', other.api_key)).json.data;
    }
    assert.equal(failed[0].event_id, payment.eventId);
    assert.equal(failed[0].attempts, 6);

    const receiver = await startWebhookReceiver();
    try {
      await call('PUT', '/api/v1/webhook_settings', other.api_key, { url: receiver.url, enabled: true });
      const to = new Date(Date.now() + 1_000).toISOString();
      const result = await cliJson(webhooks(['redeliver', ...other.flag, '--from', from, '--to', to]), settings);
      assert.deepEqual(result, { event_ids: [payment.eventId] });
      const [webhook] = await webhooksOf(payment.eventId, 1, receiver);
      assert.equal(JSON.parse(webhook!.body).payment.id, payment.id);
      assert.equal(webhook!.headers['x-paycrypt-signature'], sign(set.json.secret, webhook!));
    } finally {
      await receiver.close();
    }
  });

  it('mistakes end with a clear message and a non-zero exit code, and change nothing', async () => {
    const before = await call('GET', '/api/v1/webhook_settings', merchant.api_key);
    const cases: Array<[string[], RegExp]> = [
      [webhooks(['set', ...merchant.flag, '--url', 'ftp://x']), /^paycrypt: url must use https \(or http in development\)/m],
      [webhooks(['redeliver', ...merchant.flag, 'evt_doesnotexist0']), /^paycrypt: Event not found: evt_doesnotexist0/m],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args, settings)));
    cases.forEach(([args, message], index) => {
      const result = results[index]!;
      assert.notEqual(result.code, 0, `paycrypt ${args.join(' ')} succeeded`);
      assert.match(result.stderr, message, `paycrypt ${args.join(' ')}`);
      assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace for an operator mistake');
    });
    assert.deepEqual((await call('GET', '/api/v1/webhook_settings', merchant.api_key)).json, before.json);
  });

  it('the gateway\'s debug log never contains a webhook secret, whether shown by the CLI or the merchant API', async () => {
    const own = await call('PUT', '/api/v1/webhook_settings', merchant.api_key, { url: hooks.url, enabled: true, secret: 'merchant-chosen-secret-0123456789' });
    assert.equal(own.json.secret, 'merchant-chosen-secret-0123456789');
    secretsSeen.push(own.json.secret);
    const rotated = await call('POST', '/api/v1/webhook_settings/rotate_secret', merchant.api_key, { overlap_hours: 1 });
    assert.equal(rotated.status, 200);
    secretsSeen.push(rotated.json.secret);
    const payment = await createPayment();
    const [webhook] = await webhooksOf(payment.eventId);
    assert.equal(webhook!.headers['x-paycrypt-signature-next'], sign(rotated.json.secret, webhook!));

    assert.match(serverLog, /"url":"\/api\/v1\/webhook_settings\/rotate_secret"/, 'the calls that showed secrets were logged');
    assert.match(serverLog, /webhook delivered/, 'deliveries were logged');
    assert.equal(secretsSeen.length, 4);
    for (const secret of secretsSeen) assert.ok(!serverLog.includes(secret), `a webhook secret ending in ${secret.slice(-4)} appears in the gateway's log`);
  });
});
