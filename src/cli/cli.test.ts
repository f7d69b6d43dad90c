import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../testing/harness.ts';
import { cli, cliEnv, cliJson, exited, freePort, paycrypt, repoRoot } from '../testing/cli.ts';


async function api(url: string, method: string, key: string, body?: unknown) {
  const response = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as any };
}

const deposit = { amount: 100.0, currency: 'USD', method: 'crypto', type: 'deposit', crypto_currency: 'USDT' };

describe('paycrypt CLI', { concurrency: true }, () => {
  describe('paycrypt CLI with embedded storage, beside a running gateway', { concurrency: 1 }, () => {
    let dataDir: string;
    let settings: Record<string, string>;
    let server: ChildProcess;
    let serverLog = '';
    let baseUrl: string;
    let merchant: any;
    let secondKey: any;

    before(async () => {
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-cli-'));
      settings = { PAYCRYPT_DATA_DIR: dataDir };
      const port = await freePort();
      baseUrl = `http://127.0.0.1:${port}`;
      server = spawn(paycrypt, ['serve'], {
        cwd: repoRoot,
        env: cliEnv({ ...settings, PORT: String(port), PAYCRYPT_LOG_LEVEL: 'debug' }),
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
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    });
    after(async () => {
      if (server && server.exitCode === null && server.signalCode === null) {
        server.kill('SIGKILL');
        await exited(server);
      }
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    });

    it('serve records the running gateway in server.json of the data directory', () => {
      const file = JSON.parse(fs.readFileSync(path.join(dataDir, 'server.json'), 'utf8'));
      assert.equal(file.pid, server.pid);
      assert.equal(file.url, baseUrl);
    });

    it('merchants create --name Acme --json prints one JSON object whose api_key works on /api/v1/payments', async () => {
      merchant = await cliJson(['merchants', 'create', '--name', 'Acme'], settings);
      assert.equal(typeof merchant.merchant_id, 'number');
      assert.equal(merchant.name, 'Acme');
      assert.match(merchant.api_key, /^pk_[0-9a-z]{32}$/);
      assert.match(merchant.api_secret, /^sk_[0-9a-z]+$/);
      const list = await api(`${baseUrl}/api/v1/payments`, 'GET', merchant.api_key);
      assert.equal(list.status, 200);
      assert.deepEqual(list.json.data, []);
      assert.match(serverLog, /"url":"\/admin\/v1\/merchants"/, 'the command went through the gateway\'s admin API');
    });

    it('merchants create without --json shows the key and secret once, with a warning to store them', async () => {
      const result = await cli(['merchants', 'create', '--name', 'Globex'], settings);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^Merchant \d+ \(Globex\) created\.$/m);
      assert.match(result.stdout, /api_key: +pk_[0-9a-z]{32}$/m);
      assert.match(result.stdout, /api_secret: +sk_[0-9a-z]+$/m);
      assert.match(result.stdout, /not shown again/);
    });

    it('merchants list shows every merchant, in words and as JSON, without keys', async () => {
      const [human, merchants] = await Promise.all([cli(['merchants', 'list'], settings), cliJson(['merchants', 'list'], settings)]);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, new RegExp(`^${merchant.merchant_id}\tAcme\t`, 'm'));
      assert.match(human.stdout, /\tGlobex\t/);
      assert.deepEqual(
        merchants.map((m: any) => m.name),
        ['Acme', 'Globex'],
      );
      assert.deepEqual(Object.keys(merchants[0]).sort(), ['created_at', 'merchant_id', 'name']);
    });

    it('keys create --merchant ID --json issues another working key', async () => {
      secondKey = await cliJson(['keys', 'create', '--merchant', String(merchant.merchant_id)], settings);
      assert.equal(secondKey.merchant_id, merchant.merchant_id);
      assert.match(secondKey.key_id, /^key_/);
      assert.match(secondKey.api_key, /^pk_[0-9a-z]{32}$/);
      assert.notEqual(secondKey.api_key, merchant.api_key);
      assert.equal((await api(`${baseUrl}/api/v1/payments`, 'GET', secondKey.api_key)).status, 200);
    });

    it('keys list --merchant ID --json shows prefix and last use of each key, never the key itself', async () => {
      const keys = await cliJson(['keys', 'list', '--merchant', String(merchant.merchant_id)], settings);
      assert.deepEqual(
        keys.map((k: any) => k.key_id),
        [merchant.key_id, secondKey.key_id],
      );
      assert.equal(keys[0].prefix, merchant.api_key.slice(0, 11));
      assert.equal(keys[1].prefix, secondKey.api_key.slice(0, 11));
      for (const key of keys) {
        assert.match(key.last_used_at ?? '', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/, 'a used key shows when it was last used');
        assert.equal(key.revoked_at, null);
      }
      const listed = JSON.stringify(keys);
      for (const secret of [merchant.api_key, merchant.api_secret, secondKey.api_key, secondKey.api_secret]) assert.ok(!listed.includes(secret));
    });

    it('keys list shows "never" for a key not used yet', async () => {
      const unused = await cliJson(['keys', 'create', '--merchant', String(merchant.merchant_id)], settings);
      const human = await cli(['keys', 'list', '--merchant', String(merchant.merchant_id)], settings);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, new RegExp(`^${unused.key_id}\t${unused.api_key.slice(0, 11)}…\tcreated .*\tlast used never$`, 'm'));
      assert.ok(!human.stdout.includes(unused.api_key));
    });

    it('keys revoke KEY_ID stops that key at once and leaves the others working', async () => {
      const result = await cli(['keys', 'revoke', secondKey.key_id], settings);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`^Key ${secondKey.key_id} revoked at \\S+Z\\.$`, 'm'));
      const refused = await api(`${baseUrl}/api/v1/payments`, 'GET', secondKey.api_key);
      assert.equal(refused.status, 401);
      assert.equal(refused.json.error.code, 'authentication_failed');
      assert.equal((await api(`${baseUrl}/api/v1/payments`, 'GET', merchant.api_key)).status, 200);
    });

    it('payments approve then complete move a pending payment to completed', async () => {
      const created = await api(`${baseUrl}/api/v1/payments`, 'POST', merchant.api_key, deposit);
      assert.equal(created.status, 201);
      const id = created.json.id;
      const approved = await cli(['payments', 'approve', String(id)], settings);
      assert.equal(approved.code, 0, approved.stderr);
      assert.equal(approved.stdout, `Payment ${id} (${created.json.transaction_id}) is now approved.\n`);
      const completed = await cliJson(['payments', 'complete', String(id)], settings);
      assert.equal(completed.id, id);
      assert.equal(completed.status, 'completed');
      assert.equal((await api(`${baseUrl}/api/v1/payments/${id}`, 'GET', merchant.api_key)).json.status, 'completed');

      const cancel = await cli(['payments', 'cancel', String(id)], settings);
      assert.notEqual(cancel.code, 0);
      assert.match(cancel.stderr, /^paycrypt: Cannot move a payment from completed to cancelled/m);
      assert.doesNotMatch(cancel.stderr, /^\s+at /m, 'no stack trace for an operator mistake');
      assert.equal((await api(`${baseUrl}/api/v1/payments/${id}`, 'GET', merchant.api_key)).json.status, 'completed');
    });

    it('payments reject takes a pending payment by its transaction id', async () => {
      const created = await api(`${baseUrl}/api/v1/payments`, 'POST', merchant.api_key, deposit);
      const rejected = await cliJson(['payments', 'reject', created.json.transaction_id, '--reason', 'KYC failed'], settings);
      assert.equal(rejected.id, created.json.id);
      assert.equal(rejected.status, 'rejected');
      assert.equal((await api(`${baseUrl}/api/v1/payments/${created.json.id}`, 'GET', merchant.api_key)).json.status, 'rejected');
    });

    it('payments on an unknown payment fails with a clear message', async () => {
      const result = await cli(['payments', 'approve', '999999999'], settings);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /Payment not found: 999999999/);
    });

    it('a second serve on the same data directory refuses, naming the running gateway', async () => {
      const second = await cli(['serve'], { ...settings, PORT: String(await freePort()) });
      assert.notEqual(second.code, 0);
      assert.match(second.stderr, new RegExp(`^paycrypt: the data directory .* is in use by the gateway process ${server.pid} at ${baseUrl}$`, 'm'));
      assert.doesNotMatch(second.stderr, /^\s+at /m, 'no stack trace for an operator mistake');
      assert.equal(JSON.parse(fs.readFileSync(path.join(dataDir, 'server.json'), 'utf8')).pid, server.pid);
      assert.equal((await fetch(`${baseUrl}/health`)).status, 200);
    });

    it('the gateway\'s debug log never contains an api_key or api_secret', () => {
      assert.match(serverLog, /"url":"\/api\/v1\/payments"/, 'the requests made with the keys were logged');
      for (const secret of [merchant.api_key, merchant.api_secret, secondKey.api_key, secondKey.api_secret]) {
        assert.ok(!serverLog.includes(secret), 'a key or secret appears in the gateway\'s log');
      }
    });

    it('serve stops on SIGTERM with exit code 0 and releases server.json', async () => {
      server.kill('SIGTERM');
      const { code, signal } = await exited(server);
      assert.equal(signal, null, serverLog);
      assert.equal(code, 0, serverLog);
      assert.equal(fs.existsSync(path.join(dataDir, 'server.json')), false);
    });

    it('without a gateway, commands open the data directory directly and see the same merchants', async () => {
      const merchants = await cliJson(['merchants', 'list'], settings);
      assert.deepEqual(
        merchants.map((m: any) => [m.merchant_id, m.name]),
        [
          [merchant.merchant_id, 'Acme'],
          [merchant.merchant_id + 1, 'Globex'],
        ],
      );
    });
  });

  describe('paycrypt CLI on PostgreSQL, beside a gateway on the same database', { concurrency: 1, skip: process.env.DATABASE_URL ? false : 'DATABASE_URL is not set' }, () => {
    let t: TestGateway;
    let dataDir: string;
    let settings: Record<string, string>;
    let merchant: any;

    before(async () => {
      t = await startTestGateway();
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-cli-pg-'));
      settings = { DATABASE_URL: process.env.DATABASE_URL!, PAYCRYPT_DATA_DIR: dataDir, PAYCRYPT_MASTER_KEY: t.gateway.context.config.masterKeyHex! };
    });
    after(async () => {
      await t?.close();
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    });

    it('merchants create and list work on the database the gateway serves', async () => {
      const name = `CLI on PostgreSQL ${Date.now()}`;
      merchant = await cliJson(['merchants', 'create', '--name', name], settings);
      assert.equal(merchant.name, name);
      assert.equal((await t.request('GET', '/api/v1/payments', { key: merchant.api_key })).status, 200);
      const merchants = await cliJson(['merchants', 'list'], settings);
      assert.deepEqual(
        merchants.filter((m: any) => m.merchant_id === merchant.merchant_id).map((m: any) => m.name),
        [name],
      );
    });

    it('keys create, list and revoke work, and a revoked key gets 401 from the gateway', async () => {
      const key = await cliJson(['keys', 'create', '--merchant', String(merchant.merchant_id)], settings);
      assert.equal((await t.request('GET', '/api/v1/payments', { key: key.api_key })).status, 200);
      const keys = await cliJson(['keys', 'list', '--merchant', String(merchant.merchant_id)], settings);
      assert.deepEqual(
        keys.map((k: any) => k.prefix),
        [merchant.api_key.slice(0, 11), key.api_key.slice(0, 11)],
      );
      assert.ok(!JSON.stringify(keys).includes(key.api_key));
      const revoked = await cliJson(['keys', 'revoke', key.key_id], settings);
      assert.match(revoked.revoked_at, /Z$/);
      assert.equal((await t.request('GET', '/api/v1/payments', { key: key.api_key })).status, 401);
    });

    it('payments approve, complete and reject move payments the gateway created; cancelling a completed one fails', async () => {
      const first = await t.request('POST', '/api/v1/payments', { key: merchant.api_key, body: deposit });
      const second = await t.request('POST', '/api/v1/payments', { key: merchant.api_key, body: deposit });
      const approveCompleteCancel = async () => {
        assert.equal((await cliJson(['payments', 'approve', String(first.json.id)], settings)).status, 'approved');
        assert.equal((await cliJson(['payments', 'complete', String(first.json.id)], settings)).status, 'completed');
        const cancel = await cli(['payments', 'cancel', String(first.json.id)], settings);
        assert.notEqual(cancel.code, 0);
        assert.match(cancel.stderr, /Cannot move a payment from completed to cancelled/);
      };
      const reject = async () => {
        assert.equal((await cliJson(['payments', 'reject', String(second.json.id)], settings)).status, 'rejected');
      };
      await Promise.all([approveCompleteCancel(), reject()]);
      const listed = await t.request('GET', '/api/v1/payments', { key: merchant.api_key });
      assert.deepEqual(
        listed.json.data.map((p: any) => [p.id, p.status]),
        [
          [second.json.id, 'rejected'],
          [first.json.id, 'completed'],
        ],
      );
    });
  });

  describe('paycrypt CLI: invalid configuration and usage', { concurrency: true }, () => {
    it('serve with PORT=abc exits non-zero and names PORT', async () => {
      const result = await cli(['serve'], { PORT: 'abc', PAYCRYPT_DATA_DIR: path.join(os.tmpdir(), 'paycrypt-never-created') });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /PORT: expected a whole number/);
      assert.doesNotMatch(result.stderr, /^\s+at /m);
    });

    it('serve with NODE_ENV=production and no PAYCRYPT_MASTER_KEY refuses to start and names PAYCRYPT_MASTER_KEY', async () => {
      const result = await cli(['serve'], { NODE_ENV: 'production', PORT: String(await freePort()), PAYCRYPT_DATA_DIR: path.join(os.tmpdir(), 'paycrypt-never-created') });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /PAYCRYPT_MASTER_KEY: required when NODE_ENV=production/);
      assert.equal(result.stdout, '');
    });

    it('an unknown command prints the usage and exits non-zero', async () => {
      const result = await cli(['frobnicate'], {});
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /unknown command: frobnicate/);
      assert.match(result.stderr, /Usage: paycrypt <command>/);
    });

    it('a mistyped option names the option and prints the usage, without a stack trace', async () => {
      const result = await cli(['merchants', 'create', '--nmae', 'Acme'], { PAYCRYPT_DATA_DIR: path.join(os.tmpdir(), 'paycrypt-never-created') });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /^paycrypt: Unknown option '--nmae'/);
      assert.match(result.stderr, /Usage: paycrypt <command>/);
      assert.doesNotMatch(result.stderr, /^\s+at /m);
    });
  });
});
