import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startTestGateway, type TestGateway, type TestResponse } from '../../../testing/harness.ts';
import { sessionSeedSection } from '../../../testing/seed-document.ts';
import { exampleSessionBody, signedRequest, signPayload } from '../../../testing/signed-requests.ts';

const run = promisify(execFile);

/**
 * The signing rules of the Payment Session API, against a real gateway: what
 * a signed request must carry, and every way a request that breaks a rule is
 * refused in the PayCrypt envelope without creating anything.
 */
type Merchant = Awaited<ReturnType<TestGateway['createMerchant']>>;

function assertRefused(response: TestResponse, status: number, code: string, message?: RegExp) {
  assert.equal(response.status, status, response.text);
  assert.deepEqual(Object.keys(response.json ?? {}), ['error'], response.text);
  assert.equal(response.json.error.code, code);
  if (message) assert.match(response.json.error.message, message);
}

describe('Payment Session API: signed requests', () => {
  let t: TestGateway;
  let merchant: Merchant;
  let other: Merchant;
  let workDir: string;
  before(async () => {
    t = await startTestGateway();
    merchant = await t.createMerchant('Signed requests');
    other = await t.createMerchant('Another merchant');
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-signing-'));
  });
  after(async () => {
    await t.close();
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  /** How many sessions a merchant has, read from the database. */
  async function sessionCount(merchantId = merchant.merchantId): Promise<number> {
    const row = await t.gateway.context.storage.db
      .selectFrom('payment_sessions')
      .select((eb) => eb.fn.countAll<number>().as('rows'))
      .where('merchant_id', '=', merchantId)
      .executeTakeFirstOrThrow();
    return Number(row.rows);
  }

  it('a correctly signed request creates a session: 201 with id ps_…, status created, checkout_url and expires_at in unix seconds', async () => {
    const before = Math.floor(Date.now() / 1000);
    const response = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', exampleSessionBody('ORD-SIGNED'));
    assert.equal(response.status, 201, response.text);
    assert.match(response.json.id, /^ps_[0-9a-z]{20}$/);
    assert.equal(response.json.status, 'created');
    assert.equal(response.json.checkout_url, `${t.url}/checkout/${response.json.id}`);
    assert.ok(Number.isInteger(response.json.expires_at));
    // The default lifetime is 60 minutes.
    assert.ok(response.json.expires_at >= before + 3600 && response.json.expires_at <= before + 3602, String(response.json.expires_at));
  });

  it('a GET is signed over "<ts>." (an empty body)', async () => {
    const created = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', exampleSessionBody('ORD-GET'));
    const read = await signedRequest(t, merchant, 'GET', `/api/v1/payment_sessions/${created.json.id}`);
    assert.equal(read.status, 200, read.text);
    assert.equal(read.sent.rawBody, '');
    assert.equal(read.json.order_id, 'ORD-GET');
  });

  it('a retry re-signed with the same Idempotency-Key returns the first session; the key with another body is a 409', async () => {
    const body = exampleSessionBody('ORD-IDEMPOTENT');
    const headers = { 'idempotency-key': `retry-${Date.now()}` };
    const first = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', body, { headers });
    assert.equal(first.status, 201, first.text);
    const before = await sessionCount();
    // A retry a second later is a new signed request (not a replay) carrying the same key.
    const retry = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', body, { headers, timestamp: String(Number(first.sent.timestamp) + 1) });
    assert.equal(retry.status, 201, retry.text);
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');
    assert.equal(retry.text, first.text);
    const other = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', { ...body, amount: '50.00' }, { headers });
    assertRefused(other, 409, 'idempotency_conflict');
    assert.equal(await sessionCount(), before);
  });

  describe('refused, and nothing is created', () => {
    const body = exampleSessionBody('ORD-REFUSED');

    for (const header of ['X-Paycrypt-Key', 'X-Paycrypt-Timestamp', 'X-Paycrypt-Signature']) {
      it(`without ${header}: 401 naming the header`, async () => {
        const before = await sessionCount();
        const response = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', body, { headers: { [header.toLowerCase()]: '' } });
        assertRefused(response, 401, 'authentication_failed', new RegExp(header));
        assert.deepEqual(response.json.error.details.missing_headers, [header]);
        assert.equal(await sessionCount(), before);
      });
    }

    it('with a Bearer key instead of a signature: 401', async () => {
      const response = await t.request('POST', '/api/v1/payment_sessions', { key: merchant.apiKey, body });
      assertRefused(response, 401, 'authentication_failed', /Missing signature headers/);
    });

    for (const [label, timestamp] of [
      ['a timestamp that is not a number', 'yesterday'],
      ['a timestamp in milliseconds with a fraction', '1723650000.5'],
      ['a negative timestamp', '-1723650000'],
    ] as const) {
      it(`with ${label}: 400 invalid_request`, async () => {
        const before = await sessionCount();
        const response = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', body, { timestamp });
        assertRefused(response, 400, 'invalid_request', /X-Paycrypt-Timestamp/);
        assert.equal(await sessionCount(), before);
      });
    }

    for (const skew of [301, -301, 3600]) {
      it(`with a timestamp ${skew} s from the server's clock: 401 (the window is 300 s)`, async () => {
        const before = await sessionCount();
        const timestamp = String(Math.floor(Date.now() / 1000) - skew);
        const response = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', body, { timestamp });
        assertRefused(response, 401, 'authentication_failed', /300 s/);
        assert.equal(await sessionCount(), before);
      });
    }

    it('accepts a timestamp 290 s behind or ahead (inside the window)', async () => {
      for (const skew of [290, -290]) {
        const timestamp = String(Math.floor(Date.now() / 1000) - skew);
        const response = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', exampleSessionBody(`ORD-SKEW-${skew}`), { timestamp });
        assert.equal(response.status, 201, response.text);
      }
    });

    it('with a signature made for another body: 401', async () => {
      const before = await sessionCount();
      const response = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', body, {
        signedBody: JSON.stringify({ ...body, amount: '0.01' }),
      });
      assertRefused(response, 401, 'authentication_failed', /Invalid signature/);
      assert.equal(await sessionCount(), before);
    });

    it('with a signature made with another key\'s secret: 401', async () => {
      const before = await sessionCount();
      const response = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', body, { secret: other.apiSecret });
      assertRefused(response, 401, 'authentication_failed', /Invalid signature/);
      assert.equal(await sessionCount(), before);
    });

    for (const [label, signature] of [
      ['an upper-case copy of a wrong signature', 'A'.repeat(64)],
      ['a signature that is not hex', 'z'.repeat(64)],
      ['a truncated signature', 'ab'.repeat(16)],
      ['a base64 signature', createHmac('sha256', 'x').update('y').digest('base64')],
    ] as const) {
      it(`with ${label}: 401`, async () => {
        const response = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', body, { signature });
        assertRefused(response, 401, 'authentication_failed', /Invalid signature/);
      });
    }

    it('with an unknown key: 401, whatever the signature', async () => {
      const response = await signedRequest(t, { apiKey: `pk_${'0'.repeat(32)}`, apiSecret: merchant.apiSecret }, 'POST', '/api/v1/payment_sessions', body);
      assertRefused(response, 401, 'authentication_failed', /Invalid API key/);
    });

    it('with a revoked key: 401, and a new key of the merchant works', async () => {
      const created = await t.request('POST', `/admin/v1/merchants/${merchant.merchantId}/keys`, { key: t.adminToken, body: {} });
      assert.equal(created.status, 201, created.text);
      const spare = { apiKey: created.json.api_key as string, apiSecret: created.json.api_secret as string };
      assert.equal((await signedRequest(t, spare, 'POST', '/api/v1/payment_sessions', exampleSessionBody('ORD-SPARE'))).status, 201);
      const revoked = await t.request('POST', `/admin/v1/keys/${created.json.key_id}/revoke`, { key: t.adminToken });
      assert.equal(revoked.status, 200, revoked.text);
      const before = await sessionCount();
      assertRefused(await signedRequest(t, spare, 'POST', '/api/v1/payment_sessions', body), 401, 'authentication_failed', /Invalid API key/);
      assert.equal(await sessionCount(), before);
    });

    it('a captured request replayed within the window: the first creates, the copy gets 401', async () => {
      const before = await sessionCount();
      const first = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', exampleSessionBody('ORD-REPLAY'));
      assert.equal(first.status, 201, first.text);
      const copy = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', first.sent.rawBody, {
        timestamp: first.sent.timestamp,
        signature: first.sent.signature,
      });
      assertRefused(copy, 401, 'authentication_failed', /already received/);
      assert.equal(await sessionCount(), before + 1);
    });

    it('cancels of two sessions signed in the same second are both taken; a replayed cancel is refused', async () => {
      const a = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', exampleSessionBody('ORD-CANCEL-A'));
      const b = await signedRequest(t, merchant, 'POST', '/api/v1/payment_sessions', exampleSessionBody('ORD-CANCEL-B'));
      const timestamp = String(Math.floor(Date.now() / 1000));
      // An empty body signs the same for both: the replay check tells them apart by method and URL.
      const cancelA = await signedRequest(t, merchant, 'POST', `/api/v1/payment_sessions/${a.json.id}/cancel`, undefined, { timestamp });
      const cancelB = await signedRequest(t, merchant, 'POST', `/api/v1/payment_sessions/${b.json.id}/cancel`, undefined, { timestamp });
      assert.equal(cancelA.sent.signature, cancelB.sent.signature);
      assert.equal(cancelA.status, 200, cancelA.text);
      assert.equal(cancelB.status, 200, cancelB.text);
      const again = await signedRequest(t, merchant, 'POST', `/api/v1/payment_sessions/${a.json.id}/cancel`, undefined, { timestamp });
      assertRefused(again, 401, 'authentication_failed', /already received/);
    });

    it('an unknown session id, and another merchant\'s session: 404', async () => {
      const theirs = await signedRequest(t, other, 'POST', '/api/v1/payment_sessions', exampleSessionBody('ORD-THEIRS'));
      assert.equal(theirs.status, 201);
      assertRefused(await signedRequest(t, merchant, 'GET', '/api/v1/payment_sessions/ps_doesnotexist0000000'), 404, 'resource_not_found');
      assertRefused(await signedRequest(t, merchant, 'GET', `/api/v1/payment_sessions/${theirs.json.id}`), 404, 'resource_not_found');
      assertRefused(await signedRequest(t, merchant, 'POST', `/api/v1/payment_sessions/${theirs.json.id}/cancel`), 404, 'resource_not_found');
      const still = await signedRequest(t, other, 'GET', `/api/v1/payment_sessions/${theirs.json.id}`);
      assert.equal(still.json.status, 'created');
    });
  });

  describe('the document\'s examples', () => {
    it('the Node.js example runs as written (base URL and credentials aside) and creates the session', async () => {
      const example = sessionSeedSection('### Node.js example');
      assert.match(example, /createHmac\('sha256', process\.env\.PAYCRYPT_SECRET\)\.update\(`\$\{ts\}\.\$\{body\}`\)/);
      const script = path.join(workDir, 'create-session.cjs');
      fs.writeFileSync(script, `${example.replace("'https://your-host/api/v1/payment_sessions'", `'${t.url}/api/v1/payment_sessions'`)}\ncreateSession();\n`);
      const before = await sessionCount();
      const { stdout } = await run(process.execPath, [script], { env: { ...process.env, PAYCRYPT_KEY: merchant.apiKey, PAYCRYPT_SECRET: merchant.apiSecret } });
      assert.match(stdout, /id: 'ps_[0-9a-z]{20}'/);
      assert.match(stdout, /status: 'created'/);
      assert.match(stdout, /checkout_url: 'http:\/\/127\.0\.0\.1:\d+\/checkout\/ps_/);
      assert.equal(await sessionCount(), before + 1);
    });

    // Note: PowerShell is not available offline on this platform (no Debian
    // package), so its example is followed step by step here instead: the
    // same body string, `[int]` unix seconds, UTF-8 bytes of "$ts." + $body,
    // HMACSHA256 with the secret, hex digits two per byte ("x2").
    it('the PowerShell example\'s body and signing steps are accepted', async () => {
      const example = sessionSeedSection('### curl example (Windows PowerShell)');
      const body = /^\$body = '(.*)'$/m.exec(example)?.[1];
      assert.ok(body, 'the example sets $body');
      assert.match(example, /GetBytes\("\$ts\." \+ \$body\)/);
      // Note: a merchant of its own, as its body is byte for byte the Node.js example's, which may have been sent in this very second.
      const shop = await t.createMerchant('PowerShell shop');
      const ts = String(Math.floor(Date.now() / 1000));
      const bytes = Buffer.from(`${ts}.${body}`, 'utf8');
      const sig = [...createHmac('sha256', Buffer.from(shop.apiSecret, 'utf8')).update(bytes).digest()].map((byte) => byte.toString(16).padStart(2, '0')).join('');
      assert.equal(sig, signPayload(shop.apiSecret, ts, body));
      const response = await t.request('POST', '/api/v1/payment_sessions', {
        rawBody: body,
        headers: { 'content-type': 'application/json', 'x-paycrypt-key': shop.apiKey, 'x-paycrypt-timestamp': ts, 'x-paycrypt-signature': sig },
      });
      assert.equal(response.status, 201, response.text);
      assert.equal(response.json.order_id, 'ORD-123');
      assert.equal(response.json.webhook_url, 'https://merchant.tld/api/paycrypt/webhook');
    });
  });
});
