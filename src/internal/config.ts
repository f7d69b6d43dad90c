import path from 'node:path';
import { z } from 'zod';
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
    .pipe(z.number().int().min(min, `expected a whole number from ${min} to ${max}`).max(max, `expected a whole number from ${min} to ${max}`));

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
      return `  ${variable}: ${issue.message}${got === undefined ? '' : shown}`;
    });
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const value = parsed.data;
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
  };
}
