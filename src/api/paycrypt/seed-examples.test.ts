import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startTestGateway, type TestGateway } from '../../testing/harness.ts';
import { seedExample } from '../../testing/seed-document.ts';

const run = promisify(execFile);


/** Replaces the one line `pattern` matches, failing when the example no longer has it. */
function replaceLine(source: string, pattern: RegExp, replacement: string): string {
  const matches = source.match(new RegExp(pattern.source, 'gm')) ?? [];
  assert.equal(matches.length, 1, `expected exactly one line matching ${pattern} in the example`);
  return source.replace(new RegExp(pattern.source, 'm'), replacement);
}

function available(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore', timeout: 15_000 }).status === 0;
}

describe('the PayCrypt v1 document\'s code examples run against the gateway as written', () => {
  let t: TestGateway;
  let workDir: string;
  before(async () => {
    t = await startTestGateway();
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-examples-'));
  });
  after(async () => {
    await t.close();
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  /** A merchant of its own and one pending payment of it, whose numeric id the example reads back. */
  async function merchantWithPayment(name: string) {
    const merchant = await t.createMerchant(name);
    const existing = await t.request('POST', '/api/v1/payments', {
      key: merchant.apiKey,
      body: { amount: 42, currency: 'USD', method: 'crypto', type: 'deposit', description: 'Existing payment' },
    });
    assert.equal(existing.status, 201);
    return { apiKey: merchant.apiKey, paymentId: existing.json.id as number };
  }

  async function runExample(command: string, file: string, source: string, options: string[] = []) {
    const script = path.join(workDir, file);
    fs.writeFileSync(script, source);
    const { stdout, stderr } = await run(command, [...options, script], { cwd: workDir, timeout: 30_000 });
    return { stdout, stderr };
  }

  /** What a merchant checks: the printed lines, and that the payment the example created is really there. */
  async function assertExampleOutput(output: { stdout: string; stderr: string }, apiKey: string) {
    assert.doesNotMatch(output.stdout, /Error/, output.stdout);
    assert.doesNotMatch(output.stderr, /Error|Traceback|Fatal/, output.stderr);
    const created = /Payment created: (pay_[0-9a-z]+)/.exec(output.stdout);
    assert.ok(created, `no "Payment created: pay_…" in the output:\n${output.stdout}`);
    assert.match(output.stdout, /Payment status: pending/);
    const payment = await t.request('GET', `/api/v1/payments/${created[1]}`, { key: apiKey });
    assert.equal(payment.status, 200);
    assert.equal(payment.json.status, 'pending');
    assert.equal(payment.json.amount, 100);
    assert.equal(payment.json.currency, 'USD');
    assert.equal(payment.json.crypto_currency, 'USDT');
    assert.equal(payment.json.description, 'Test payment');
  }

  it('Node.js (fetch): creates a payment and reads a payment\'s status', async () => {
    const { apiKey, paymentId } = await merchantWithPayment('Seed example: Node.js');
    let source = seedExample('### Node.js (fetch)', 'javascript');
    source = replaceLine(source, /^const API_KEY = '[^']*';$/, `const API_KEY = ${JSON.stringify(apiKey)};`);
    source = replaceLine(source, /^const BASE_URL = '[^']*';$/, `const BASE_URL = ${JSON.stringify(`${t.url}/api/v1`)};`);
    source += `\nawait createPayment();\nawait getPayment(${paymentId});\n`;
    const output = await runExample(process.execPath, 'example.mjs', source);
    assert.match(output.stdout, /^Payment created: pay_[0-9a-z]+\nPayment status: pending\n$/);
    await assertExampleOutput(output, apiKey);
  });

  it('Python (requests): creates a payment and reads a payment\'s status', async (context) => {
    if (!available('python3', ['-c', 'import requests'])) {
      context.skip('python3 with the requests package is not installed');
      return;
    }
    const { apiKey, paymentId } = await merchantWithPayment('Seed example: Python');
    let source = seedExample('### Python (requests)', 'python');
    source = replaceLine(source, /^API_KEY = '[^']*'$/, `API_KEY = ${JSON.stringify(apiKey)}`);
    source = replaceLine(source, /^BASE_URL = '[^']*'$/, `BASE_URL = ${JSON.stringify(`${t.url}/api/v1`)}`);
    source = replaceLine(source, /^payment_id = 123$/, `payment_id = ${paymentId}`);
    const output = await runExample('python3', 'example.py', source);
    assert.match(output.stdout, /^Payment created: pay_[0-9a-z]+\nPayment status: pending\n$/);
    await assertExampleOutput(output, apiKey);
  });

  it('PHP (cURL): creates a payment and reads a payment\'s status', async (context) => {
    if (!available('php', ['-r', 'exit(function_exists("curl_init") ? 0 : 1);'])) {
      context.skip('php with the curl extension is not installed');
      return;
    }
    const { apiKey, paymentId } = await merchantWithPayment('Seed example: PHP');
    let source = seedExample('### PHP (cURL)', 'php');
    source = replaceLine(source, /^\$apiKey = '[^']*';$/, `$apiKey = '${apiKey}';`);
    source = replaceLine(source, /^\$baseUrl = '[^']*';$/, `$baseUrl = '${t.url}/api/v1';`);
    source = replaceLine(source, /^\$paymentId = 123;$/, `$paymentId = ${paymentId};`);
    const output = await runExample('php', 'example.php', source, ['-d', 'display_errors=stderr']);
    assert.match(output.stdout, /^Payment created: pay_[0-9a-z]+Payment status: pending$/);
    await assertExampleOutput(output, apiKey);
  });
});
