import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { rememberSignature } from '../../core/request-signatures.ts';
import { PayCryptError } from '../../internal/errors.ts';
import type { ApiContext } from '../context.ts';

/** How far a signed request's timestamp may be from the server's clock, as the Payment Session docs set it. */
export const signatureWindowSeconds = 300;

/**
 * HMAC-signed requests (the Payment Session API): `X-Paycrypt-Key` names the
 * API key, `X-Paycrypt-Timestamp` is unix seconds, and `X-Paycrypt-Signature`
 * is the hex HMAC-SHA256 of `"<timestamp>.<raw body>"` under the key's secret
 * (an empty body for GET).
 *
 * @dev Two steps, because the body is read between them: the key is looked up
 * when the request arrives (so the rate limit counts it against the key),
 * and the signature is checked once the raw body is in. The signature is
 * compared in constant time; for a request that changes something it is then
 * recorded, so the same request replayed within the window is refused, by
 * every process sharing the database.
 */
export async function identifySignedRequest(context: ApiContext, request: FastifyRequest): Promise<void> {
  const key = header(request, 'x-paycrypt-key');
  const missing = ['X-Paycrypt-Key', 'X-Paycrypt-Timestamp', 'X-Paycrypt-Signature'].filter((name) => header(request, name.toLowerCase()) === undefined);
  if (missing.length > 0) {
    throw new PayCryptError('authentication_failed', `Missing signature header${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`, {
      details: { missing_headers: missing },
    });
  }
  const owner = await context.authenticator.secretOf(key!);
  if (!owner) throw new PayCryptError('authentication_failed', 'Invalid API key');
  request.auth = { merchantId: owner.merchantId, keyId: owner.keyId };
  request.signing = { key: key!, secret: owner.secret };
}

export async function verifySignedRequest(context: ApiContext, request: FastifyRequest, now = Date.now()): Promise<void> {
  const signing = request.signing;
  if (!signing) throw new PayCryptError('authentication_failed', 'Request is not signed');
  const timestamp = header(request, 'x-paycrypt-timestamp')!;
  if (!/^\d{1,12}$/.test(timestamp)) {
    throw new PayCryptError('invalid_request', 'X-Paycrypt-Timestamp must be unix time in whole seconds', { details: { field: 'X-Paycrypt-Timestamp' } });
  }
  const skew = Math.abs(Math.floor(now / 1000) - Number(timestamp));
  if (skew > signatureWindowSeconds) {
    throw new PayCryptError('authentication_failed', `Request timestamp is ${skew} s away from the server's clock; the limit is ${signatureWindowSeconds} s`, {
      details: { server_time: Math.floor(now / 1000) },
    });
  }
  const signature = header(request, 'x-paycrypt-signature')!;
  const expected = createHmac('sha256', signing.secret).update(`${timestamp}.${request.rawBody ?? ''}`).digest();
  const wellFormed = /^[0-9a-fA-F]{64}$/.test(signature);
  // Note: a malformed signature is compared too (with zeros), so the answer takes the same time.
  const given = wellFormed ? Buffer.from(signature, 'hex') : Buffer.alloc(expected.length);
  if (!timingSafeEqual(expected, given) || !wellFormed) {
    throw new PayCryptError('authentication_failed', 'Invalid signature: expected the hex HMAC-SHA256 of "<timestamp>.<raw body>" with your API secret');
  }
  // Note: the signature covers neither method nor path, so an empty-bodied
  // request (a cancel) signs the same for every session within a second: a
  // replay is the same signature on the same method and URL. Reads are not
  // remembered: replaying one changes nothing, and a client may poll a URL
  // more than once a second.
  if (request.method === 'GET' || request.method === 'HEAD') return;
  const replayKey = createHash('sha256').update(`${request.method} ${request.url}\n${signature.toLowerCase()}`).digest('hex');
  const seen = await rememberSignature(context.storage.db, { signature: replayKey, expiresAt: new Date((Number(timestamp) + signatureWindowSeconds + 1) * 1000) });
  if (seen === 'replayed') throw new PayCryptError('authentication_failed', 'This signed request was already received; sign each request anew');
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined || text === '' ? undefined : text;
}
