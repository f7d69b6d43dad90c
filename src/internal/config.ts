import path from 'node:path';
import { z } from 'zod';
import { type ChainConfig, ChainConfigError, loadChainConfig } from '../chains/chain-config.ts';
import { createAddressDeriver } from '../chains/evm/address-derivation.ts';
import type { ChainWallets } from '../chains/registry.ts';
import { parseDecimal } from './decimal.ts';

/**
 * Every setting comes from the environment and is validated once at start.
 * An invalid setting stops the gateway with a message that names the variable.
 */

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `expected a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().min(min, `expected a whole number from ${min} to ${max}`).max(max, `expected a whole number from ${min} to ${max}`));

const decimalText = z.string().refine((text) => {
  const value = parseDecimal(text);
  return value !== undefined && value.units > 0n;
}, 'expected a positive decimal number as a string, e.g. "1.08"');

const ratesTable = z
  .string()
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected a JSON object such as {"BTC":"65000","EUR":"1.08"}' });
      return z.NEVER;
    }
  })
  .pipe(z.record(z.string().regex(/^[A-Z0-9]{2,10}$/, 'expected upper-case currency codes as keys'), decimalText));

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: integer(0, 65535).default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// or postgresql:// URL')
    .optional(),
  PAYCRYPT_DATA_DIR: z.string().min(1).default('./data'),
  PAYCRYPT_MASTER_KEY: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hexadecimal characters (32 bytes); generate one with `openssl rand -hex 32`')
    .optional(),
  PAYCRYPT_ADMIN_TOKEN: z.string().min(24, 'expected at least 24 characters').optional(),
  PAYCRYPT_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PAYCRYPT_DB_POOL_SIZE: integer(1, 500).default(10),
  PAYCRYPT_BODY_LIMIT_BYTES: integer(1024, 10 * 1024 * 1024).default(64 * 1024),
  PAYCRYPT_RATE_LIMIT_PER_MINUTE: integer(1, 10_000_000).default(1200),
  PAYCRYPT_IDEMPOTENCY_TTL_HOURS: integer(24, 24 * 90).default(48),
  PAYCRYPT_QUOTE_FEE_BPS: integer(0, 9999).default(50),
  PAYCRYPT_RATES: ratesTable.optional(),
  PAYCRYPT_WORKERS: z.enum(['on', 'off']).default('on'),
  PAYCRYPT_PUBLIC_URL: z
    .string()
    .regex(/^https?:\/\/[^/?#]+(\/[^?#]*)?$/, 'expected the http(s) base URL customers reach the gateway at, e.g. https://pay.example.com')
    .transform((url) => url.replace(/\/+$/, ''))
    .optional(),
  PAYCRYPT_SESSION_LIFETIME_MINUTES: integer(1, 7 * 24 * 60).default(60),
  PAYCRYPT_CHECKOUT_QUOTE_SECONDS: integer(5, 24 * 3600).default(900),
  PAYCRYPT_WEBHOOK_TIMEOUT_MS: integer(100, 120_000).default(10_000),
  PAYCRYPT_WEBHOOK_TIME_SCALE: z
    .string()
    .regex(/^\d+(\.\d+)?$/, 'expected a positive decimal number such as 1 or 0.001')
    .transform(Number)
    .pipe(z.number().positive('expected a positive decimal number such as 1 or 0.001').max(1000))
    .default(1),
  PAYCRYPT_WEBHOOK_CONCURRENCY: integer(1, 1000).default(64),
  PAYCRYPT_WEBHOOK_ENDPOINT_CONCURRENCY: integer(1, 1000).default(16),
  PAYCRYPT_WEBHOOK_SECRET_OVERLAP_HOURS: integer(0, 24 * 30).default(24),
  PAYCRYPT_WEBHOOK_LEASE_MS: integer(1_100, 24 * 3_600_000).optional(),
});

export type Config = {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  masterKeyHex: string | undefined;
  adminToken: string | undefined;
  logLevel: z.infer<typeof envSchema>['PAYCRYPT_LOG_LEVEL'];
  dbPoolSize: number;
  bodyLimitBytes: number;
  rateLimitPerMinute: number;
  idempotencyTtlHours: number;
  quoteFeeBps: number;
  /** USD value of one unit of each currency, fiat or crypto, as exact decimal text. */
  rates: Record<string, string>;
  /** Base URL of the gateway as customers reach it (checkout links); by default the request's own host. */
  publicUrl: string | undefined;
  sessions: {
    /** How long a payment session waits for its customer to choose an asset, unless the request sets `expires_in`. */
    lifetimeMs: number;
    /** How long a quote stays locked once the customer has chosen an asset on the checkout page. */
    quoteLockMs: number;
  };
  /** Whether this process runs the background workers (chain watchers, webhook dispatcher, expiry, housekeeping). */
  workers: boolean;
  /** Chains payments can be paid on (`PAYCRYPT_CHAINS` or `PAYCRYPT_CHAINS_FILE`), and their wallets. */
  chains: ChainConfig[];
  chainWallets: ChainWallets;
  webhooks: {
    timeoutMs: number;
    /** Multiplies the retry schedule (1 = as documented); tests shrink it. */
    timeScale: number;
    concurrency: number;
    endpointConcurrency: number;
    secretOverlapHours: number;
    /**
     * How long a claimed delivery stays with the process that claimed it; if
     * that process dies mid-attempt, another retries it once this runs out.
     * At least the timeout plus 1 s, so a live attempt is never sent twice.
     */
    leaseMs: number;
  };
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Note: an empty variable counts as unset, as in most shells' `VAR= cmd`.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const variable = String(issue.path[0] ?? '');
      const got = present[variable];
      const shown = variable.includes('KEY') || variable.includes('TOKEN') || variable.includes('DATABASE_URL') ? '' : ` (got ${JSON.stringify(got)})`;
      // Note: a bad entry inside a JSON variable is named, and a bad record key says what a key must look like.
      const message = issue.code === 'invalid_key' ? issue.issues.map((inner) => inner.message).join('; ') : issue.message;
      const entry = issue.path.length > 1 ? `, entry ${JSON.stringify(issue.path.slice(1).join('.'))}` : '';
      return `  ${variable}${entry}: ${message}${got === undefined ? '' : shown}`;
    });
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const value = parsed.data;
  const { chains, chainWallets } = loadChains(present);
  const leaseMs = value.PAYCRYPT_WEBHOOK_LEASE_MS ?? value.PAYCRYPT_WEBHOOK_TIMEOUT_MS + 30_000;
  if (leaseMs < value.PAYCRYPT_WEBHOOK_TIMEOUT_MS + 1_000) {
    throw new ConfigError(
      `Invalid configuration:\n  PAYCRYPT_WEBHOOK_LEASE_MS: expected at least PAYCRYPT_WEBHOOK_TIMEOUT_MS + 1000 (${value.PAYCRYPT_WEBHOOK_TIMEOUT_MS + 1_000}) (got "${leaseMs}")`,
    );
  }
  if (value.NODE_ENV === 'production' && !value.PAYCRYPT_MASTER_KEY) {
    throw new ConfigError(
      'Invalid configuration:\n  PAYCRYPT_MASTER_KEY: required when NODE_ENV=production (64 hex characters; generate one with `openssl rand -hex 32`)',
    );
  }
  return {
    env: value.NODE_ENV,
    port: value.PORT,
    host: value.HOST,
    databaseUrl: value.DATABASE_URL,
    dataDir: path.resolve(value.PAYCRYPT_DATA_DIR),
    masterKeyHex: value.PAYCRYPT_MASTER_KEY,
    adminToken: value.PAYCRYPT_ADMIN_TOKEN,
    logLevel: value.PAYCRYPT_LOG_LEVEL,
    dbPoolSize: value.PAYCRYPT_DB_POOL_SIZE,
    bodyLimitBytes: value.PAYCRYPT_BODY_LIMIT_BYTES,
    rateLimitPerMinute: value.PAYCRYPT_RATE_LIMIT_PER_MINUTE,
    idempotencyTtlHours: value.PAYCRYPT_IDEMPOTENCY_TTL_HOURS,
    quoteFeeBps: value.PAYCRYPT_QUOTE_FEE_BPS,
    rates: value.PAYCRYPT_RATES ?? {},
    publicUrl: value.PAYCRYPT_PUBLIC_URL,
    workers: value.PAYCRYPT_WORKERS === 'on',
    sessions: { lifetimeMs: value.PAYCRYPT_SESSION_LIFETIME_MINUTES * 60_000, quoteLockMs: value.PAYCRYPT_CHECKOUT_QUOTE_SECONDS * 1000 },
    chains,
    chainWallets,
    webhooks: {
      timeoutMs: value.PAYCRYPT_WEBHOOK_TIMEOUT_MS,
      timeScale: value.PAYCRYPT_WEBHOOK_TIME_SCALE,
      concurrency: value.PAYCRYPT_WEBHOOK_CONCURRENCY,
      endpointConcurrency: value.PAYCRYPT_WEBHOOK_ENDPOINT_CONCURRENCY,
      secretOverlapHours: value.PAYCRYPT_WEBHOOK_SECRET_OVERLAP_HOURS,
      leaseMs,
    },
  };
}

/** A wallet that cannot derive addresses stops the start with a message naming where it came from (never the secret itself). */
function checkWallet(wallet: ChainWallets[string], where: string): void {
  try {
    createAddressDeriver(wallet).addressAt(0);
  } catch (error) {
    throw new ChainConfigError(`Invalid configuration:\n  ${where}: ${(error as Error).message}`);
  }
}

function loadChains(env: Record<string, string | undefined>): { chains: ChainConfig[]; chainWallets: ChainWallets } {
  try {
    const chains = loadChainConfig(env);
    const chainWallets: ChainWallets = {};
    for (const chain of chains) {
      if ('xpub' in chain.addresses) {
        chainWallets[chain.name] = { xpub: chain.addresses.xpub };
        checkWallet(chainWallets[chain.name]!, `chain ${chain.name}, addresses.xpub`);
        continue;
      }
      const variable = chain.addresses.mnemonic_env;
      const mnemonic = env[variable];
      if (!mnemonic) throw new ChainConfigError(`Invalid configuration:\n  ${variable}: required by chain ${chain.name} (its wallet mnemonic)`);
      chainWallets[chain.name] = { mnemonic };
      checkWallet(chainWallets[chain.name]!, `${variable} (the wallet of chain ${chain.name})`);
    }
    return { chains, chainWallets };
  } catch (error) {
    if (error instanceof ChainConfigError) throw new ConfigError(error.message);
    throw error;
  }
}
