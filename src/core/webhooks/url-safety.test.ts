import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { PayCryptError } from '../../internal/errors.ts';
import { createTestDatabase, startTestGateway, type TestGateway } from '../../testing/harness.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../../testing/webhook-receiver.ts';
import { putWebhookSettings } from './endpoints.ts';
import { checkWebhookUrl, isBlockedAddress } from './url-safety.ts';

describe('webhook URL safety: which addresses are blocked', () => {
  const blocked: Array<[string, string]> = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.5', 'private 10/8'],
    ['10.255.255.255', 'private 10/8'],
    ['172.16.0.1', 'private 172.16/12'],
    ['172.31.255.255', 'private 172.16/12'],
    ['192.168.1.1', 'private 192.168/16'],
    ['169.254.169.254', 'link-local: the cloud metadata service'],
    ['169.254.0.1', 'link-local'],
    ['100.64.0.1', 'CGNAT 100.64/10'],
    ['100.127.255.255', 'CGNAT 100.64/10'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['::1', 'IPv6 loopback'],
    ['::', 'IPv6 unspecified'],
    ['fc00::1', 'unique local fc00::/7'],
    ['fd12:3456:789a::1', 'unique local fc00::/7'],
    ['fe80::1', 'link-local fe80::/10'],
    ['febf:ffff::1', 'link-local fe80::/10'],
    ['ff02::1', 'IPv6 multicast'],
    ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
    ['::ffff:7f00:1', 'IPv4-mapped loopback in hexadecimal'],
    ['::ffff:169.254.169.254', 'IPv4-mapped metadata service'],
    ['::ffff:10.0.0.5', 'IPv4-mapped private'],
  ];
  for (const [address, why] of blocked) {
    it(`blocks ${address} (${why})`, () => {
      assert.equal(isBlockedAddress(address), true);
    });
  }

  const allowed = ['8.8.8.8', '1.1.1.1', '2606:4700::1111', '2001:4860:4860::8888', '::ffff:8.8.8.8', '172.15.255.255', '172.32.0.1', '100.63.255.255', '100.128.0.1', '11.0.0.1', '192.169.0.1'];
  for (const address of allowed) {
    it(`allows the public address ${address}`, () => {
      assert.equal(isBlockedAddress(address), false);
    });
  }

  it('blocks anything that is not an address', () => {
    for (const text of ['localhost', '', '999.1.1.1', 'example.com']) assert.equal(isBlockedAddress(text), true, text);
  });
});

/** The refusal `checkWebhookUrl` throws, as the API shows it: invalid_request on the field `url`. */
async function refusal(url: string, policy: 'public-https' | 'any'): Promise<string> {
  const error = await checkWebhookUrl(url, policy).then(
    () => assert.fail(`${url} was allowed under ${policy}`),
    (thrown: unknown) => thrown,
  );
  assert.ok(error instanceof PayCryptError, String(error));
  assert.equal(error.code, 'invalid_request');
  assert.deepEqual(error.details, { field: 'url' });
  return error.message;
}

describe('webhook URL safety: checking a URL', () => {
  it('under public-https refuses plain http', async () => {
    assert.match(await refusal('http://example.com/webhook', 'public-https'), /https/);
  });

  for (const url of ['https://127.0.0.1/webhook', 'https://localhost/webhook', 'https://[::1]/webhook', 'https://10.0.0.5/webhook', 'https://169.254.169.254/latest/meta-data', 'https://[::ffff:127.0.0.1]/webhook', 'https://0x7f.0.0.1/webhook', 'https://2130706433/webhook']) {
    it(`under public-https refuses ${url}, which points to a non-public address`, async () => {
      assert.match(await refusal(url, 'public-https'), /public address/);
    });
  }

  it('refuses a URL with credentials under either policy', async () => {
    assert.match(await refusal('https://user:secret@example.com/webhook', 'public-https'), /credentials/);
    assert.match(await refusal('http://user:secret@127.0.0.1:8080/webhook', 'any'), /credentials/);
  });

  it('refuses schemes other than http(s) under either policy', async () => {
    for (const policy of ['public-https', 'any'] as const) {
      await refusal('file:///etc/passwd', policy);
      await refusal('ftp://127.0.0.1/webhook', policy);
      await refusal('not a url', policy);
    }
  });

  it('under any allows http://127.0.0.1 with a port, for local receivers', async () => {
    const url = await checkWebhookUrl('http://127.0.0.1:8080/webhook', 'any');
    assert.equal(url.toString(), 'http://127.0.0.1:8080/webhook');
    assert.equal((await checkWebhookUrl('http://localhost:8080/hook', 'any')).hostname, 'localhost');
  });
});

/** A TCP listener on 127.0.0.1 (and ::1 on the same port where it can) that counts connections and closes them. */
async function connectionCounter(): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const servers: net.Server[] = [];
  const listen = (host: string, port: number) =>
    new Promise<net.Server | undefined>((resolve) => {
      const server = net.createServer((socket) => {
        connections += 1;
        socket.destroy();
      });
      server.once('error', () => resolve(undefined));
      server.listen(port, host, () => resolve(server));
    });
  const first = (await listen('127.0.0.1', 0))!;
  servers.push(first);
  const port = (first.address() as net.AddressInfo).port;
  const v6 = await listen('::1', port);
  if (v6) servers.push(v6);
  return {
    port,
    connections: () => connections,
    close: async () => {
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    },
  };
}

describe('webhook URL safety in production', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let t: TestGateway;
  let receiver: WebhookReceiver;
  let counter: Awaited<ReturnType<typeof connectionCounter>>;
  before(async () => {
    // Note: a database of its own on PostgreSQL, so this production gateway refuses only its own deliveries.
    database = await createTestDatabase();
    t = await startTestGateway({
      NODE_ENV: 'production',
      PAYCRYPT_WEBHOOK_TIME_SCALE: '0.001',
      ...(database ? { DATABASE_URL: database.url } : {}),
    });
    receiver = await startWebhookReceiver();
    counter = await connectionCounter();
  });
  after(async () => {
    await t?.close();
    await receiver?.close();
    await counter?.close();
    await database?.drop();
  });

  for (const url of ['http://127.0.0.1:9/webhook', 'https://localhost/webhook', 'https://[::1]/webhook', 'https://10.0.0.5/webhook', 'https://169.254.169.254/latest/meta-data']) {
    it(`refuses to save ${url} as a webhook URL, and saves nothing`, async () => {
      const merchant = await t.createMerchant(`Refused ${url}`);
      const response = await t.request('PUT', '/api/v1/webhook_settings', { key: merchant.apiKey, body: { url, enabled: true } });
      assert.equal(response.status, 400, response.text);
      assert.equal(response.json.error.code, 'invalid_request');
      assert.equal(response.json.error.details.invalid_fields[0].field, 'url');
      const settings = await t.request('GET', '/api/v1/webhook_settings', { key: merchant.apiKey });
      assert.equal(settings.status, 200);
      assert.equal(settings.json.url, null);
      assert.equal(settings.json.enabled, false);
    });
  }

  /** Saves `url` as the merchant's webhook URL without the production check, as if it had got there another way. */
  async function saveUnchecked(merchantId: number, url: string) {
    const { storage, master } = t.gateway.context;
    await putWebhookSettings(storage.db, master, { merchantId, policy: 'any', url, enabled: true });
  }

  async function firstAttempt(merchant: Awaited<ReturnType<TestGateway['createMerchant']>>) {
    const created = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: { amount: 10.0, currency: 'USD', method: 'crypto', type: 'deposit' } });
    assert.equal(created.status, 201, created.text);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const response = await t.request('GET', '/api/v1/webhook_deliveries', { key: merchant.apiKey });
      const attempt = response.json.data[0]?.attempt_log[0];
      if (attempt) return { delivery: response.json.data[0], attempt };
      if (Date.now() > deadline) assert.fail('no attempt was logged');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  it('refuses at delivery time to connect to a private address saved another way, and logs the refusal', async () => {
    const merchant = await t.createMerchant('Private address at delivery');
    await saveUnchecked(merchant.merchantId, `https://127.0.0.1:${counter.port}/webhook`);
    const before = counter.connections();
    const { delivery, attempt } = await firstAttempt(merchant);
    assert.equal(attempt.status_code, null);
    assert.match(attempt.error, /refused/);
    assert.match(attempt.error, /127\.0\.0\.1/);
    assert.equal(delivery.state, 'pending', 'a refusal is a failed attempt, retried like any other');
    assert.equal(counter.connections(), before, 'no connection was made');
  });

  it('refuses at delivery time a name that resolves to a private address (localhost), without connecting', async () => {
    const merchant = await t.createMerchant('Name resolving privately at delivery');
    await saveUnchecked(merchant.merchantId, `https://localhost:${counter.port}/webhook`);
    const before = counter.connections();
    const { attempt } = await firstAttempt(merchant);
    assert.equal(attempt.status_code, null);
    assert.match(attempt.error, /refused to connect to localhost/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(counter.connections(), before, 'no connection was made');
  });

  it('refuses at delivery time a plain-http URL saved another way; the receiver gets nothing', async () => {
    const merchant = await t.createMerchant('Plain http at delivery');
    await saveUnchecked(merchant.merchantId, receiver.url);
    const { attempt } = await firstAttempt(merchant);
    assert.equal(attempt.status_code, null);
    assert.match(attempt.error, /not https/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(receiver.received.length, 0);
  });
});
