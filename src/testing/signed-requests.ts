import { createHmac } from 'node:crypto';
import type { TestGateway, TestResponse } from './harness.ts';

export type SigningCredentials = { apiKey: string; apiSecret: string };

/**
 * Sends a request signed as the Payment Session docs say: `X-Paycrypt-Key`,
 * `X-Paycrypt-Timestamp` (unix seconds) and `X-Paycrypt-Signature`, the hex
 * HMAC-SHA256 of `"<timestamp>.<raw body>"` with the secret. `options`
 * bends one rule at a time for the tests that must be refused.
 */
export async function signedRequest(
  t: Pick<TestGateway, 'request'>,
  credentials: SigningCredentials,
  method: string,
  path: string,
  body?: unknown,
  options: { timestamp?: string; secret?: string; signedBody?: string; signature?: string; headers?: Record<string, string> } = {},
): Promise<TestResponse & { sent: { timestamp: string; signature: string; rawBody: string } }> {
  const rawBody = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const timestamp = options.timestamp ?? String(Math.floor(Date.now() / 1000));
  const signature = options.signature ?? signPayload(options.secret ?? credentials.apiSecret, timestamp, options.signedBody ?? rawBody);
  const response = await t.request(method, path, {
    ...(rawBody === '' ? {} : { rawBody }),
    headers: { 'x-paycrypt-key': credentials.apiKey, 'x-paycrypt-timestamp': timestamp, 'x-paycrypt-signature': signature, ...options.headers },
  });
  return { ...response, sent: { timestamp, signature, rawBody } };
}

export function signPayload(secret: string, timestamp: string, rawBody: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex');
}

/** The seed's example session request, to a merchant's own order id. */
export function exampleSessionBody(orderId = 'ORD-123', overrides: Record<string, unknown> = {}) {
  return {
    order_id: orderId,
    amount: '49.00',
    currency: 'USD',
    customer: { email: 'buyer@example.com' },
    metadata: { source: 'merchant' },
    success_url: `https://merchant.tld/success?oid=${orderId}`,
    cancel_url: `https://merchant.tld/cancel?oid=${orderId}`,
    ...overrides,
  };
}
