import { z } from 'zod';
import {
  cancelPaymentSession,
  insertPaymentSession,
  preparePaymentSession,
  findPaymentSession,
  listPaymentSessions,
  type PaymentSession,
  paymentTransfers,
} from '../../../core/payments/payment-sessions.ts';
import { addPaymentEndpoint } from '../../../core/webhooks/endpoints.ts';
import { checkWebhookUrl } from '../../../core/webhooks/url-safety.ts';
import { type Decimal, formatUnits, parseDecimal } from '../../../internal/decimal.ts';
import { PayCryptError, isPayCryptError } from '../../../internal/errors.ts';
import { isJsonNumber, stringifyJson } from '../../../internal/json.ts';
import { type ApiContext, publicUrlOf } from '../../context.ts';
import { idempotencyKeyOf, runIdempotent } from '../../idempotency.ts';
import { inTransaction } from '../../../storage/database.ts';
import { defineRoute } from '../../route.ts';
import { jsonInteger, queryInteger } from '../../validation.ts';
import { errorResponseSchema } from '../render.ts';
import { evmPaymentUri, renderSession, sessionResponseSchema } from './render-session.ts';
import { type SessionWebhookContext, sessionWebhookSourceTypes } from './session-webhook.ts';

/** Limits on what a merchant may attach to a session. */
const maxMetadataBytes = 4096;
const maxMetadataKeys = 50;
const maxUrlLength = 2048;

/** A decimal amount, as the docs send it (`"49.00"`); an exact JSON number is taken too. */
const decimalAmount = z
  .union([z.string(), z.custom((value) => isJsonNumber(value), { message: 'expected a decimal string such as "49.00"' })])
  .transform((value, ctx): Decimal => {
    const text = String(value);
    const decimal = /^\d{1,30}(\.\d{1,30})?$/.test(text) ? parseDecimal(text) : undefined;
    if (!decimal) {
      ctx.addIssue({ code: 'custom', message: 'expected a positive decimal string such as "49.00"' });
      return z.NEVER;
    }
    return decimal;
  })
  .meta({ type: 'string', description: 'Amount in `currency`, a decimal string with at most the currency\'s decimals (2 for USD)', example: '49.00' });

const httpUrl = (description: string) =>
  z
    .string()
    .max(maxUrlLength, `must be at most ${maxUrlLength} characters`)
    .refine((text) => {
      try {
        const url = new URL(text);
        return (url.protocol === 'https:' || url.protocol === 'http:') && url.hostname !== '';
      } catch {
        return false;
      }
    }, 'expected an absolute http(s) URL')
    .optional()
    .meta({ description });

const createSessionBody = z
  .object({
    order_id: z
      .string()
      .min(1, 'must not be empty')
      .max(128, 'must be at most 128 characters')
      .regex(/^[\x20-\x7e]+$/, 'expected printable ASCII characters')
      .meta({ description: 'Your order id; sessions can be listed by it', example: 'ORD-123' }),
    amount: decimalAmount,
    currency: z.string().regex(/^[A-Z]{3}$/, 'expected a 3-letter upper-case currency code such as USD').meta({ description: 'Fiat currency code', example: 'USD' }),
    customer: z.object({ email: z.email('expected an e-mail address').max(254) }).strict().optional(),
    metadata: z
      .record(z.string().max(64, 'keys must be at most 64 characters'), z.unknown())
      .refine((value) => Object.keys(value).length <= maxMetadataKeys, `at most ${maxMetadataKeys} keys`)
      .refine((value) => Buffer.byteLength(stringifyJson(value)) <= maxMetadataBytes, `at most ${maxMetadataBytes} bytes of JSON`)
      .optional()
      .meta({ description: `Your own data, returned as given (at most ${maxMetadataKeys} keys, ${maxMetadataBytes} bytes)` }),
    success_url: httpUrl('Where the checkout sends the customer once paid; `session_id` is added to its query'),
    cancel_url: httpUrl('Where the checkout\'s cancel link leads'),
    webhook_url: httpUrl('Where this session\'s webhooks go, signed with your API secret'),
    expires_in: jsonInteger(60, 7 * 24 * 3600, 'Seconds the customer has to choose an asset (default: PAYCRYPT_SESSION_LIFETIME_MINUTES)').optional(),
  })
  .strict();

const sessionIdParam = z.string().regex(/^ps_[0-9a-z]{1,64}$/, 'expected a payment session id (ps_…)');

/** The Payment Session API (seed 001), HMAC-signed. */
export function paymentSessionRoutes(context: ApiContext) {
  const { db } = context.storage;
  const common = { tag: 'Payment sessions', security: 'signed' } as const;
  const denied = { 401: { description: 'Missing, invalid, stale or replayed signature, or unknown API key', schema: errorResponseSchema } };

  async function render(session: PaymentSession, publicUrl: string) {
    const transfers = session.payment.crypto ? await paymentTransfers(db, session.payment.id) : [];
    return renderSession(session, {
      publicUrl,
      paymentUri: paymentUriOf(context, session),
      transfers: transfers.map((transfer) => ({
        tx_hash: transfer.tx_hash,
        amount: formatUnits(BigInt(transfer.amount), session.payment.crypto!.decimals),
        state: transfer.state,
        confirmations: transfer.confirmations,
      })),
    });
  }

  return [
    defineRoute({
      ...common,
      method: 'POST',
      url: '/payment_sessions',
      summary: 'Create a payment session',
      description:
        'Creates a session the customer pays on the hosted checkout (`checkout_url`). The customer chooses the asset there; the quote is then locked ' +
        'and a deposit address assigned. Webhooks for the session go to `webhook_url`, signed with your API secret. ' +
        'Send an `Idempotency-Key` header to make retries safe: the same key and body return the first response.',
      headers: { 'Idempotency-Key': 'Optional. A unique key per logical request; kept at least 24 hours.' },
      body: createSessionBody,
      responses: {
        201: { description: 'Session created', schema: sessionResponseSchema },
        400: { description: 'Validation failed', schema: errorResponseSchema },
        ...denied,
        409: { description: 'Idempotency-Key reused with another request', schema: errorResponseSchema },
        429: { description: 'Too many requests', schema: errorResponseSchema },
      },
      async handler({ request, reply, body }) {
        const auth = request.auth!;
        const signing = request.signing!;
        const webhookUrl = body.webhook_url === undefined ? undefined : await checkedWebhookUrl(body.webhook_url, context);
        const input = {
          merchantId: auth.merchantId,
          apiKeyId: auth.keyId,
          orderId: body.order_id,
          amount: body.amount,
          currency: body.currency,
          customerEmail: body.customer?.email,
          metadataJson: stringifyJson(body.metadata ?? {}),
          successUrl: body.success_url,
          cancelUrl: body.cancel_url,
          webhookUrl,
          lifetimeMs: body.expires_in === undefined ? context.config.sessions.lifetimeMs : body.expires_in * 1000,
        };
        const fiat = await preparePaymentSession(context, input);
        const key = idempotencyKeyOf(request.headers['idempotency-key']);
        const publicUrl = publicUrlOf(context, request);
        const response = await runIdempotent(
          db,
          { merchantId: auth.merchantId, key, request: { method: 'POST', path: '/api/v1/payment_sessions', rawBody: request.rawBody ?? '' } },
          (db) =>
            inTransaction(db, async (trx) => {
              const session = await insertPaymentSession(trx, input, fiat);
              if (webhookUrl !== undefined) {
                const sessionContext: SessionWebhookContext = {
                  session_id: session.id,
                  order_id: session.orderId,
                  customer_email: session.customerEmail,
                  metadata: body.metadata ?? {},
                };
                await addPaymentEndpoint(trx, context.master, {
                  merchantId: auth.merchantId,
                  paymentId: session.payment.id,
                  url: webhookUrl,
                  format: 'payment_session',
                  eventTypes: sessionWebhookSourceTypes,
                  secret: signing.secret,
                  signingKey: signing.key,
                  context: stringifyJson(sessionContext),
                });
              }
              // Note: a new session has no transfers yet; rendered here so a replay answers with the very same body.
              return { status: 201, body: stringifyJson(renderSession(session, { publicUrl, paymentUri: null, transfers: [] })) };
            }),
        );
        if (response.replayed) reply.header('idempotent-replayed', 'true');
        return reply.code(response.status).type('application/json; charset=utf-8').serializer((payload: string) => payload).send(response.body);
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      url: '/payment_sessions/:session_id',
      summary: 'Get a payment session',
      params: z.object({ session_id: sessionIdParam }),
      responses: { 200: { description: 'The session', schema: sessionResponseSchema }, 404: { description: 'No such session', schema: errorResponseSchema }, ...denied },
      async handler({ request, params }) {
        const session = await findPaymentSession(db, { id: params.session_id, merchantId: request.auth!.merchantId });
        if (!session) throw new PayCryptError('resource_not_found', `Payment session not found: ${params.session_id}`);
        return render(session, publicUrlOf(context, request));
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      url: '/payment_sessions',
      summary: 'List payment sessions, newest first (cursor pagination)',
      description: 'Pass the last id of a page as `starting_after` to get the next page, while `has_more` is true. Filter by `order_id`.',
      query: z.object({
        limit: queryInteger(1, 100).optional().meta({ description: 'Sessions per page (default 20, max 100)' }),
        starting_after: sessionIdParam.optional().meta({ description: 'Cursor: the last session id of the previous page' }),
        order_id: z.string().min(1).max(128).optional().meta({ description: 'Only the sessions of this order' }),
      }),
      responses: { 200: { description: 'A page of sessions' }, 400: { description: 'Invalid parameter', schema: errorResponseSchema }, ...denied },
      async handler({ request, query }) {
        const page = await listPaymentSessions(db, {
          merchantId: request.auth!.merchantId,
          limit: query.limit ?? 20,
          orderId: query.order_id,
          startingAfter: query.starting_after,
        });
        const publicUrl = publicUrlOf(context, request);
        return {
          data: await Promise.all(page.sessions.map((session) => render(session, publicUrl))),
          has_more: page.hasMore,
          next_cursor: page.hasMore ? page.sessions.at(-1)!.id : null,
        };
      },
    }),
    defineRoute({
      ...common,
      method: 'POST',
      url: '/payment_sessions/:session_id/cancel',
      summary: 'Cancel a payment session',
      description: 'Only a session without funds received (`created` or `pending`) can be cancelled; its checkout then says so.',
      params: z.object({ session_id: sessionIdParam }),
      responses: {
        200: { description: 'The cancelled session', schema: sessionResponseSchema },
        404: { description: 'No such session', schema: errorResponseSchema },
        409: { description: 'The session can no longer be cancelled', schema: errorResponseSchema },
        ...denied,
      },
      async handler({ request, params }) {
        const session = await cancelPaymentSession(db, { id: params.session_id, merchantId: request.auth!.merchantId });
        return render(session, publicUrlOf(context, request));
      },
    }),
  ];
}

async function checkedWebhookUrl(url: string, context: ApiContext): Promise<string> {
  try {
    return (await checkWebhookUrl(url, context.webhookPolicy)).toString();
  } catch (error) {
    // Note: the check names its field `url`; here the field is `webhook_url`.
    if (isPayCryptError(error)) throw new PayCryptError(error.code, error.message.replace(/^url /, 'webhook_url '), { details: { field: 'webhook_url' } });
    throw error;
  }
}

/** The EIP-681 URI of what is left to pay, for wallets and the checkout's QR code. */
export function paymentUriOf(context: Pick<ApiContext, 'chains'>, session: PaymentSession): string | null {
  const { crypto, deposit } = session.payment;
  if (!crypto || !deposit || !crypto.network) return null;
  const asset = context.chains.resolve(crypto.network, crypto.currency);
  if (!asset || asset === 'unknown_asset') return null;
  const remaining = crypto.amount > session.payment.amountPaid ? crypto.amount - session.payment.amountPaid : 0n;
  return evmPaymentUri(asset, deposit.address, remaining);
}
