import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createGateway, type Gateway } from '../gateway.ts';
import { loadConfig } from '../internal/config.ts';
import { createLogger } from '../internal/logger.ts';
import { unseal } from '../internal/secrets.ts';
import { createStorage, type Storage } from '../storage/database.ts';
import { startTestGateway, type TestGateway } from '../testing/harness.ts';

describe('secrets at rest: API keys in the database', () => {
  let t: TestGateway;
  let merchant: Awaited<ReturnType<TestGateway['createMerchant']>>;
  before(async () => {
    t = await startTestGateway();
    merchant = await t.createMerchant('Secrets at rest');
  });
  after(() => t.close());

  const masterKey = () => ({ key: Buffer.from(t.gateway.context.config.masterKeyHex!, 'hex') });
  const keyRow = () => t.gateway.context.storage.db.selectFrom('api_keys').selectAll().where('id', '=', merchant.keyId).executeTakeFirstOrThrow();

  it('stores neither the api_key nor the api_secret in clear', async () => {
    const row = await keyRow();
    const stored = JSON.stringify(row);
    assert.ok(!stored.includes(merchant.apiKey), 'the api_key is in the api_keys row');
    assert.ok(!stored.includes(merchant.apiSecret), 'the api_secret is in the api_keys row');
    assert.ok(!stored.includes(merchant.apiKey.slice(3)), 'the api_key without its prefix is in the api_keys row');
    assert.ok(!stored.includes(merchant.apiSecret.slice(3)), 'the api_secret without its prefix is in the api_keys row');
  });

  it('keeps the key as its SHA-256 and the first 11 characters as a prefix to tell keys apart', async () => {
    const row = await keyRow();
    assert.equal(row.key_hash, createHash('sha256').update(merchant.apiKey).digest('hex'));
    assert.equal(row.prefix, merchant.apiKey.slice(0, 11));
    assert.equal(row.merchant_id, merchant.merchantId);
  });

  it('seals the secret so that the master key, and only it, opens it', async () => {
    const row = await keyRow();
    assert.equal(unseal(masterKey(), row.secret_sealed), merchant.apiSecret);
    assert.throws(() => unseal({ key: randomBytes(32) }, row.secret_sealed));
    const flipped = Buffer.from(t.gateway.context.config.masterKeyHex!, 'hex');
    flipped[0]! ^= 1;
    assert.throws(() => unseal({ key: flipped }, row.secret_sealed));
  });

  it('seals each secret with its own nonce, so equal secrets never look equal at rest', async () => {
    const second = await t.request('POST', `/admin/v1/merchants/${merchant.merchantId}/keys`, { key: t.adminToken });
    assert.equal(second.status, 201);
    const rows = await t.gateway.context.storage.db.selectFrom('api_keys').select(['secret_sealed']).where('merchant_id', '=', merchant.merchantId).execute();
    assert.equal(rows.length, 2);
    const nonces = rows.map((row) => row.secret_sealed.split('.')[1]);
    assert.notEqual(nonces[0], nonces[1]);
  });

  it('leaves the key and secret nowhere among the merchant\'s rows, after the key has been used', async () => {
    const created = await t.request('POST', '/api/v1/payments', {
      key: merchant.apiKey,
      headers: { 'idempotency-key': `secrets-${Date.now()}` },
      body: { amount: 12.5, currency: 'USD', method: 'crypto', type: 'deposit' },
    });
    assert.equal(created.status, 201);
    const { db } = t.gateway.context.storage;
    const tables = ['merchants', 'api_keys', 'payments', 'events', 'idempotency_keys'] as const;
    for (const table of tables) {
      const column = table === 'merchants' ? 'id' : 'merchant_id';
      const { rows } = await sql<Record<string, unknown>>`select * from ${sql.table(table)} where ${sql.ref(column)} = ${merchant.merchantId}`.execute(db);
      const stored = JSON.stringify(rows);
      assert.ok(!stored.includes(merchant.apiKey), `the api_key is in ${table}`);
      assert.ok(!stored.includes(merchant.apiSecret), `the api_secret is in ${table}`);
    }
  });
});

describe('secrets at rest: logs', () => {
  let gateway: Gateway;
  let storage: Storage | undefined;
  let url: string;
  let dataDir: string;
  const adminToken = 'logs-admin-token-0123456789abcdef';
  const masterKeyHex = randomBytes(32).toString('hex');
  let logs = '';

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-logs-'));
    const config = loadConfig({
      NODE_ENV: 'test',
      PORT: '0',
      PAYCRYPT_DATA_DIR: dataDir,
      PAYCRYPT_MASTER_KEY: masterKeyHex,
      PAYCRYPT_ADMIN_TOKEN: adminToken,
      PAYCRYPT_LOG_LEVEL: 'trace',
      ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
    });
    const destination = new Writable({
      write(chunk, _encoding, done) {
        logs += String(chunk);
        done();
      },
    });
    storage = config.databaseUrl ? undefined : await createStorage({ dataDir: 'memory://' });
    gateway = await createGateway({ config, logger: createLogger({ level: 'trace', destination }), ...(storage ? { storage } : {}) });
    url = await gateway.listen();
  });
  after(async () => {
    await gateway?.close();
    await storage?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function call(method: string, urlPath: string, key: string, body?: unknown) {
    const response = await fetch(`${url}${urlPath}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
    });
    return { status: response.status, json: (await response.json()) as any };
  }

  it('never writes an api_key, api_secret, admin token or master key, even at trace level', async () => {
    const merchant = await call('POST', '/admin/v1/merchants', adminToken, { name: 'Logged merchant' });
    assert.equal(merchant.status, 201);
    const second = await call('POST', `/admin/v1/merchants/${merchant.json.merchant_id}/keys`, adminToken);
    assert.equal(second.status, 201);

    const payment = await call('POST', '/api/v1/payments', merchant.json.api_key, { amount: 5, currency: 'USD', method: 'crypto', type: 'deposit' });
    assert.equal(payment.status, 201);
    assert.equal((await call('GET', `/api/v1/payments/${payment.json.id}`, second.json.api_key)).status, 200);
    assert.equal((await call('POST', `/admin/v1/keys/${second.json.key_id}/revoke`, adminToken)).status, 200);
    assert.equal((await call('GET', '/api/v1/payments', second.json.api_key)).status, 401);
    // Note: the key with its last character changed (to another one: a key may end in 0).
    const altered = `${merchant.json.api_key.slice(0, -1)}${merchant.json.api_key.endsWith('0') ? '1' : '0'}`;
    assert.equal((await call('GET', '/api/v1/payments', altered)).status, 401);
    assert.equal((await call('POST', '/api/v1/payments', merchant.json.api_key, { amount: 'lots' })).status, 400);

    assert.match(logs, /"url":"\/api\/v1\/payments"/, 'the requests were logged');
    for (const [what, secret] of [
      ['api_key', merchant.json.api_key],
      ['api_secret', merchant.json.api_secret],
      ['second api_key', second.json.api_key],
      ['second api_secret', second.json.api_secret],
      ['admin token', adminToken],
      ['master key', masterKeyHex],
    ] as const) {
      assert.ok(!logs.includes(secret), `the ${what} appears in the logs`);
    }
  });
});
