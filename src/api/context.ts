import type { ApiKeyAuthenticator } from '../core/api-keys.ts';
import type { Quoter } from '../core/rates/quote.ts';
import type { Config } from '../internal/config.ts';
import type { MasterKey } from '../internal/secrets.ts';
import type { Storage } from '../storage/database.ts';

/** What the HTTP layer is given: the core's services, never a chain or a worker. */
export type ApiContext = {
  config: Config;
  storage: Storage;
  master: MasterKey;
  quoter: Quoter;
  authenticator: ApiKeyAuthenticator;
  adminToken: string | undefined;
  version: string;
};

declare module 'fastify' {
  interface FastifyRequest {
    /** The merchant and key a dialect authenticated the request as. */
    auth?: { merchantId: number; keyId: string };
    /** The request body's exact text, for signatures and idempotency fingerprints. */
    rawBody?: string;
  }
}
