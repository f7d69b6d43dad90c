import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { PayCryptError } from '../../internal/errors.ts';
import { safeEqual } from '../../internal/secrets.ts';
import type { ApiContext } from '../context.ts';
import { sendPayCryptError } from '../paycrypt/errors.ts';
import { paymentIdParam } from '../paycrypt/payments/get-payment.route.ts';
import { errorResponseSchema } from '../paycrypt/render.ts';
import { defineRoute, type RouteRegistry, registerRoutes } from '../route.ts';
import { isoDateFilter } from '../validation.ts';
import { rotateSecretBody, webhookSettingsBody } from '../paycrypt/webhooks/webhook-settings.routes.ts';
import { type Operator, paymentActions } from './operator.ts';

export const adminPrefix = '/admin/v1';

const assetRefs = z
  .array(
    z
      .object({
        network: z.string().regex(/^[A-Za-z0-9-]{2,40}$/, 'expected a network code such as ERC20'),
        symbol: z.string().regex(/^[A-Z0-9]{2,10}$/, 'expected an upper-case asset symbol such as USDT'),
      })
      .strict(),
  )
  .max(1000);

const merchantIdParam = z
  .string()
  .regex(/^[1-9]\d{0,14}$/, 'expected a merchant id')
  .transform(Number)
  .meta({ type: 'integer' });

/**
 * The operator API behind the `paycrypt` CLI: `Authorization: Bearer
 * $PAYCRYPT_ADMIN_TOKEN`, PayCrypt v1 error envelope. Disabled when no admin
 * token is configured.
 */
export function adminApi(context: ApiContext, operator: Operator, registry: RouteRegistry) {
  const adminToken = context.adminToken;
  const common = { tag: 'Operator', security: 'admin' } as const;
  const denied = { 401: { description: 'Missing or wrong admin token', schema: errorResponseSchema } };

  const routes = [
    defineRoute({
      ...common,
      method: 'POST',
      url: '/merchants',
      summary: 'Create a merchant with its first API key (shown only in this response)',
      body: z.object({ name: z.string().min(1).max(200) }).strict(),
      responses: { 201: { description: 'Created' }, ...denied },
      async handler({ reply, body }) {
        return reply.code(201).send(await operator.createMerchant(body));
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      url: '/merchants',
      summary: 'List merchants',
      responses: { 200: { description: 'Merchants' }, ...denied },
      handler: async () => ({ data: await operator.listMerchants() }),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      url: '/merchants/:merchant_id/keys',
      summary: 'Create an API key (key and secret shown only in this response)',
      params: z.object({ merchant_id: merchantIdParam }),
      responses: { 201: { description: 'Created' }, ...denied },
      async handler({ reply, params }) {
        return reply.code(201).send(await operator.createKey(params.merchant_id));
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      url: '/merchants/:merchant_id/keys',
      summary: 'List a merchant\'s API keys (prefix and last use; never the key)',
      params: z.object({ merchant_id: merchantIdParam }),
      responses: { 200: { description: 'Keys' }, ...denied },
      handler: async ({ params }) => ({ data: await operator.listKeys(params.merchant_id) }),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      url: '/keys/:key_id/revoke',
      summary: 'Revoke an API key at once',
      params: z.object({ key_id: z.string().regex(/^key_[0-9a-z]{1,64}$/, 'expected a key id (key_…)') }),
      responses: { 200: { description: 'The revoked key' }, ...denied },
      handler: async ({ params }) => operator.revokeKey(params.key_id),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      url: '/payments/:payment_id/:action',
      summary: 'Move a payment: approve, reject, complete, fail or cancel',
      params: z.object({ payment_id: paymentIdParam, action: z.enum(Object.keys(paymentActions) as [keyof typeof paymentActions]) }),
      body: z.object({ reason: z.string().max(500).optional() }).strict().optional(),
      responses: {
        200: { description: 'The payment after the move' },
        409: { description: 'The move is not allowed from the payment\'s status', schema: errorResponseSchema },
        ...denied,
      },
      handler: async ({ params, body }) => operator.actOnPayment(params.payment_id, params.action, body?.reason),
    }),
    defineRoute({
      ...common,
      method: 'GET',
      url: '/merchants/:merchant_id/webhook_settings',
      summary: 'Show a merchant\'s webhook settings (secret masked)',
      params: z.object({ merchant_id: merchantIdParam }),
      responses: { 200: { description: 'The settings' }, ...denied },
      handler: async ({ params }) => operator.showWebhook(params.merchant_id),
    }),
    defineRoute({
      ...common,
      method: 'PUT',
      url: '/merchants/:merchant_id/webhook_settings',
      summary: 'Set a merchant\'s webhook URL, events and secret',
      params: z.object({ merchant_id: merchantIdParam }),
      body: webhookSettingsBody,
      responses: { 200: { description: 'The settings; the secret in full when this call created or changed it' }, ...denied },
      handler: async ({ params, body }) => operator.setWebhook(params.merchant_id, body),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      url: '/merchants/:merchant_id/webhook_settings/disable',
      summary: 'Switch a merchant\'s webhooks off',
      params: z.object({ merchant_id: merchantIdParam }),
      responses: { 200: { description: 'The settings' }, ...denied },
      handler: async ({ params }) => operator.disableWebhook(params.merchant_id),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      url: '/merchants/:merchant_id/webhook_settings/rotate_secret',
      summary: 'Rotate a merchant\'s webhook secret',
      params: z.object({ merchant_id: merchantIdParam }),
      body: rotateSecretBody,
      responses: { 200: { description: 'The settings with the new secret in full' }, ...denied },
      handler: async ({ params, body }) => operator.rotateWebhookSecret(params.merchant_id, body?.overlap_hours),
    }),
    defineRoute({
      ...common,
      method: 'POST',
      url: '/merchants/:merchant_id/redeliver',
      summary: 'Redeliver one event, or every event that failed for good in a time range',
      params: z.object({ merchant_id: merchantIdParam }),
      body: z.union([
        z.object({ event_id: z.string().regex(/^evt_[0-9a-z]{1,64}$/, 'expected an event id (evt_…)') }).strict(),
        z.object({ from_date: isoDateFilter, to_date: isoDateFilter }).strict(),
      ]),
      responses: { 202: { description: 'Queued' }, ...denied },
      async handler({ reply, params, body }) {
        const target = 'event_id' in body ? { eventId: body.event_id } : { from: body.from_date.start, until: body.to_date.end };
        return reply.code(202).send(await operator.redeliver(params.merchant_id, target));
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      url: '/merchants/:merchant_id/assets',
      summary: 'List the configured assets a merchant accepts, and those it does not',
      params: z.object({ merchant_id: merchantIdParam }),
      responses: { 200: { description: '`accepts` (`all` or `selected`), `data` (accepted) and `not_accepted`' }, ...denied },
      handler: async ({ params }) => operator.listAssets(params.merchant_id),
    }),
    defineRoute({
      ...common,
      method: 'PUT',
      url: '/merchants/:merchant_id/assets',
      summary: 'Set what a merchant accepts: "all" configured assets (the default) or exactly these',
      params: z.object({ merchant_id: merchantIdParam }),
      body: z.object({ assets: z.union([z.literal('all'), assetRefs]) }).strict(),
      responses: { 200: { description: 'What the merchant now accepts' }, 400: { description: 'An asset no configured chain carries', schema: errorResponseSchema }, ...denied },
      handler: async ({ params, body }) => operator.changeAssets(params.merchant_id, { set: body.assets }),
    }),
    ...(['enable', 'disable'] as const).map((action) =>
      defineRoute({
        ...common,
        method: 'POST',
        url: `/merchants/:merchant_id/assets/${action}`,
        summary: action === 'enable' ? 'Make a merchant accept these assets too' : 'Stop a merchant accepting these assets',
        params: z.object({ merchant_id: merchantIdParam }),
        body: z.object({ assets: assetRefs.min(1) }).strict(),
        responses: { 200: { description: 'What the merchant now accepts' }, 400: { description: 'An asset no configured chain carries', schema: errorResponseSchema }, ...denied },
        handler: async ({ params, body }) => operator.changeAssets(params.merchant_id, action === 'enable' ? { enable: body.assets } : { disable: body.assets }),
      }),
    ),
  ];

  return async function plugin(app: FastifyInstance) {
    app.setErrorHandler((error, request, reply) => sendPayCryptError(error, request, reply));
    app.setNotFoundHandler((request, reply) => sendPayCryptError(new PayCryptError('resource_not_found', 'No such operator route'), request, reply));
    app.addHook('onRequest', async (request) => {
      if (!adminToken) throw new PayCryptError('authentication_failed', 'The admin API is disabled: set PAYCRYPT_ADMIN_TOKEN');
      const presented = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
      if (!presented || !safeEqual(presented, adminToken)) throw new PayCryptError('authentication_failed', 'Missing or wrong admin token');
    });
    registerRoutes(app, adminPrefix, routes, registry);
  };
}
