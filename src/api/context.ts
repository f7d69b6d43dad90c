import type { ApiKeyAuthenticator } from '../core/api-keys.ts';
import type { FastifyRequest } from 'fastify';
import type { DepositChains } from '../core/deposits/deposit-chains.ts';
import type { Quoter } from '../core/rates/quote.ts';
import type { WebhookUrlPolicy } from '../core/webhooks/url-safety.ts';
import type { Config } from '../internal/config.ts';
import type { MasterKey } from '../internal/secrets.ts';
import type { Storage } from '../storage/database.ts';

/** What the HTTP layer is given: the core's services, never a chain or a worker. */
export type ApiContext = {
  config: Config;
  storage: Storage;
  master: MasterKey;
  quoter: Quoter;
  /** The configured chains payments can be paid on. */
  chains: DepositChains;
  authenticator: ApiKeyAuthenticator;
  adminToken: string | undefined;
  /** Production: HTTPS to public addresses only. Development and tests: any http(s) URL. */
  webhookPolicy: WebhookUrlPolicy;
  version: string;
  /** In `paycrypt dev` only: a funded wallet the checkout can pay from. */
  devWallet?: DevWallet | undefined;
};

/** Pays from a development wallet on a local chain, so the checkout can be tried without a wallet app. */
export type DevWallet = {
  /** The chains (by name) it holds funds on. */
  chains: readonly string[];
  pay(input: { chain: string; contract: string | null; to: string; amount: bigint }): Promise<{ txHash: string }>;
};

declare module 'fastify' {
  interface FastifyRequest {
    /** The merchant and key a dialect authenticated the request as. */
    auth?: { merchantId: number; keyId: string };
    /** For a signed request: the API key it names and that key's secret. */
    signing?: { key: string; secret: string };
    /** The request body's exact text, for signatures and idempotency fingerprints. */
    rawBody?: string;
  }
}

/** The gateway's base URL as customers reach it: configured, or the host this request came to. */
export function publicUrlOf(context: ApiContext, request: FastifyRequest): string {
  return context.config.publicUrl ?? `${request.protocol}://${request.host}`;
}
