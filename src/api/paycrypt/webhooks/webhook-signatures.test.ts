import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../../../testing/harness.ts';
import { seedExample } from '../../../testing/seed-document.ts';


function available(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore', timeout: 15_000 }).status === 0;
}

/** The environment of the receivers: this process's, without the test runner's own variables. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('NODE_TEST') || name === 'NODE_OPTIONS') continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** What a receiver saw and decided for one request. */
type Verdict = { headers: Record<string, string>; body: string; verified: boolean; error: string | null };

/**
 * A merchant's webhook endpoint in another language: a real HTTP server that
 * hands each request to the document's verification function, unchanged,
 * answers 200 when it returns true and 401 otherwise, and records the verdict.
 */
type VerifyingReceiver = {
  url: string;
  verdicts(): Verdict[];
  waitForVerdicts(count: number, timeoutMs?: number): Promise<Verdict[]>;
  useSecret(secret: string): void;
  close(): Promise<void>;
};

const nodeHarness = (example: string) => `'use strict';
const http = require('http');
const fs = require('fs');

${example}

// An express-like request: req.headers as Node gives them (lower-case names), req.body the parsed JSON body.
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    let verified = false;
    let error = null;
    try {
      const request = { headers: req.headers, body: JSON.parse(raw) };
      verified = verifyWebhook(request, fs.readFileSync(process.env.SECRET_FILE, 'utf8')) === true;
    } catch (e) {
      error = String((e && e.message) || e);
    }
    fs.appendFileSync(process.env.VERDICTS_FILE, JSON.stringify({ headers: req.headers, body: raw, verified, error }) + '\\n');
    res.writeHead(verified ? 200 : 401, { 'content-type': 'text/plain' });
    res.end(verified ? 'verified' : 'signature rejected');
  });
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
`;

const pythonHarness = (example: string) => `${example}


import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Request:
    def __init__(self, headers, body):
        self.headers = headers
        self.body = body


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
        verified, error = False, None
        try:
            with open(os.environ['SECRET_FILE'], encoding='utf-8') as f:
                secret = f.read()
            verified = verify_webhook(Request(self.headers, body), secret) is True
        except Exception as e:
            error = repr(e)
        verdict = {
            'headers': {name.lower(): value for name, value in self.headers.items()},
            'body': body.decode('utf-8', 'replace'),
            'verified': verified,
            'error': error,
        }
        with open(os.environ['VERDICTS_FILE'], 'a', encoding='utf-8') as f:
            f.write(json.dumps(verdict) + '\\n')
        answer = b'verified' if verified else b'signature rejected'
        self.send_response(200 if verified else 401)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format, *args):
        pass


server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
print(json.dumps({'port': server.server_address[1]}), flush=True)
server.serve_forever()
`;

const phpRouter = `<?php
require __DIR__ . '/verify.php';

// A framework-like request: header($name) case-insensitive, getContent() the raw body.
final class WebhookRequest
{
    private array $headers = [];

    public function __construct(array $headers, private string $content)
    {
        foreach ($headers as $name => $value) {
            $this->headers[strtolower($name)] = $value;
        }
    }

    public function header(string $name): ?string
    {
        return $this->headers[strtolower($name)] ?? null;
    }

    public function getContent(): string
    {
        return $this->content;
    }

    public function headers(): array
    {
        return $this->headers;
    }
}

if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    http_response_code(204);
    return true;
}

$request = new WebhookRequest(getallheaders(), file_get_contents('php://input'));
$verified = false;
$error = null;
try {
    $verified = verifyWebhook($request, file_get_contents(getenv('SECRET_FILE'))) === true;
} catch (Throwable $e) {
    $error = get_class($e) . ': ' . $e->getMessage();
}
$verdict = ['headers' => $request->headers(), 'body' => $request->getContent(), 'verified' => $verified, 'error' => $error];
file_put_contents(getenv('VERDICTS_FILE'), json_encode($verdict, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE) . "\\n", FILE_APPEND | LOCK_EX);
http_response_code($verified ? 200 : 401);
header('Content-Type: text/plain');
echo $verified ? 'verified' : 'signature rejected';
`;

async function startVerifyingReceiver(language: 'node' | 'python' | 'php', example: string, workDir: string): Promise<VerifyingReceiver> {
  const dir = fs.mkdtempSync(path.join(workDir, `${language}-`));
  const secretFile = path.join(dir, 'secret');
  const verdictsFile = path.join(dir, 'verdicts.jsonl');
  fs.writeFileSync(secretFile, '');
  fs.writeFileSync(verdictsFile, '');
  const env = childEnv({ SECRET_FILE: secretFile, VERDICTS_FILE: verdictsFile });
  let output = '';
  let child: ChildProcess;
  let port: number;

  if (language === 'php') {
    fs.writeFileSync(path.join(dir, 'verify.php'), `<?php\n${example}\n`);
    fs.writeFileSync(path.join(dir, 'router.php'), phpRouter);
    port = await freePort();
    child = spawn('php', ['-S', `127.0.0.1:${port}`, path.join(dir, 'router.php')], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (chunk) => (output += chunk));
    child.stderr!.on('data', (chunk) => (output += chunk));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) assert.fail(`php -S exited with ${child.exitCode}:\n${output}`);
      const up = await fetch(`http://127.0.0.1:${port}/`).then(
        (response) => response.status === 204,
        () => false,
      );
      if (up) break;
      if (Date.now() > deadline) assert.fail(`php -S did not answer within 15 s:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } else {
    const script = path.join(dir, language === 'node' ? 'receiver.cjs' : 'receiver.py');
    fs.writeFileSync(script, language === 'node' ? nodeHarness(example) : pythonHarness(example));
    child = spawn(language === 'node' ? process.execPath : 'python3', [script], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the ${language} receiver did not start within 15 s:\n${output}`)), 15_000);
      child.stdout!.on('data', (chunk) => {
        output += chunk;
        const line = /^\{"port": ?(\d+)\}$/m.exec(output);
        if (line) {
          clearTimeout(timer);
          resolve(Number(line[1]));
        }
      });
      child.stderr!.on('data', (chunk) => (output += chunk));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the ${language} receiver exited with ${code}:\n${output}`));
      });
    });
  }

  const verdicts = (): Verdict[] =>
    fs
      .readFileSync(verdictsFile, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Verdict);

  return {
    url: `http://127.0.0.1:${port}/paycrypt/webhook`,
    verdicts,
    async waitForVerdicts(count, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const seen = verdicts();
        if (seen.length >= count) return seen;
        if (Date.now() > deadline) assert.fail(`the ${language} receiver got ${seen.length} webhooks, expected ${count}:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    useSecret(secret) {
      fs.writeFileSync(secretFile, secret);
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Posts a captured webhook again, byte for byte unless told otherwise. */
async function replay(url: string, webhook: { body: string; timestamp: string; signature: string; event: string; eventId: string }): Promise<number> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'X-Paycrypt-Event': webhook.event,
      'X-Paycrypt-Timestamp': webhook.timestamp,
      'X-Paycrypt-Signature': webhook.signature,
      'X-Paycrypt-Event-Id': webhook.eventId,
    },
    body: webhook.body,
  });
  await response.arrayBuffer();
  return response.status;
}

/** The text with the character at `index` replaced by the next one of its kind (digit, hex digit or letter). */
function changeOneByte(text: string, index: number): string {
  const char = text[index]!;
  let replacement: string;
  if (/[0-9]/.test(char)) replacement = String((Number(char) + 1) % 10);
  else if (/[a-f]/.test(char)) replacement = char === 'f' ? 'a' : String.fromCharCode(char.charCodeAt(0) + 1);
  else if (/[a-zA-Z]/.test(char)) replacement = char === 'z' ? 'a' : char === 'Z' ? 'A' : String.fromCharCode(char.charCodeAt(0) + 1);
  else assert.fail(`cannot change the character ${JSON.stringify(char)} at ${index}`);
  assert.equal(Buffer.byteLength(replacement), Buffer.byteLength(char));
  return text.slice(0, index) + replacement + text.slice(index + 1);
}

const isoSecondsPattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** The payments each receiver is sent, and the moves that produce the documented event types. */
const scenario = [
  {
    body: { amount: 100.0, currency: 'USD', method: 'crypto', type: 'deposit', crypto_currency: 'USDT', crypto_network: 'TRC20', client_reference: 'order_123', description: 'Payment for order 123' },
    moves: ['approve', 'complete'],
    amount: 100,
    cryptoCurrency: 'USDT',
  },
  {
    body: { amount: 0.1, currency: 'USD', method: 'crypto', type: 'deposit', crypto_currency: 'USDT', description: 'Ten cents' },
    moves: ['reject'],
    amount: 0.1,
    cryptoCurrency: 'USDT',
  },
  {
    body: { amount: 12345.67, currency: 'EUR', method: 'crypto', type: 'deposit', crypto_currency: 'ETH', description: 'Zahlung für Bestellung №7 — “Kaffee” ☕' },
    moves: ['approve', 'fail'],
    amount: 12345.67,
    cryptoCurrency: 'ETH',
  },
  {
    body: { amount: 12345.67, currency: 'TRY', method: 'bank', type: 'withdraw', description: 'Payout <b>&amp;</b> "quoted" \\ slash /' },
    moves: ['cancel'],
    amount: 12345.67,
    cryptoCurrency: null,
  },
] as const;

const statusOf: Record<string, string> = { approve: 'approved', complete: 'completed', reject: 'rejected', fail: 'failed', cancel: 'cancelled' };

describe('webhooks verify with the PayCrypt v1 document\'s Python, Node.js and PHP examples, run as written', () => {
  let t: TestGateway;
  let merchant: Awaited<ReturnType<TestGateway['createMerchant']>>;
  let workDir: string;
  let secret: string | undefined;
  const receivers: VerifyingReceiver[] = [];

  before(async () => {
    t = await startTestGateway({ PAYCRYPT_RATES: '{"ETH":"3456.78"}' });
    merchant = await t.createMerchant('Signature examples');
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-signatures-'));
  });
  after(async () => {
    await Promise.all(receivers.map((receiver) => receiver.close()));
    await t?.close();
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  });

  /** Points the merchant's webhook at `receiver`; the first set-up shows the generated secret, later ones keep it. */
  async function pointWebhookAt(receiver: VerifyingReceiver) {
    const settings = await t.request('PUT', '/api/v1/webhook_settings', { key: merchant.apiKey, body: { url: receiver.url, enabled: true } });
    assert.equal(settings.status, 200, settings.text);
    assert.equal(settings.json.url, receiver.url);
    assert.equal(settings.json.enabled, true);
    if (secret === undefined) {
      assert.match(settings.json.secret, /^whsec_[0-9A-Za-z]{20,}$/, 'the first set-up shows the generated secret in full');
      secret = settings.json.secret as string;
    } else {
      assert.equal(settings.json.secret.endsWith(secret.slice(-4)), true);
      assert.notEqual(settings.json.secret, secret, 'changing only the URL keeps the secret, shown masked');
    }
    receiver.useSecret(secret);
  }

  /** Creates the scenario's payments and moves them; returns each payment with the ids of its events, oldest first. */
  async function runScenario() {
    const payments = [];
    for (const step of scenario) {
      const created = await t.request('POST', '/api/v1/payments', { key: merchant.apiKey, body: step.body });
      assert.equal(created.status, 201, created.text);
      for (const move of step.moves) {
        const moved = await t.request('POST', `/admin/v1/payments/${created.json.id}/${move}`, { key: t.adminToken });
        assert.equal(moved.status, 200, moved.text);
        assert.equal(moved.json.status, statusOf[move]);
      }
      const events = await t.request('GET', `/api/v1/events?payment_id=${created.json.id}`, { key: merchant.apiKey });
      assert.equal(events.status, 200, events.text);
      assert.deepEqual(
        events.json.data.map((event: any) => event.type).reverse(),
        ['payment.created', ...step.moves.map((move) => `payment.${statusOf[move]}`)],
      );
      payments.push({ step, payment: created.json, eventIds: events.json.data.map((event: any) => event.id as string).reverse() as string[] });
    }
    return payments;
  }

  /** The documented headers and payload fields of one received webhook, checked against the payment it is about. */
  function assertDocumentedWebhook(verdict: Verdict, expected: { payment: any; step: (typeof scenario)[number]; eventId: string; eventType: string }) {
    const { headers } = verdict;
    assert.equal(headers['content-type'], 'application/json');
    assert.equal(headers['x-paycrypt-event'], expected.eventType);
    assert.match(headers['x-paycrypt-timestamp'] ?? '', isoSecondsPattern);
    assert.match(headers['x-paycrypt-signature'] ?? '', /^[0-9a-f]{64}$/);
    assert.equal(headers['x-paycrypt-event-id'], expected.eventId);

    const body = JSON.parse(verdict.body);
    assert.equal(body.event_type, expected.eventType);
    assert.match(body.timestamp, isoSecondsPattern);
    const { payment, step } = expected;
    const status = expected.eventType === 'payment.created' ? 'pending' : expected.eventType.slice('payment.'.length);
    assert.deepEqual(
      {
        id: body.payment.id,
        client_id: body.payment.client_id,
        amount: body.payment.amount,
        currency: body.payment.currency,
        fiat_amount: body.payment.fiat_amount,
        fiat_currency: body.payment.fiat_currency,
        crypto_currency: body.payment.crypto_currency,
        status: body.payment.status,
        payment_method: body.payment.payment_method,
        transaction_id: body.payment.transaction_id,
        description: body.payment.description,
        created_at: body.payment.created_at,
      },
      {
        id: payment.id,
        client_id: merchant.merchantId,
        amount: step.amount,
        currency: step.body.currency,
        fiat_amount: step.amount,
        fiat_currency: step.body.currency,
        crypto_currency: step.cryptoCurrency,
        status,
        payment_method: step.body.method,
        transaction_id: payment.transaction_id,
        description: step.body.description,
        created_at: payment.created_at,
      },
    );
    assert.equal(body.payment.amount_exact, step.body.amount.toFixed(2));
    assert.equal(body.payment.crypto_amount, payment.crypto_amount);
    if (step.cryptoCurrency) assert.equal(typeof body.payment.crypto_amount, 'number');
    assert.match(body.payment.updated_at, isoSecondsPattern);
  }

  for (const example of [
    { language: 'python', heading: '**Python Example:**', fence: 'python', tool: ['python3', ['--version']] },
    { language: 'node', heading: '**Node.js Example:**', fence: 'javascript', tool: [process.execPath, ['--version']] },
    { language: 'php', heading: '**PHP Example:**', fence: 'php', tool: ['php', ['--version']] },
  ] as const) {
    describe(`the ${example.heading.replace(/\*|:/g, '')}`, () => {
      let receiver: VerifyingReceiver | undefined;
      let captured: Verdict | undefined;
      const missing = available(example.tool[0], [...example.tool[1]]) ? undefined : `${example.tool[0]} not installed`;

      before(async () => {
        if (missing) return;
        const code = seedExample(example.heading, example.fence);
        receiver = await startVerifyingReceiver(example.language, code, workDir);
        receivers.push(receiver);
      });

      it('accepts every webhook of created, approved, completed, rejected, failed and cancelled payments, with the documented headers and fields', async (ctx) => {
        if (missing) return ctx.skip(missing);
        await pointWebhookAt(receiver!);
        const payments = await runScenario();
        const expected = payments.flatMap(({ step, payment, eventIds }) =>
          eventIds.map((eventId, index) => ({ step, payment, eventId, eventType: index === 0 ? 'payment.created' : `payment.${statusOf[step.moves[index - 1]!]}` })),
        );
        const verdicts = await receiver!.waitForVerdicts(expected.length);
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(receiver!.verdicts().length, expected.length, 'each event arrives once');

        for (const verdict of verdicts) {
          assert.deepEqual({ verified: verdict.verified, error: verdict.error }, { verified: true, error: null }, `rejected: ${verdict.body}`);
        }
        assert.deepEqual(
          verdicts.map((verdict) => verdict.headers['x-paycrypt-event-id']).sort(),
          expected.map((event) => event.eventId).sort(),
          'every event of the payments arrived',
        );
        for (const verdict of verdicts) {
          const event = expected.find((candidate) => candidate.eventId === verdict.headers['x-paycrypt-event-id'])!;
          assertDocumentedWebhook(verdict, event);
        }

        const deliveries = await t.request('GET', '/api/v1/webhook_deliveries?limit=100', { key: merchant.apiKey });
        for (const eventId of expected.map((event) => event.eventId)) {
          const delivery = deliveries.json.data.find((candidate: any) => candidate.event_id === eventId);
          assert.equal(delivery?.state, 'succeeded', `delivery of ${eventId}`);
          assert.equal(delivery.last_status_code, 200);
          assert.equal(delivery.attempt_log.at(-1).response_excerpt, 'verified');
        }

        captured = verdicts.find((verdict) => verdict.headers['x-paycrypt-event'] === 'payment.completed');
        assert.ok(captured);
        assert.match(captured.body, /"amount":100,/);
      });

      it('rejects a replayed webhook with one byte of its body, timestamp or signature changed', async (ctx) => {
        if (missing) return ctx.skip(missing);
        assert.ok(captured, 'a webhook was captured');
        const original = {
          body: captured.body,
          timestamp: captured.headers['x-paycrypt-timestamp']!,
          signature: captured.headers['x-paycrypt-signature']!,
          event: captured.headers['x-paycrypt-event']!,
          eventId: captured.headers['x-paycrypt-event-id']!,
        };
        const tampered = {
          'one digit of the amount': { ...original, body: changeOneByte(original.body, original.body.indexOf('"amount":') + '"amount":'.length) },
          'one letter of the status': { ...original, body: changeOneByte(original.body, original.body.indexOf('"status":"') + '"status":"'.length) },
          'the last digit of the timestamp': { ...original, timestamp: changeOneByte(original.timestamp, original.timestamp.length - 2) },
          'the first character of the signature': { ...original, signature: changeOneByte(original.signature, 0) },
          'the last character of the signature': { ...original, signature: changeOneByte(original.signature, original.signature.length - 1) },
        };
        assert.match(tampered['one digit of the amount'].body, /"amount":200,/);

        assert.equal(await replay(receiver!.url, original), 200, 'the captured webhook, unchanged, still verifies');
        for (const [change, webhook] of Object.entries(tampered)) {
          const before = receiver!.verdicts().length;
          assert.equal(await replay(receiver!.url, webhook), 401, `accepted with ${change} changed`);
          const verdict = receiver!.verdicts()[before];
          assert.deepEqual({ verified: verdict?.verified, error: verdict?.error }, { verified: false, error: null }, `${change}: the example itself returned false`);
        }
      });
    });
  }
});
