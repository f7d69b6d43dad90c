import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createLocalOperator, type Operator } from './api/admin/operator.ts';
import type { ApiContext, DevWallet } from './api/context.ts';
import { createHttpServer } from './api/server.ts';
import { createApiKeyAuthenticator } from './core/api-keys.ts';
import { createQuoter } from './core/rates/quote.ts';
import type { RateSource } from './core/rates/rate-source.ts';
import type { WebhookUrlPolicy } from './core/webhooks/url-safety.ts';
import { createTableRateSource } from './core/rates/table-rate-source.ts';
import { type Config, ConfigError } from './internal/config.ts';
import type { Logger } from './internal/logger.ts';
import { loadMasterKey, readOrCreateSecretFile } from './internal/secrets.ts';
import { createStorage, type Storage } from './storage/database.ts';
import { migrateToLatest } from './storage/migrations/index.ts';
import { startEvmWatcher } from './chains/evm/evm-watcher.ts';
import { type ChainRegistry, createChainRegistry } from './chains/registry.ts';
import { startMaintenance } from './workers/maintenance.ts';
import { startPaymentExpiry } from './workers/payment-expiry.ts';
import { startWebhookDispatcher } from './workers/webhook-dispatcher.ts';
import { payCryptWebhookRequest } from './api/paycrypt/webhooks/webhook-payload.ts';
import { sessionWebhookRequest } from './api/paycrypt/sessions/session-webhook.ts';

export const version: string = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

/** The running gateway: storage, the core's services, the HTTP server and the workers. */
export type Gateway = {
  context: ApiContext;
  operator: Operator;
  server: FastifyInstance;
  /** Listens on the configured host and port; returns the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
};

export async function createGateway(options: {
  config: Config;
  logger: Logger;
  /** Storage to use instead of opening the configured one (tests share one). */
  storage?: Storage;
  rates?: RateSource;
  /** `paycrypt dev`: a funded wallet the checkout offers to pay from. */
  devWallet?: DevWallet;
}): Promise<Gateway> {
  const { config, logger } = options;
  const master = loadMasterKey({ masterKeyHex: config.masterKeyHex, dataDir: config.dataDir });
  const adminToken = resolveAdminToken(config);
  const registry = createChainRegistry(config.chains, config.chainWallets);
  const storage = options.storage ?? (await openStorage(config));
  const applied = await migrateToLatest(storage.db);
  if (applied.length > 0) logger.info({ migrations: applied }, 'applied migrations');

  const context: ApiContext = {
    config,
    storage,
    master,
    quoter: createQuoter({ rates: options.rates ?? createTableRateSource(config.rates), feeBps: config.quoteFeeBps }),
    authenticator: await createApiKeyAuthenticator({ storage, master }),
    chains: registry.deposits,
    adminToken,
    webhookPolicy: webhookPolicyOf(config),
    version,
    devWallet: options.devWallet,
  };
  const operator = createLocalOperator({ ...context, secretOverlapHours: config.webhooks.secretOverlapHours });
  const server = await createHttpServer({ context, operator, logger, chainStatuses: () => registry.chains.map((chain) => ({ name: chain.config.name, ...chain.status })) });
  const workers = config.workers ? startWorkers(context, registry, logger) : undefined;
  let releaseDataDir: (() => void) | undefined;

  return {
    context,
    operator,
    server,
    async listen() {
      await server.listen({ port: config.port, host: config.host });
      const address = server.server.address();
      const port = typeof address === 'object' && address ? address.port : config.port;
      const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
      if (storage.kind === 'pglite') releaseDataDir = claimDataDir(config.dataDir, url);
      logger.info({ url, storage: storage.kind, env: config.env }, 'PayCrypt is listening');
      return url;
    },
    async close() {
      await server.close();
      await workers?.stop();
      await context.authenticator.close();
      releaseDataDir?.();
      if (!options.storage) await storage.close();
    },
  };
}

/** Production sends webhooks over HTTPS to public addresses only; development and tests anywhere. */
export function webhookPolicyOf(config: Config): WebhookUrlPolicy {
  return config.env === 'production' ? 'public-https' : 'any';
}

/** The background loops of one gateway process: webhook delivery and housekeeping. */
function startWorkers(context: ApiContext, registry: ChainRegistry, logger: Logger): { stop(): Promise<void> } {
  const { config, storage } = context;
  const maintenance = startMaintenance({ db: storage.db, logger, idempotencyTtlHours: config.idempotencyTtlHours });
  const watchers = registry.chains.map((runtime) => startEvmWatcher({ runtime, storage, logger: logger.child({ worker: 'chain' }) }));
  const expiry = startPaymentExpiry({ db: storage.db, logger: logger.child({ worker: 'expiry' }) });
  const dispatcher = startWebhookDispatcher({
    storage,
    master: context.master,
    logger: logger.child({ worker: 'webhooks' }),
    // Note: a session's own endpoint gets the Payment Session format; the merchant's settings endpoint the v1 one.
    buildRequest: (event, endpoint, at) => (endpoint.format === 'payment_session' ? sessionWebhookRequest : payCryptWebhookRequest)(event, endpoint, at),
    policy: context.webhookPolicy,
    timeoutMs: config.webhooks.timeoutMs,
    timeScale: config.webhooks.timeScale,
    concurrency: config.webhooks.concurrency,
    endpointConcurrency: config.webhooks.endpointConcurrency,
    leaseMs: config.webhooks.leaseMs,
  });
  return {
    async stop() {
      maintenance.stop();
      await Promise.all([...watchers.map((watcher) => watcher.stop()), expiry.stop()]);
      await dispatcher.stop();
    },
  };
}

/** Opens the configured storage; embedded PGlite refuses a data directory another live gateway holds. */
export async function openStorage(config: Config): Promise<Storage> {
  if (!config.databaseUrl) {
    const holder = readServerFile(config.dataDir);
    if (holder && holder.pid !== process.pid) {
      throw new ConfigError(`the data directory ${config.dataDir} is in use by the gateway process ${holder.pid} at ${holder.url}`);
    }
  }
  return createStorage({ databaseUrl: config.databaseUrl, dataDir: path.join(config.dataDir, 'pglite'), poolSize: config.dbPoolSize });
}

/**
 * The admin token: `PAYCRYPT_ADMIN_TOKEN`, or outside production one generated
 * into the data directory, where the CLI on the same machine finds it.
 */
export function resolveAdminToken(config: Config): string | undefined {
  if (config.adminToken) return config.adminToken;
  if (config.env === 'production') return undefined;
  return readOrCreateSecretFile(config.dataDir, 'admin.token', () => randomBytes(24).toString('hex'));
}

export type ServerFile = { pid: number; url: string; started_at: string };

const serverFileName = 'server.json';

/**
 * Embedded PGlite admits one process. The serving process records itself in
 * `server.json` so that the CLI goes through its admin API instead of opening
 * the database a second time. Returns undefined when no live process holds it.
 */
export function readServerFile(dataDir: string): ServerFile | undefined {
  try {
    const file = JSON.parse(fs.readFileSync(path.join(dataDir, serverFileName), 'utf8')) as ServerFile;
    process.kill(file.pid, 0);
    return file;
  } catch {
    return undefined;
  }
}

function claimDataDir(dataDir: string, url: string): () => void {
  const file = path.join(dataDir, serverFileName);
  fs.writeFileSync(file, JSON.stringify({ pid: process.pid, url, started_at: new Date().toISOString() } satisfies ServerFile), { mode: 0o600 });
  return () => fs.rmSync(file, { force: true });
}
