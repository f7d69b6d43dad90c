import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import { PayCryptError } from '../../internal/errors.ts';
import type { ApiContext } from '../context.ts';
import { type RouteRegistry, registerRoutes } from '../route.ts';
import { listAssetsRoute } from './assets/list-assets.route.ts';
import { authenticateBearer } from './bearer-auth.ts';
import { identifySignedRequest, verifySignedRequest } from './signed-auth.ts';
import { sendPayCryptError } from './errors.ts';
import { createPaymentRoute } from './payments/create-payment.route.ts';
import { getPaymentRoute } from './payments/get-payment.route.ts';
import { listPaymentsRoute } from './payments/list-payments.route.ts';
import { paymentSessionRoutes } from './sessions/payment-sessions.routes.ts';
import { eventRoutes } from './webhooks/events.routes.ts';
import { webhookSettingsRoutes } from './webhooks/webhook-settings.routes.ts';

export const payCryptPrefix = '/api/v1';

/**
 * PayCrypt's own API: the v1 Payments API (seed 000, Bearer keys) and the
 * Payment Session API (seed 001, HMAC-signed requests), with one per-key rate
 * limit and the `{error:{…}}` envelope.
 */
export function payCryptApi(context: ApiContext, registry: RouteRegistry) {
  return async function plugin(app: FastifyInstance) {
    app.setErrorHandler((error, request, reply) => sendPayCryptError(error, request, reply));
    app.setNotFoundHandler((request, reply) =>
      sendPayCryptError(new PayCryptError('resource_not_found', `No route for ${request.method} ${request.url.split('?')[0]}`), request, reply),
    );
    // Note: the Payment Session routes are HMAC-signed (seed 001); the Payments routes take a Bearer key (seed 000).
    app.addHook('onRequest', async (request) =>
      request.routeOptions.config.security === 'signed' ? identifySignedRequest(context, request) : authenticateBearer(context, request),
    );
    app.addHook('preValidation', async (request) => {
      if (request.routeOptions.config.security === 'signed') await verifySignedRequest(context, request);
    });
    await app.register(rateLimit, {
      global: true,
      hook: 'onRequest',
      max: context.config.rateLimitPerMinute,
      timeWindow: 60_000,
      keyGenerator: (request) => request.auth?.keyId ?? request.ip,
      errorResponseBuilder: (_request, limit) =>
        new PayCryptError('rate_limit_exceeded', `Too many requests: the limit is ${limit.max} per minute per API key; retry in ${limit.after}`, {
          details: { limit: limit.max, retry_after_seconds: Math.ceil(limit.ttl / 1000) },
        }),
    });
    registerRoutes(
      app,
      payCryptPrefix,
      [
        createPaymentRoute(context),
        getPaymentRoute(context),
        listPaymentsRoute(context),
        ...paymentSessionRoutes(context),
        ...webhookSettingsRoutes(context),
        ...eventRoutes(context),
        listAssetsRoute(context),
      ],
      registry,
    );
  };
}
