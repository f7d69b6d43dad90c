import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { PayCryptError } from '../internal/errors.ts';
import { randomToken } from '../internal/ids.ts';
import { parseJson, stringifyJson } from '../internal/json.ts';
import { adminApi, adminPrefix } from './admin/plugin.ts';
import type { Operator } from './admin/operator.ts';
import type { ApiContext } from './context.ts';
import { buildOpenApiDocument } from './openapi.ts';
import { payCryptApi, payCryptPrefix } from './paycrypt/plugin.ts';
import { sendPayCryptError } from './paycrypt/errors.ts';
import { createRouteRegistry } from './route.ts';
import { checkoutPages } from '../web/checkout/checkout-routes.ts';

/**
 * The HTTP server: shared plumbing (request ids, exact JSON, body limit,
 * health, OpenAPI) and one plugin per API dialect under its own prefix.
 */
export type ChainHealth = { name: string; state: string; head: number | null; processed: number | null; error: string | null; updatedAt: Date };

export async function createHttpServer(options: {
  context: ApiContext;
  operator: Operator;
  logger: Logger;
  chainStatuses?: () => ChainHealth[];
}): Promise<FastifyInstance> {
  const { context } = options;
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    bodyLimit: context.config.bodyLimitBytes,
    genReqId: () => `req_${randomToken(20)}`,
    trustProxy: false,
    routerOptions: { ignoreTrailingSlash: true },
  });

  // Note: every number in a request body keeps its exact text (no float), and
  // the raw text is kept for signatures and idempotency fingerprints. JSON is
  // the only body type: anything else (text/plain included) is a 415.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    request.rawBody = text;
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, parseJson(text));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
  app.setReplySerializer((payload) => stringifyJson(payload));
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  const registry = createRouteRegistry();
  app.get('/health', async (_request, reply) => {
    const storage = await sql`select 1`
      .execute(context.storage.db)
      .then(() => 'ok' as const)
      .catch(() => 'unavailable' as const);
    const chains = (options.chainStatuses?.() ?? []).map((chain) => ({
      name: chain.name,
      state: chain.state,
      head: chain.head,
      processed_block: chain.processed,
      lag: chain.head !== null && chain.processed !== null ? chain.head - chain.processed : null,
      error: chain.error,
    }));
    // Note: a degraded chain degrades the report but not the HTTP status: the API itself still serves.
    const healthy = storage === 'ok' && chains.every((chain) => chain.state !== 'degraded');
    return reply.code(storage === 'ok' ? 200 : 503).send({
      status: healthy ? 'ok' : 'degraded',
      timestamp: new Date().toISOString(),
      version: context.version,
      checks: { storage, ...(chains.length > 0 ? { chains } : {}) },
    });
  });

  await app.register(checkoutPages(context));
  await app.register(payCryptApi(context, registry), { prefix: payCryptPrefix });
  await app.register(adminApi(context, options.operator, registry), { prefix: adminPrefix });

  const document = buildOpenApiDocument({
    registry,
    version: context.version,
    securitySchemes: {
      bearer: { type: 'http', scheme: 'bearer', description: 'A merchant API key (`pk_…`)' },
      signed: {
        type: 'apiKey',
        in: 'header',
        name: 'X-Paycrypt-Key',
        description:
          'The API key in `X-Paycrypt-Key`, unix seconds in `X-Paycrypt-Timestamp` (within 300 s of the server clock), and in `X-Paycrypt-Signature` the hex HMAC-SHA256 of `"<timestamp>.<raw body>"` under the API secret. Each signature is accepted once.',
      },
      admin: { type: 'http', scheme: 'bearer', description: 'The operator token, PAYCRYPT_ADMIN_TOKEN' },
    },
  });
  app.get('/openapi.json', async () => document);
  await app.register(swagger, { mode: 'static', specification: { document: document as never } });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });

  app.setNotFoundHandler((request, reply) =>
    sendPayCryptError(new PayCryptError('resource_not_found', `No route for ${request.method} ${request.url.split('?')[0]}`), request, reply),
  );
  app.setErrorHandler((error, request, reply) => sendPayCryptError(error, request, reply));
  return app;
}
