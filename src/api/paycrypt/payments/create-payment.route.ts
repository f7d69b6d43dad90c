import { z } from 'zod';
import { insertPayment, preparePayment } from '../../../core/payments/create-payment.ts';
import { paymentMethods, paymentTypes } from '../../../core/payments/payment.ts';
import { stringifyJson } from '../../../internal/json.ts';
import { type ApiContext, publicUrlOf } from '../../context.ts';
import { idempotencyKeyOf, runIdempotent } from '../../idempotency.ts';
import { defineRoute } from '../../route.ts';
import { jsonDecimal, jsonInteger } from '../../validation.ts';
import { errorResponseSchema, paymentResponseSchema, renderPayment } from '../render.ts';

const optionalText = (max: number, description: string) => z.string().max(max, `must be at most ${max} characters`).optional().meta({ description });

const createPaymentBody = z
  .object({
    amount: jsonDecimal('Payment amount in fiat, at most the currency\'s decimals (2 for USD)'),
    currency: z.string().regex(/^[A-Z]{3}$/, 'expected a 3-letter upper-case currency code such as USD').meta({ description: 'Fiat currency code (USD, EUR, TRY, …)' }),
    method: z.enum(paymentMethods).meta({ description: 'Payment method' }),
    type: z.enum(paymentTypes).meta({ description: 'Payment type' }),
    crypto_currency: z
      .string()
      .regex(/^[A-Z0-9]{2,10}$/, 'expected an upper-case asset symbol such as USDT')
      .optional()
      .meta({ description: 'Crypto currency for method crypto (default USDT)' }),
    crypto_network: z
      .string()
      .regex(/^[A-Za-z0-9-]{2,40}$/, 'expected a network code such as TRC20')
      .optional()
      .meta({ description: 'Network for crypto (TRC20, ERC20, …); the asset\'s first network by default' }),
    client_reference: optionalText(255, 'Your internal reference ID'),
    expires_in: jsonInteger(60, 7 * 24 * 3600, 'On-chain payments: seconds to wait for funds (default: the chain\'s payment window)').optional(),
    description: optionalText(1000, 'Payment description'),
  })
  .strict();

export function createPaymentRoute(context: ApiContext) {
  return defineRoute({
    method: 'POST',
    url: '/payments',
    summary: 'Create a payment (deposit or withdrawal)',
    description:
      'Creates a payment in status `pending`. For method `crypto` the amount is quoted into `crypto_amount`. ' +
      'Send an `Idempotency-Key` header to make retries safe: the same key and body return the first response.',
    tag: 'Payments',
    security: 'bearer',
    headers: { 'Idempotency-Key': 'Optional. A unique key per logical request; kept at least 24 hours.' },
    body: createPaymentBody,
    responses: {
      201: { description: 'Payment created', schema: paymentResponseSchema },
      400: { description: 'Validation failed', schema: errorResponseSchema },
      401: { description: 'Invalid or missing API key', schema: errorResponseSchema },
      409: { description: 'Idempotency-Key reused with another request', schema: errorResponseSchema },
      429: { description: 'Too many requests', schema: errorResponseSchema },
    },
    async handler({ request, reply, body }) {
      const merchantId = request.auth!.merchantId;
      const key = idempotencyKeyOf(request.headers['idempotency-key']);
      const prepared = await preparePayment({ db: context.storage.db, quoter: context.quoter, chains: context.chains }, {
        merchantId,
        type: body.type,
        method: body.method,
        amount: body.amount,
        currency: body.currency,
        cryptoCurrency: body.crypto_currency,
        cryptoNetwork: body.crypto_network,
        clientReference: body.client_reference,
        description: body.description,
        expiresInMs: body.expires_in === undefined ? undefined : body.expires_in * 1000,
      });
      const response = await runIdempotent(
        context.storage.db,
        { merchantId, key, request: { method: 'POST', path: '/api/v1/payments', rawBody: request.rawBody ?? '' } },
        async (db) => {
          const payment = await insertPayment(db, prepared);
          return { status: 201, body: stringifyJson(renderPayment(payment, { publicUrl: publicUrlOf(context, request) })) };
        },
      );
      if (response.replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(response.status).type('application/json; charset=utf-8').serializer((payload: string) => payload).send(response.body);
    },
  });
}
