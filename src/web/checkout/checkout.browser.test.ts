/// <reference lib="dom" />
// Note: the functions passed to page.evaluate run in the browser.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { chromium, type Browser, type Page } from 'playwright-core';
import decodeQR from 'qr/decode.js';
import { type Address, createWalletClient, erc20Abi, http, parseUnits } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { type DevEnvironment, startDevEnvironment } from '../../dev/dev-environment.ts';
import { repoRoot } from '../../testing/cli.ts';
import { type DjangoReceiver, startDjangoReceiver } from '../../testing/django-receiver.ts';
import { sessionSeedSection } from '../../testing/seed-document.ts';
import { exampleSessionBody, signedRequest } from '../../testing/signed-requests.ts';
import { expireDuePayments } from '../../workers/payment-expiry.ts';

const run = promisify(execFile);

/**
 * The hosted checkout in a real browser (Debian's Chromium driven by
 * playwright-core) against `paycrypt dev`: the Payment Session document's
 * Node.js example creates the session, the customer chooses USDT by
 * keyboard, pays with the dev wallet and watches the status reach paid
 * without a reload, lands on the success URL, and the webhook is verified by
 * the document's Django code. Screenshots of each state are written to
 * `test-results/checkout/`.
 */
const chromiumPath = process.env.PAYCRYPT_CHROMIUM ?? '/usr/bin/chromium';
const screenshots = path.join(repoRoot, 'test-results', 'checkout');
/** A phone-sized screen. */
const viewport = { width: 390, height: 844 };

let dev: DevEnvironment;
let django: DjangoReceiver;
let browser: Browser;
let workDir: string;

before(async () => {
  assert.ok(fs.existsSync(chromiumPath), `Chromium is not installed at ${chromiumPath} (Debian package chromium; .ci/run installs it)`);
  fs.mkdirSync(screenshots, { recursive: true });
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-checkout-'));
  dev = await startDevEnvironment({ port: 0, env: { ...process.env, PAYCRYPT_LOG_LEVEL: 'warn', PAYCRYPT_WEBHOOK_TIME_SCALE: '0.001' } });
  django = await startDjangoReceiver({ apiKey: dev.info.api_key, apiSecret: dev.info.api_secret });
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await django?.close();
  await dev?.stop();
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

/** A page on a phone-sized screen; the merchant's own site (merchant.tld) is answered by a stand-in page, as this machine reaches no other host. */
async function openPage(): Promise<Page> {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  await page.route('https://merchant.tld/**', (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>Merchant</title><h1>Thanks for your order</h1>' }));
  return page;
}

const statusOf = (page: Page) => page.locator('#checkout').getAttribute('data-status');

async function createSession(orderId: string) {
  const response = await signedRequest(
    { request: (method, urlPath, options = {}) => requestDev(method, urlPath, options) },
    { apiKey: dev.info.api_key, apiSecret: dev.info.api_secret },
    'POST',
    '/api/v1/payment_sessions',
    exampleSessionBody(orderId, { webhook_url: django.url }),
  );
  assert.equal(response.status, 201, response.text);
  return response.json as { id: string; checkout_url: string };
}

async function requestDev(method: string, urlPath: string, options: { rawBody?: string; headers?: Record<string, string> }) {
  const response = await fetch(`${dev.info.api_url}${urlPath}`, {
    method,
    headers: { ...(options.rawBody ? { 'content-type': 'application/json' } : {}), ...options.headers },
    body: options.rawBody ?? null,
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: text ? JSON.parse(text) : undefined };
}

/** Tabs through the page until `selector` has the focus, as a keyboard user would. */
async function tabTo(page: Page, selector: string) {
  for (let presses = 0; presses < 20; presses += 1) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((target) => document.activeElement === document.querySelector(target), selector)) return;
  }
  assert.fail(`${selector} cannot be reached with the Tab key`);
}

describe('the hosted checkout in a browser', () => {
  it('the document\'s Node.js example, then choose USDT by keyboard, pay with the dev wallet, paid without a reload, back on the success URL, webhook verified', async () => {
    const example = sessionSeedSection('### Node.js example')
      .replace("'https://your-host/api/v1/payment_sessions'", `'${dev.info.api_url}/api/v1/payment_sessions'`)
      .replace("'https://merchant.tld/api/paycrypt/webhook'", `'${django.url}'`);
    const script = path.join(workDir, 'create-session.cjs');
    fs.writeFileSync(script, `${example}\ncreateSession();\n`);
    const { stdout } = await run(process.execPath, [script], { env: { ...process.env, PAYCRYPT_KEY: dev.info.api_key, PAYCRYPT_SECRET: dev.info.api_secret } });
    const checkoutUrl = /checkout_url: '([^']+)'/.exec(stdout)?.[1];
    assert.ok(checkoutUrl, stdout);
    const sessionId = checkoutUrl.split('/').at(-1)!;

    const page = await openPage();
    const loaded: Array<{ url: string; bytes: number; gzipped: number }> = [];
    page.on('response', async (response) => {
      if (!response.url().startsWith(dev.info.api_url) || response.url().includes('/events')) return;
      const body = await response.body().catch(() => Buffer.alloc(0));
      loaded.push({ url: response.url(), bytes: body.length, gzipped: gzipSync(body).length });
    });
    // Nothing is requested from anywhere but the gateway (the merchant's own site comes only after the redirect).
    const foreign: string[] = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(dev.info.api_url) && !request.url().startsWith('https://merchant.tld/')) foreign.push(request.url());
    });
    const blocked: string[] = [];
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) blocked.push(message.text());
    });
    await page.goto(checkoutUrl);
    assert.equal(await statusOf(page), 'created');
    await assert.doesNotReject(page.getByRole('heading', { name: '49.00 USD' }).waitFor());
    assert.match(await page.locator('#status').innerText(), /Choose the currency/);
    await page.screenshot({ path: path.join(screenshots, '1-choose.png'), fullPage: true });

    await tabTo(page, 'button[value="ERC20:USDT"]');
    await Promise.all([page.waitForURL(checkoutUrl), page.keyboard.press('Enter')]);
    await page.locator('#address').waitFor();
    assert.equal(await statusOf(page), 'pending');
    const session = (await signedRequest({ request: requestDev }, { apiKey: dev.info.api_key, apiSecret: dev.info.api_secret }, 'GET', `/api/v1/payment_sessions/${sessionId}`)).json;
    assert.equal(await page.locator('#address').innerText(), session.payment.address);
    assert.equal(await page.locator('#amount').innerText(), '48.755');
    assert.equal(await page.locator('#rate').innerText(), '1 USDT = 1.00 USD (fee 0.5 %)');
    assert.match(await page.locator('#countdown').innerText(), /Time left to pay: 1[45]:\d\d/);

    // The QR code, read back from the page's own pixels, carries the EIP-681 payment URI.
    const pixels = await page.evaluate(async () => {
      const image = document.getElementById('qr') as HTMLImageElement;
      await image.decode();
      const canvas = document.createElement('canvas');
      canvas.width = canvas.height = 400;
      const context = canvas.getContext('2d')!;
      context.fillStyle = '#fff';
      context.fillRect(0, 0, 400, 400);
      context.drawImage(image, 0, 0, 400, 400);
      return Array.from(context.getImageData(0, 0, 400, 400).data);
    });
    const usdt = dev.info.chains[0]!.tokens.USDT!.toLowerCase();
    assert.equal(
      decodeQR({ width: 400, height: 400, data: Uint8Array.from(pixels) }),
      `ethereum:${usdt}@${dev.info.chains[0]!.chain_id}/transfer?address=${session.payment.address}&uint256=48755000`,
    );
    // The copy button puts the address on the clipboard.
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: dev.info.api_url });
    await page.getByRole('button', { name: 'Copy the address' }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), session.payment.address);
    // Nothing overflows a phone's width.
    assert.ok(await page.evaluate((width) => document.documentElement.scrollWidth <= width, viewport.width), 'the page fits a 390 px wide screen');
    await page.screenshot({ path: path.join(screenshots, '2-pay.png'), fullPage: true });

    // From here on the page must not reload: a mark left in it must survive until the redirect.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      const main = document.getElementById('checkout')!;
      new MutationObserver(() => seen.push(main.dataset.status!)).observe(main, { attributes: true, attributeFilter: ['data-status'] });
    });
    const redirected = page.waitForURL(/^https:\/\/merchant\.tld\/success\?oid=ORD-123&session_id=ps_/, { timeout: 60_000 });
    await page.getByRole('button', { name: 'Pay with the dev wallet' }).click();
    await page.waitForFunction(() => document.getElementById('checkout')?.dataset.status === 'succeeded', undefined, { timeout: 60_000 });
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    assert.equal(seen.at(-1), 'succeeded', 'the status changed in place');
    assert.match(await page.locator('#status').innerText(), /Paid\. Thank you!/);
    assert.equal(await page.locator('.steps li.done').count(), 4);
    await page.screenshot({ path: path.join(screenshots, '3-paid.png'), fullPage: true });
    await redirected;
    assert.equal(new URL(page.url()).searchParams.get('session_id'), sessionId);
    assert.deepEqual(blocked, [], 'the Content-Security-Policy blocked nothing the page needs');
    assert.deepEqual(foreign, [], 'the checkout loads nothing from elsewhere');

    const initial = loaded.filter((entry) => !entry.url.includes('/asset'));
    const total = initial.reduce((sum, entry) => sum + entry.gzipped, 0);
    assert.ok(total < 100 * 1024, `the checkout loads ${total} bytes gzipped`);
    console.log(`# checkout page weight: ${loaded.length} responses, ${loaded.reduce((s, e) => s + e.bytes, 0)} bytes, ${total} bytes gzipped`);

    await django.waitFor((answers) => answers.some((answer) => answer.type === 'payment.succeeded'), 30_000);
    assert.deepEqual(
      django.answers.filter((answer) => answer.type === 'payment.succeeded').map((answer) => answer.status),
      [200],
      'the document\'s Django view accepted the webhook',
    );
    await page.context().close();
  });

  it('underpaid: paid short from the payer account, the page asks for the rest at the same address, live', async () => {
    const session = await createSession('ORD-SHORT');
    const page = await openPage();
    await page.goto(session.checkout_url);
    await Promise.all([page.waitForURL(session.checkout_url), page.getByRole('button', { name: /USDT on ERC20/ }).click()]);
    const address = await page.locator('#address').innerText();
    const payer = createWalletClient({ account: privateKeyToAccount(dev.info.payer.private_key as `0x${string}`), transport: http(dev.info.chains[0]!.rpc_url) });
    await payer.writeContract({
      chain: null,
      address: dev.info.chains[0]!.tokens.USDT as Address,
      abi: erc20Abi,
      functionName: 'transfer',
      args: [address as Address, parseUnits('20', 6)],
    });
    await page.waitForFunction(() => document.getElementById('checkout')?.dataset.status === 'underpaid', undefined, { timeout: 60_000 });
    assert.match(await page.locator('#status').innerText(), /We received 20 USDT, less than the 48\.755 USDT due\. Send the remaining 28\.755 USDT to the same address/);
    assert.equal(await page.locator('#amount').innerText(), '28.755');
    assert.equal(await page.locator('#address').innerText(), address);
    assert.match(await page.locator('#received').innerText(), /Received so far: 20 USDT/);
    await page.screenshot({ path: path.join(screenshots, '4-underpaid.png'), fullPage: true });
    await page.context().close();
  });

  it('expired: the page says the time ran out and not to send funds', async () => {
    const session = await createSession('ORD-EXPIRE');
    const page = await openPage();
    await page.goto(session.checkout_url);
    await Promise.all([page.waitForURL(session.checkout_url), page.getByRole('button', { name: /USDT on ERC20/ }).click()]);
    await page.locator('#address').waitFor();
    // Note: the expiry worker runs here with a clock past the quote lock (15 minutes) instead of waiting for it.
    await expireDuePayments(dev.gateway.context.storage.db, new Date(Date.now() + 16 * 60_000));
    await page.waitForFunction(() => document.getElementById('checkout')?.dataset.status === 'expired', undefined, { timeout: 30_000 });
    assert.match(await page.locator('#status').innerText(), /This payment has expired: the time to pay ran out\. Do not send funds to this address/);
    assert.equal(await page.locator('#dev-pay').isVisible(), false);
    await page.screenshot({ path: path.join(screenshots, '5-expired.png'), fullPage: true });
    await page.context().close();
  });
});
