import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import { createGateway, type Gateway } from '../gateway.ts';
import { loadConfig } from '../internal/config.ts';
import { createLogger } from '../internal/logger.ts';
import { createStorage, type Storage, type Transaction } from '../storage/database.ts';
import { migrateToLatest } from '../storage/migrations/index.ts';

/**
 * A real gateway for tests: real HTTP on a free port, real storage —
 * PostgreSQL when `DATABASE_URL` is set (as CI does), else in-memory PGlite.
 * Each test file gets its own gateway, and tests keep apart by using their
 * own merchants.
 */
export type TestGateway = {
  gateway: Gateway;
  url: string;
  adminToken: string;
  dataDir: string;
  /** Stops the gateway and removes its data; call it from the suite's `after`. */
  close(): Promise<void>;
  /** Creates a merchant through the operator API; returns its id, key and secret. */
  createMerchant(name?: string): Promise<{ merchantId: number; apiKey: string; apiSecret: string; keyId: string }>;
  /** `fetch` against the gateway with a Bearer key and JSON body. */
  request(method: string, path: string, options?: { key?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> }): Promise<TestResponse>;
};

/**
 * On PostgreSQL each test file (one process) works in a database of its own,
 * created here from `DATABASE_URL` and dropped when the process ends; this
 * module points `DATABASE_URL` at it, so child processes a test starts share
 * it too. The workers of one file (webhook dispatchers, chain watchers) then
 * never pick up another file's jobs with their own settings.
 */
const sharedDatabaseUrl = process.env.DATABASE_URL;
if (sharedDatabaseUrl) {
  const base = new URL(sharedDatabaseUrl);
  const name = `${base.pathname.slice(1) || 'postgres'}`.slice(0, 40) + `_f${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: sharedDatabaseUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  base.pathname = `/${name}`;
  process.env.DATABASE_URL = base.toString();
  let dropped = false;
  process.on('beforeExit', async () => {
    if (dropped) return;
    dropped = true;
    const client = new pg.Client({ connectionString: sharedDatabaseUrl });
    await client.connect();
    await client.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`).finally(() => client.end());
  });
}

export type TestResponse = { status: number; headers: Headers; text: string; json: any };

export const testAdminToken = 'test-admin-token-0123456789abcdef';

/**
 * Starts a gateway. `options.storage` makes it use that storage (which it then
 * leaves open), so that several gateways, one after the other or side by
 * side, work on the same embedded database.
 */
export async function startTestGateway(env: Record<string, string> = {}, options: { storage?: Storage } = {}): Promise<TestGateway> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-test-'));
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    PAYCRYPT_DATA_DIR: dataDir,
    PAYCRYPT_MASTER_KEY: '11'.repeat(32),
    PAYCRYPT_ADMIN_TOKEN: testAdminToken,
    PAYCRYPT_LOG_LEVEL: process.env.PAYCRYPT_TEST_LOG_LEVEL ?? 'silent',
    ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
    ...env,
  });
  // Note: PGlite in memory rather than in the data directory: same engine, faster set-up.
  const ownStorage = options.storage || config.databaseUrl ? undefined : await createStorage({ dataDir: 'memory://' });
  const storage = options.storage ?? ownStorage;
  const gateway = await createGateway({ config, logger: createLogger({ level: config.logLevel }), ...(storage ? { storage } : {}) });
  const url = await gateway.listen();

  async function request(method: string, urlPath: string, options: Parameters<TestGateway['request']>[2] = {}): Promise<TestResponse> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
    let body: string | undefined = options.rawBody;
    if (body === undefined && options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined && !Object.keys(headers).some((name) => name.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
    const response = await fetch(`${url}${urlPath}`, { method, headers, body: body ?? null });
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  return {
    async close() {
      await gateway.close();
      await ownStorage?.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
    gateway,
    url,
    adminToken: testAdminToken,
    dataDir,
    request,
    async createMerchant(name = 'Test merchant') {
      const response = await request('POST', '/admin/v1/merchants', { key: testAdminToken, body: { name } });
      if (response.status !== 201) throw new Error(`creating a merchant failed: ${response.status} ${response.text}`);
      return { merchantId: response.json.merchant_id, apiKey: response.json.api_key, apiSecret: response.json.api_secret, keyId: response.json.key_id };
    },
  };
}

/**
 * Migrated storage for core tests: PostgreSQL at `databaseUrl` (by default
 * `DATABASE_URL`) when there is one, else in-memory PGlite.
 */
export async function openTestStorage(databaseUrl = process.env.DATABASE_URL): Promise<Storage> {
  const storage = await createStorage(databaseUrl ? { databaseUrl } : { dataDir: 'memory://' });
  await migrateToLatest(storage.db);
  return storage;
}

/**
 * How many row versions this transaction has written to `table` by updates so
 * far, and how many of them were HOT: kept on their row's page, writing no
 * index entry.
 */
export async function updatesInTransaction(trx: Transaction, table: string): Promise<{ updated: number; hot: number }> {
  const { rows } = await sql<{ updated: number; hot: number }>`
    select n_tup_upd::int as updated, n_tup_hot_upd::int as hot from pg_stat_xact_user_tables where relname = ${table}
  `.execute(trx);
  return rows[0]!;
}

/**
 * A PostgreSQL database of its own on the server of `DATABASE_URL`, dropped by
 * `drop()`; undefined without `DATABASE_URL`.
 *
 * @dev Every webhook dispatcher on a database works its whole delivery queue.
 * Tests of delivery itself (retry timing, timeouts, concurrency limits) use a
 * database of their own, so that gateways of other test files, with other
 * settings, do not take part in their deliveries, nor they in others'.
 */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> } | undefined> {
  const shared = process.env.DATABASE_URL;
  if (!shared) return undefined;
  const name = `paycrypt_test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: shared });
  await admin.connect();
  try {
    await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const url = new URL(shared);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: shared });
      await client.connect();
      try {
        await client.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}
