import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  type AssetsChange,
  createLocalOperator,
  type MerchantAssetsView,
  type Operator,
  paymentActions,
  type PaymentAction,
} from '../api/admin/operator.ts';
import { createChainRegistry } from '../chains/registry.ts';
import type { AssetRef } from '../core/merchant-assets.ts';
import { startDevEnvironment } from '../dev/dev-environment.ts';
import { createGateway, openStorage, readServerFile, resolveAdminToken, webhookPolicyOf } from '../gateway.ts';
import { ConfigError, type Config, loadConfig } from '../internal/config.ts';
import { isPayCryptError } from '../internal/errors.ts';
import { createLogger } from '../internal/logger.ts';
import { loadMasterKey } from '../internal/secrets.ts';
import { migrateToLatest } from '../storage/migrations/index.ts';
import { createRemoteOperator } from './remote-operator.ts';

const usage = `Usage: paycrypt <command> [options]

Gateway:
  serve                                   Start the gateway (HTTP API, workers)
  dev [--data-dir DIR] [--port N]         A local chain (anvil) with test tokens, the gateway
                                          watching it, a demo merchant; prints one JSON line
  migrate                                 Apply database migrations and exit

Merchants and API keys:
  merchants create --name NAME [--json]   Create a merchant and its first API key
  merchants list [--json]
  merchants assets MERCHANT_ID [--json]   The configured assets (NETWORK:SYMBOL) the merchant accepts
  merchants assets MERCHANT_ID (--enable A[,B…] | --disable A[,B…] | --only A[,B…] | --all) [--json]
                                          Accept these too / no longer / only these / every
                                          configured asset (the default); A is NETWORK:SYMBOL
  keys create --merchant ID [--json]      Issue another API key (shown once)
  keys list --merchant ID [--json]        Prefix, creation and last use of each key
  keys revoke KEY_ID [--json]

Payments (operator actions):
  payments approve|reject|complete|fail|cancel PAYMENT_ID [--reason TEXT] [--json]

Webhooks:
  webhooks set --merchant ID --url URL [--secret S] [--events a,b] [--json]
                                          Enable webhooks to URL (secret generated if none)
  webhooks show --merchant ID [--json]    Settings, secret masked
  webhooks disable --merchant ID [--json]
  webhooks rotate --merchant ID [--overlap-hours N] [--json]
                                          New secret; the old one signs alongside for N hours
  webhooks redeliver --merchant ID (EVENT_ID | --from DATE --to DATE) [--json]
                                          One event again, or every failed one in a range

Settings come from the environment (see README). With embedded storage and a
gateway running on the same data directory, commands go through its admin API.
`;

type Output = { json: boolean };

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      merchant: { type: 'string' },
      reason: { type: 'string' },
      url: { type: 'string' },
      secret: { type: 'string' },
      events: { type: 'string' },
      'overlap-hours': { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      json: { type: 'boolean', default: false },
      enable: { type: 'string' },
      disable: { type: 'string' },
      only: { type: 'string' },
      all: { type: 'boolean', default: false },
      'data-dir': { type: 'string' },
      port: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, subcommand, target] = positionals;
  if (values.help || !command || command === 'help') {
    process.stdout.write(usage);
    return command || values.help ? 0 : 1;
  }
  if (command === 'dev') return dev({ dataDir: values['data-dir'], port: values.port });
  const config = loadConfig();
  const output: Output = { json: values.json };

  switch (command) {
    case 'serve':
      return serve(config);
    case 'migrate': {
      const storage = await openStorage(config);
      try {
        const applied = await migrateToLatest(storage.db);
        process.stdout.write(applied.length > 0 ? `Applied: ${applied.join(', ')}\n` : 'The schema is up to date.\n');
      } finally {
        await storage.close();
      }
      return 0;
    }
    case 'merchants':
      return withOperator(config, async (operator) => {
        if (subcommand === 'create') {
          if (!values.name) return fail('merchants create needs --name NAME');
          const created = await operator.createMerchant({ name: values.name });
          print(output, created, () =>
            [
              `Merchant ${created.merchant_id} (${created.name}) created.`,
              `  api_key:    ${created.api_key}`,
              `  api_secret: ${created.api_secret}`,
              'Store both now: they are not shown again.',
            ].join('\n'),
          );
          return 0;
        }
        if (subcommand === 'list') {
          const merchants = await operator.listMerchants();
          print(output, merchants, () => merchants.map((m) => `${m.merchant_id}\t${m.name}\t${m.created_at}`).join('\n') || 'No merchants yet.');
          return 0;
        }
        if (subcommand === 'assets') {
          const merchantId = Number(target);
          if (!target || !/^\d+$/.test(target) || !Number.isSafeInteger(merchantId) || merchantId < 1) return fail('merchants assets needs MERCHANT_ID');
          const changes = [values.enable !== undefined, values.disable !== undefined, values.only !== undefined, values.all].filter(Boolean).length;
          if (changes > 1) return fail('merchants assets takes one of --enable, --disable, --only, --all');
          let change: AssetsChange | undefined;
          if (values.all) change = { set: 'all' };
          for (const flag of ['enable', 'disable', 'only'] as const) {
            const text = values[flag];
            if (text === undefined) continue;
            const refs = parseAssetRefs(text);
            if (!refs) return fail(`--${flag} takes NETWORK:SYMBOL[,NETWORK:SYMBOL…], e.g. ERC20:USDT; got ${JSON.stringify(text)}`);
            change = flag === 'enable' ? { enable: refs } : flag === 'disable' ? { disable: refs } : { set: refs };
          }
          const assets = change ? await operator.changeAssets(merchantId, change) : await operator.listAssets(merchantId);
          print(output, assets, () => describeAssets(assets));
          return 0;
        }
        return fail(`unknown command: merchants ${subcommand ?? ''}`);
      });
    case 'keys':
      return withOperator(config, async (operator) => {
        if (subcommand === 'create' || subcommand === 'list') {
          const merchantId = Number(values.merchant);
          if (!values.merchant || !Number.isSafeInteger(merchantId) || merchantId < 1) return fail(`keys ${subcommand} needs --merchant ID`);
          if (subcommand === 'create') {
            const key = await operator.createKey(merchantId);
            print(output, key, () => [`Key ${key.key_id} created.`, `  api_key:    ${key.api_key}`, `  api_secret: ${key.api_secret}`, 'Store both now: they are not shown again.'].join('\n'));
          } else {
            const keys = await operator.listKeys(merchantId);
            print(output, keys, () =>
              keys.map((k) => `${k.key_id}\t${k.prefix}…\tcreated ${k.created_at}\tlast used ${k.last_used_at ?? 'never'}${k.revoked_at ? `\trevoked ${k.revoked_at}` : ''}`).join('\n') || 'No keys.',
            );
          }
          return 0;
        }
        if (subcommand === 'revoke') {
          if (!target) return fail('keys revoke needs KEY_ID');
          const key = await operator.revokeKey(target);
          print(output, key, () => `Key ${key.key_id} revoked at ${key.revoked_at}.`);
          return 0;
        }
        return fail(`unknown command: keys ${subcommand ?? ''}`);
      });
    case 'payments':
      return withOperator(config, async (operator) => {
        if (!subcommand || !(subcommand in paymentActions)) return fail(`payments needs one of: ${Object.keys(paymentActions).join(', ')}`);
        if (!target) return fail(`payments ${subcommand} needs PAYMENT_ID`);
        const payment = /^\d+$/.test(target) ? Number(target) : target;
        const changed = await operator.actOnPayment(payment, subcommand as PaymentAction, values.reason);
        print(output, changed, () => `Payment ${changed.id} (${changed.transaction_id}) is now ${changed.status}.`);
        return 0;
      });
    case 'webhooks':
      return withOperator(config, async (operator) => {
        const merchantId = Number(values.merchant);
        if (!values.merchant || !Number.isSafeInteger(merchantId) || merchantId < 1) return fail(`webhooks ${subcommand ?? ''} needs --merchant ID`);
        const show = (settings: Awaited<ReturnType<Operator['showWebhook']>>) =>
          print(output, settings, () =>
            settings.url === null
              ? 'Webhooks are not set up.'
              : [
                  `Webhooks ${settings.enabled ? 'enabled' : 'disabled'}: ${settings.url}`,
                  `  events: ${settings.events?.join(', ') ?? 'all'}`,
                  `  secret: ${settings.secret}`,
                  ...(settings.secret_rotation ? [`  previous secret signs until ${settings.secret_rotation.previous_secret_expires_at}`] : []),
                ].join('\n'),
          );
        switch (subcommand) {
          case 'set':
            if (!values.url) return fail('webhooks set needs --url URL');
            show(
              await operator.setWebhook(merchantId, {
                url: values.url,
                enabled: true,
                secret: values.secret,
                events: values.events?.split(',').map((type) => type.trim()).filter(Boolean),
              }),
            );
            return 0;
          case 'show':
            show(await operator.showWebhook(merchantId));
            return 0;
          case 'disable':
            show(await operator.disableWebhook(merchantId));
            return 0;
          case 'rotate': {
            const overlap = values['overlap-hours'];
            if (overlap !== undefined && !/^\d{1,3}$/.test(overlap)) return fail('--overlap-hours must be a whole number of hours');
            show(await operator.rotateWebhookSecret(merchantId, overlap === undefined ? undefined : Number(overlap)));
            return 0;
          }
          case 'redeliver': {
            let redeliverTarget: { eventId: string } | { from: Date; until: Date };
            if (target !== undefined) redeliverTarget = { eventId: target };
            else {
              const from = values.from ? new Date(values.from) : undefined;
              const until = values.to ? new Date(values.to) : undefined;
              if (!from || !until || Number.isNaN(from.getTime()) || Number.isNaN(until.getTime())) return fail('webhooks redeliver needs EVENT_ID or --from DATE --to DATE');
              redeliverTarget = { from, until };
            }
            const result = await operator.redeliver(merchantId, redeliverTarget);
            print(output, result, () => (result.event_ids.length > 0 ? `Queued again: ${result.event_ids.join(', ')}` : 'Nothing to redeliver.'));
            return 0;
          }
          default:
            return fail('webhooks needs one of: set, show, disable, rotate, redeliver');
        }
      });
    default:
      return fail(`unknown command: ${command}\n\n${usage}`);
  }
}

async function dev(options: { dataDir: string | undefined; port: string | undefined }): Promise<number> {
  if (options.port !== undefined && !/^\d{1,5}$/.test(options.port)) return fail('--port must be a port number');
  const environment = await startDevEnvironment({
    ...(options.dataDir ? { dataDir: path.resolve(options.dataDir) } : {}),
    ...(options.port ? { port: Number(options.port) } : {}),
  });
  process.stdout.write(`${JSON.stringify(environment.info)}\n`);
  await untilSignal();
  await environment.stop();
  return 0;
}

/** Resolves on the first SIGINT or SIGTERM. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

async function serve(config: Config): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
  const gateway = await createGateway({ config, logger });
  await gateway.listen();
  logger.info({ signal: await untilSignal() }, 'shutting down');
  await gateway.close();
  return 0;
}

/**
 * Runs operator actions in-process, or through the running gateway's admin
 * API when that gateway holds the embedded database.
 */
async function withOperator(config: Config, run: (operator: Operator) => Promise<number>): Promise<number> {
  const holder = config.databaseUrl ? undefined : readServerFile(config.dataDir);
  if (holder) {
    const token = resolveAdminToken(config);
    if (!token) return fail('the gateway holds the data directory; set PAYCRYPT_ADMIN_TOKEN to reach its admin API');
    return run(createRemoteOperator({ url: holder.url, token }));
  }
  const storage = await openStorage(config);
  try {
    await migrateToLatest(storage.db);
    return await run(
      createLocalOperator({
        storage,
        master: loadMasterKey({ masterKeyHex: config.masterKeyHex, dataDir: config.dataDir }),
        // Note: the chains of this command's environment, as `serve` reads them, to check asset names against.
        chains: createChainRegistry(config.chains, config.chainWallets).deposits,
        webhookPolicy: webhookPolicyOf(config),
        secretOverlapHours: config.webhooks.secretOverlapHours,
      }),
    );
  } finally {
    await storage.close();
  }
}

/** `ERC20:USDT,BEP20:USDC` → pairs; undefined when an item is not NETWORK:SYMBOL or there is none. */
function parseAssetRefs(text: string): AssetRef[] | undefined {
  const items = text.split(',').map((item) => item.trim()).filter(Boolean);
  const refs = items.map((item) => /^([^:\s]+):([^:\s]+)$/.exec(item)).map((match) => match && { network: match[1]!, symbol: match[2]! });
  return refs.length > 0 && refs.every((ref) => ref !== null) ? (refs as AssetRef[]) : undefined;
}

function describeAssets(assets: MerchantAssetsView): string {
  const line = (asset: MerchantAssetsView['data'][number]) =>
    `  ${asset.network}:${asset.symbol}\t${asset.contract ?? 'native'}\t${asset.decimals} decimals\tchain ${asset.chain}`;
  const configured = assets.data.length + assets.not_accepted.length;
  if (configured === 0) return `Merchant ${assets.merchant_id} accepts ${assets.accepts === 'all' ? 'every configured asset' : 'only the assets chosen'}; no chains are configured.`;
  const lines =
    assets.accepts === 'all'
      ? [`Merchant ${assets.merchant_id} accepts every configured asset:`, ...assets.data.map(line)]
      : assets.data.length === 0
        ? [`Merchant ${assets.merchant_id} accepts no asset on a configured chain.`]
        : [`Merchant ${assets.merchant_id} accepts ${assets.data.length} of ${configured} configured assets:`, ...assets.data.map(line)];
  if (assets.not_accepted.length > 0) lines.push(`Not accepted: ${assets.not_accepted.map((asset) => `${asset.network}:${asset.symbol}`).join(', ')}`);
  return lines.join('\n');
}

function print<T>(output: Output, value: T, human: () => string) {
  process.stdout.write(output.json ? `${JSON.stringify(value)}\n` : `${human()}\n`);
}

function fail(message: string): number {
  process.stderr.write(`paycrypt: ${message}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    // Note: a mistyped or incomplete option is a usage error, not a crash.
    if (String((error as NodeJS.ErrnoException)?.code).startsWith('ERR_PARSE_ARGS')) {
      process.exitCode = fail(`${(error as Error).message}\n\n${usage}`);
      return;
    }
    if (error instanceof ConfigError) process.stderr.write(`paycrypt: ${error.message}\n`);
    else if (isPayCryptError(error)) process.stderr.write(`paycrypt: ${error.message} (${error.code})\n`);
    else process.stderr.write(`paycrypt: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
