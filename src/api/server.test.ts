import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createGateway, type Gateway } from '../gateway.ts';
import { loadConfig } from '../internal/config.ts';
import { createLogger } from '../internal/logger.ts';
import { createStorage, type Db, type Storage } from '../storage/database.ts';
import { startTestGateway, type TestGateway, type TestResponse, testAdminToken } from '../testing/harness.ts';

type Merchant = Awaited<ReturnType<TestGateway['createMerchant']>>;

const packageVersion: string = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;

function assertErrorEnvelope(response: TestResponse, status: number, code: string): { code: string; message: string } {
  assert.equal(response.status, status, response.text);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(Object.keys(response.json ?? {}), ['error'], response.text);
  assert.equal(response.json.error.code, code);
  assert.equal(typeof response.json.error.message, 'string');
  return response.json.error;
}

const paymentBody = (clientReference: string, extra: Record<string, unknown> = {}) => ({
  amount: 10.0,
  currency: 'USD',
  method: 'crypto',
  type: 'deposit',
  client_reference: clientReference,
  ...extra,
});

async function rowsOf(db: Db, merchantId: number): Promise<{ payments: number; events: number }> {
  const count = async (table: 'payments' | 'events') =>
    Number(
      (await db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('rows')).where('merchant_id', '=', merchantId).executeTakeFirstOrThrow()).rows,
    );
  return { payments: await count('payments'), events: await count('events') };
}

async function paymentsWithReference(db: Db, clientReference: string): Promise<number> {
  const row = await db
    .selectFrom('payments')
    .select((eb) => eb.fn.countAll<number>().as('rows'))
    .where('client_reference', '=', clientReference)
    .executeTakeFirstOrThrow();
  return Number(row.rows);
}

/** Payments of the merchant that lack their `payment.created` event: a half-written payment. */
async function paymentsWithoutCreatedEvent(db: Db, merchantId: number): Promise<number> {
  const row = await db
    .selectFrom('payments')
    .leftJoin('events', (join) => join.onRef('events.payment_id', '=', 'payments.id').on('events.type', '=', 'payment.created'))
    .select((eb) => eb.fn.countAll<number>().as('rows'))
    .where('payments.merchant_id', '=', merchantId)
    .where('events.id', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(row.rows);
}

describe('HTTP server', () => {
  let t: TestGateway;
  let merchant: Merchant;
  before(async () => {
    t = await startTestGateway({ PAYCRYPT_BODY_LIMIT_BYTES: '2048' });
    merchant = await t.createMerchant('Server');
  });
  after(() => t.close());

  describe('GET /health', () => {
    it('answers 200 {status: "ok", timestamp, version} without authentication', async () => {
      const response = await t.request('GET', '/health');
      assert.equal(response.status, 200, response.text);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(response.json.status, 'ok');
      assert.equal(response.json.version, packageVersion);
      assert.match(response.json.timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
      assert.ok(Math.abs(Date.parse(response.json.timestamp) - Date.now()) < 60_000, 'the timestamp is the current time');
    });
  });

  describe('request ids', () => {
    it('gives every response, success or error, its own x-request-id (req_…)', async () => {
      const responses = [
        await t.request('GET', '/health'),
        await t.request('GET', '/health'),
        await t.request('GET', '/openapi.json'),
        await t.request('GET', '/api/v1/payments', { key: merchant.apiKey }),
        await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: paymentBody(`request-id-${randomUUID()}`) }),
        await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: {} }),
        await t.request('GET', '/api/v1/payments'),
        await t.request('GET', '/api/v1/payments/999999', { key: merchant.apiKey }),
        await t.request('GET', '/no/such/route'),
        await t.request('GET', '/admin/v1/merchants'),
      ];
      assert.deepEqual(
        responses.map((response) => response.status),
        [200, 200, 200, 200, 201, 400, 401, 404, 404, 401],
      );
      const ids = responses.map((response) => response.headers.get('x-request-id'));
      for (const id of ids) assert.match(id ?? '', /^req_[0-9a-z]{16,}$/);
      assert.equal(new Set(ids).size, ids.length, 'request ids are unique');
    });
  });

  describe('OpenAPI document and docs', () => {
    let document: any;
    before(async () => {
      const response = await t.request('GET', '/openapi.json');
      assert.equal(response.status, 200, response.text);
      document = response.json;
    });

    it('is OpenAPI 3.1 for this version of PayCrypt', () => {
      assert.match(document.openapi, /^3\.1\.\d+$/);
      assert.equal(document.info.version, packageVersion);
    });

    it('documents creating, listing and getting payments', () => {
      assert.ok(document.paths['/api/v1/payments']?.post, 'POST /api/v1/payments');
      assert.ok(document.paths['/api/v1/payments']?.get, 'GET /api/v1/payments');
      const get = document.paths['/api/v1/payments/{payment_id}']?.get;
      assert.ok(get, 'GET /api/v1/payments/{payment_id}');
      assert.deepEqual(
        get.parameters.filter((parameter: { in: string }) => parameter.in === 'path').map((parameter: { name: string; required: boolean }) => [parameter.name, parameter.required]),
        [['payment_id', true]],
      );
      assert.ok(get.responses['404'], 'documents the 404');
    });

    it("documents the create request body's fields, required ones and enums", () => {
      const post = document.paths['/api/v1/payments'].post;
      const schema = post.requestBody.content['application/json'].schema;
      assert.deepEqual(Object.keys(schema.properties).sort(), [
        'amount',
        'client_reference',
        'crypto_currency',
        'crypto_network',
        'currency',
        'description',
        'expires_in',
        'method',
        'type',
      ]);
      assert.deepEqual([...schema.required].sort(), ['amount', 'currency', 'method', 'type']);
      assert.equal(schema.properties.amount.type, 'number');
      assert.equal(schema.properties.currency.type, 'string');
      assert.deepEqual(schema.properties.method.enum, ['crypto', 'bank']);
      assert.deepEqual(schema.properties.type.enum, ['deposit', 'withdraw']);
      assert.equal(schema.additionalProperties, false);
      for (const status of ['201', '400', '401', '429']) assert.ok(post.responses[status], `documents the ${status}`);
    });

    it('documents the payment and the error envelope as schemas that every $ref reaches', () => {
      const resolve = (ref: string) => ref.slice(2).split('/').reduce<any>((node, key) => node?.[key.replaceAll('~1', '/').replaceAll('~0', '~')], document);
      const refs: string[] = [];
      const walk = (node: unknown): void => {
        if (Array.isArray(node)) node.forEach(walk);
        else if (node && typeof node === 'object') {
          for (const [key, value] of Object.entries(node)) {
            if (key === '$ref' && typeof value === 'string') refs.push(value);
            else walk(value);
          }
        }
      };
      walk(document.paths);
      assert.ok(refs.length > 0);
      for (const ref of refs) {
        assert.match(ref, /^#\//);
        assert.ok(resolve(ref), `${ref} resolves within the document`);
      }
      const created = resolve(document.paths['/api/v1/payments'].post.responses['201'].content['application/json'].schema.$ref);
      for (const field of ['id', 'transaction_id', 'status', 'amount', 'currency', 'crypto_amount', 'created_at']) assert.ok(created.properties[field], field);
      const error = resolve(document.paths['/api/v1/payments'].post.responses['400'].content['application/json'].schema.$ref);
      assert.deepEqual(Object.keys(error.properties), ['error']);
      assert.deepEqual(Object.keys(error.properties.error.properties), ['code', 'message', 'details']);
    });

    it('documents the list filters and the bearer key', () => {
      const list = document.paths['/api/v1/payments'].get;
      const parameters = Object.fromEntries(list.parameters.map((parameter: { name: string; in: string; schema: unknown }) => [parameter.name, parameter]));
      for (const name of ['status', 'page', 'per_page', 'from_date', 'to_date']) assert.equal(parameters[name]?.in, 'query', name);
      assert.deepEqual(parameters.status.schema.enum, ['pending', 'approved', 'completed', 'failed', 'rejected', 'cancelled']);
      assert.equal(parameters.per_page.schema.maximum, 100);
      const [requirement] = list.security;
      const scheme = document.components.securitySchemes[Object.keys(requirement)[0]!];
      assert.deepEqual([scheme.type, scheme.scheme], ['http', 'bearer']);
    });

    it('serves the docs as an HTML page reading the same document', async () => {
      const page = await t.request('GET', '/docs');
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(page.text, /<html/i);
      const served = await t.request('GET', '/docs/json');
      assert.equal(served.status, 200);
      assert.deepEqual(served.json, document);
    });
  });

  describe('request bodies', () => {
    it('accepts a body under the limit', async () => {
      const response = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: paymentBody(`small-${randomUUID()}`, { description: 'x'.repeat(1000) }) });
      assert.equal(response.status, 201, response.text);
    });

    for (const [what, send] of [
      ['a body over the limit', (key: string, reference: string) => t.request('POST', '/api/v1/payments', { key, body: paymentBody(reference, { description: 'x'.repeat(3000) }) })],
      [
        'a body of fewer characters than the limit but more bytes',
        (key: string, reference: string) => t.request('POST', '/api/v1/payments', { key, body: paymentBody(reference, { description: 'é'.repeat(1000) }) }),
      ],
      [
        'a chunked body over the limit, sent without Content-Length',
        async (key: string, reference: string) => {
          const bytes = Buffer.from(JSON.stringify(paymentBody(reference, { description: 'x'.repeat(3000) })));
          const body = new ReadableStream({
            start(controller) {
              for (let at = 0; at < bytes.length; at += 512) controller.enqueue(bytes.subarray(at, at + 512));
              controller.close();
            },
          });
          const response = await fetch(`${t.url}/api/v1/payments`, {
            method: 'POST',
            body,
            duplex: 'half',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          } as RequestInit);
          const text = await response.text();
          return { status: response.status, headers: response.headers, text, json: JSON.parse(text) };
        },
      ],
    ] as const) {
      it(`answers ${what} with 413 payload_too_large and writes nothing`, async () => {
        const rowsBefore = await rowsOf(t.gateway.context.storage.db, merchant.merchantId);
        const reference = `too-large-${randomUUID()}`;
        assertErrorEnvelope(await send(merchant.apiKey, reference), 413, 'payload_too_large');
        assert.equal(await paymentsWithReference(t.gateway.context.storage.db, reference), 0);
        assert.deepEqual(await rowsOf(t.gateway.context.storage.db, merchant.merchantId), rowsBefore);
      });
    }

    for (const contentType of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml']) {
      it(`answers a JSON body sent as ${contentType} with 415 unsupported_media_type and writes nothing`, async () => {
        const rowsBefore = await rowsOf(t.gateway.context.storage.db, merchant.merchantId);
        const reference = `media-type-${randomUUID()}`;
        const response = await t.request('POST', '/api/v1/payments', {
          key: merchant.apiKey,
          rawBody: JSON.stringify(paymentBody(reference)),
          headers: { 'content-type': contentType },
        });
        assertErrorEnvelope(response, 415, 'unsupported_media_type');
        assert.equal(await paymentsWithReference(t.gateway.context.storage.db, reference), 0);
        assert.deepEqual(await rowsOf(t.gateway.context.storage.db, merchant.merchantId), rowsBefore);
      });
    }

    for (const contentType of ['application/json; charset=utf-8', 'Application/JSON']) {
      it(`accepts JSON sent as ${contentType}`, async () => {
        const response = await t.request('POST', '/api/v1/payments', {
          key: merchant.apiKey,
          rawBody: JSON.stringify(paymentBody(`json-${randomUUID()}`)),
          headers: { 'content-type': contentType },
        });
        assert.equal(response.status, 201, response.text);
      });
    }
  });

  describe('unknown routes', () => {
    for (const [method, route, auth] of [
      ['GET', '/no/such/route', undefined],
      ['GET', '/api/v2/payments', undefined],
      ['GET', '/api/v1', 'merchant'],
      ['GET', '/api/v1/refunds', 'merchant'],
      ['POST', '/api/v1/payments/1', 'merchant'],
      ['DELETE', '/api/v1/payments', 'merchant'],
      ['PUT', '/health', undefined],
      ['GET', '/admin/v1/no-such-thing', 'admin'],
    ] as const) {
      it(`answers ${method} ${route} with 404 resource_not_found in the envelope`, async () => {
        const key = auth === 'merchant' ? merchant.apiKey : auth === 'admin' ? t.adminToken : undefined;
        const response = await t.request(method, route, { ...(key ? { key } : {}) });
        assertErrorEnvelope(response, 404, 'resource_not_found');
      });
    }

    it('does not tell a caller without a key which PayCrypt routes exist', async () => {
      assertErrorEnvelope(await t.request('GET', '/api/v1/refunds'), 401, 'authentication_failed');
    });
  });
});

/**
 * A TCP proxy in front of PostgreSQL that a test can close, reopen, or use to
 * drop one connection at the moment it sends a given statement.
 */
type PostgresProxy = {
  /** The DATABASE_URL that goes through the proxy. */
  url: string;
  /** Stops accepting connections and drops every open one. */
  close(): Promise<void>;
  reopen(): Promise<void>;
  /** Drops the next connection that sends `sql`, before it reaches the server; returns what that connection had sent before. */
  dropWhenSent(sql: string): { sentBefore(): string | undefined };
};

async function startPostgresProxy(databaseUrl: string): Promise<PostgresProxy> {
  const target = new URL(databaseUrl);
  const sockets = new Set<net.Socket>();
  let trap: { sql: string; sentBefore?: string } | undefined;

  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    let sent = '';
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      if (trap && trap.sentBefore === undefined && text.includes(trap.sql)) {
        trap.sentBefore = sent;
        client.destroy();
        upstream.destroy();
        return;
      }
      sent += text;
      upstream.write(chunk);
    });
    upstream.pipe(client);
  });

  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;
  const url = new URL(databaseUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);

  return {
    url: url.toString(),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
    reopen: () => listen(port),
    dropWhenSent(sql) {
      const armed: { sql: string; sentBefore?: string } = { sql };
      trap = armed;
      return { sentBefore: () => armed.sentBefore };
    },
  };
}

const postgresUrl = process.env.DATABASE_URL;

describe('when PostgreSQL goes away', { skip: postgresUrl ? false : 'runs with DATABASE_URL set' }, () => {
  let proxy: PostgresProxy;
  let t: TestGateway;
  let merchant: Merchant;
  let db: Db;
  before(async () => {
    proxy = await startPostgresProxy(postgresUrl!);
    t = await startTestGateway({ DATABASE_URL: proxy.url });
    db = t.gateway.context.storage.db;
    merchant = await t.createMerchant('Database outage');
    const created = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: paymentBody(`before-outage-${randomUUID()}`) });
    assert.equal(created.status, 201, created.text);
  });
  after(async () => {
    await t.close();
    await proxy.close();
  });

  it('answers 503 service_unavailable when the connection dies inside an idempotent create, keeps nothing, and the retry creates the payment', async () => {
    const rowsBefore = await rowsOf(db, merchant.merchantId);
    const reference = `cut-${randomUUID()}`;
    const idempotencyKey = `cut-${randomUUID()}`;
    // Note: the reference travels in the create statement's parameters, whether or not its text (a prepared statement) is sent again.
    const drop = proxy.dropWhenSent(reference);
    const response = await t.request('POST', '/api/v1/payments', {
      key: merchant.apiKey,
      body: paymentBody(reference),
      headers: { 'idempotency-key': idempotencyKey },
    });
    const sentBefore = drop.sentBefore();
    assert.ok(sentBefore !== undefined, 'the connection was dropped as the payment was written');
    assert.ok(sentBefore.slice(sentBefore.lastIndexOf('begin')).includes('insert into "idempotency_keys"'), 'the key had been claimed in that transaction');
    assertErrorEnvelope(response, 503, 'service_unavailable');

    assert.equal(await paymentsWithReference(db, reference), 0);
    assert.deepEqual(await rowsOf(db, merchant.merchantId), rowsBefore);
    assert.equal(await paymentsWithoutCreatedEvent(db, merchant.merchantId), 0);

    const retried = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: paymentBody(reference), headers: { 'idempotency-key': idempotencyKey } });
    assert.equal(retried.status, 201, `the key was not spent by the rolled-back attempt: ${retried.text}`);
    assert.equal(await paymentsWithReference(db, reference), 1);
  });

  it('serves the next request on a fresh connection', async () => {
    const response = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: paymentBody(`after-cut-${randomUUID()}`) });
    assert.equal(response.status, 201, response.text);
  });

  it('answers 503 in the envelope, and /health 503 "degraded", while the database cannot be reached', async () => {
    await proxy.close();
    const reference = `during-outage-${randomUUID()}`;
    const created = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: paymentBody(reference) });
    assertErrorEnvelope(created, 503, 'service_unavailable');
    assert.match(created.headers.get('x-request-id') ?? '', /^req_/);
    assertErrorEnvelope(await t.request('GET', '/api/v1/payments', { key: merchant.apiKey }), 503, 'service_unavailable');
    const health = await t.request('GET', '/health');
    assert.equal(health.status, 503);
    assert.equal(health.json.status, 'degraded');
    assert.equal(health.json.version, packageVersion);

    await proxy.reopen();
    assert.equal(await paymentsWithReference(db, reference), 0, 'nothing from the outage was written');
  });

  it('recovers once the database is back, with every payment whole', async () => {
    const health = await t.request('GET', '/health');
    assert.equal(health.status, 200, health.text);
    const created = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: paymentBody(`after-outage-${randomUUID()}`) });
    assert.equal(created.status, 201, created.text);
    const listed = await t.request('GET', '/api/v1/payments', { key: merchant.apiKey });
    assert.equal(listed.json.pagination.total, 4, 'the payments from before, between and after the outages, and the retried one');
    assert.deepEqual(await rowsOf(db, merchant.merchantId), { payments: 4, events: 4 });
    assert.equal(await paymentsWithoutCreatedEvent(db, merchant.merchantId), 0);
  });
});

describe('when embedded PGlite is closed under a running gateway', { skip: postgresUrl ? 'runs without DATABASE_URL' : false }, () => {
  let dataDir: string;
  let storage: Storage;
  let gateway: Gateway;
  let url: string;
  let merchant: { merchant_id: number; api_key: string };
  const request = async (method: string, route: string, options: { key?: string; body?: unknown } = {}): Promise<TestResponse> => {
    const response = await fetch(`${url}${route}`, {
      method,
      headers: { ...(options.key ? { authorization: `Bearer ${options.key}` } : {}), ...(options.body ? { 'content-type': 'application/json' } : {}) },
      body: options.body ? JSON.stringify(options.body) : null,
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, text, json: text ? JSON.parse(text) : undefined };
  };

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-outage-'));
    storage = await createStorage({ dataDir: path.join(dataDir, 'pglite') });
    const config = loadConfig({
      NODE_ENV: 'test',
      PORT: '0',
      HOST: '127.0.0.1',
      PAYCRYPT_DATA_DIR: dataDir,
      PAYCRYPT_MASTER_KEY: '11'.repeat(32),
      PAYCRYPT_ADMIN_TOKEN: testAdminToken,
      PAYCRYPT_LOG_LEVEL: 'silent',
    });
    gateway = await createGateway({ config, logger: createLogger({ level: 'silent' }), storage });
    url = await gateway.listen();
    const created = await request('POST', '/admin/v1/merchants', { key: testAdminToken, body: { name: 'Storage outage' } });
    assert.equal(created.status, 201, created.text);
    merchant = created.json;
    const payment = await request('POST', '/api/v1/payments', { key: merchant.api_key, body: paymentBody('before-outage') });
    assert.equal(payment.status, 201, payment.text);
  });
  let gatewayClosed = false;
  const closeGateway = async () => {
    if (gatewayClosed) return;
    gatewayClosed = true;
    await gateway.close();
  };
  after(async () => {
    await closeGateway();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers 503 in the envelope, and /health 503 "degraded"; reopened, the database holds only whole payments from before', async () => {
    await storage.close();
    assertErrorEnvelope(await request('POST', '/api/v1/payments', { key: merchant.api_key, body: paymentBody('during-outage') }), 503, 'service_unavailable');
    assertErrorEnvelope(await request('GET', '/api/v1/payments', { key: merchant.api_key }), 503, 'service_unavailable');
    const health = await request('GET', '/health');
    assert.equal(health.status, 503);
    assert.equal(health.json.status, 'degraded');

    await closeGateway();
    const reopened = await createStorage({ dataDir: path.join(dataDir, 'pglite') });
    try {
      assert.equal(await paymentsWithReference(reopened.db, 'during-outage'), 0);
      assert.equal(await paymentsWithReference(reopened.db, 'before-outage'), 1);
      assert.deepEqual(await rowsOf(reopened.db, merchant.merchant_id), { payments: 1, events: 1 });
      assert.equal(await paymentsWithoutCreatedEvent(reopened.db, merchant.merchant_id), 0);
    } finally {
      await reopened.close();
    }
  });
});
