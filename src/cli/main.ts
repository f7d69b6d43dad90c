import { parseArgs } from 'node:util';
import { createLocalOperator, type Operator, paymentActions, type PaymentAction } from '../api/admin/operator.ts';
import { createGateway, openStorage, readServerFile, resolveAdminToken } from '../gateway.ts';
import { ConfigError, type Config, loadConfig } from '../internal/config.ts';
import { isPayCryptError } from '../internal/errors.ts';
import { createLogger } from '../internal/logger.ts';
import { loadMasterKey } from '../internal/secrets.ts';
import { migrateToLatest } from '../storage/migrations/index.ts';
import { createRemoteOperator } from './remote-operator.ts';

const usage = `Usage: paycrypt <command> [options]

Gateway:
  serve                                   Start the gateway (HTTP API, workers)
  migrate                                 Apply database migrations and exit

Merchants and API keys:
  merchants create --name NAME [--json]   Create a merchant and its first API key
  merchants list [--json]
  keys create --merchant ID [--json]      Issue another API key (shown once)
  keys list --merchant ID [--json]        Prefix, creation and last use of each key
  keys revoke KEY_ID [--json]

Payments (operator actions):
  payments approve|reject|complete|fail|cancel PAYMENT_ID [--reason TEXT] [--json]

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
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, subcommand, target] = positionals;
  if (values.help || !command || command === 'help') {
    process.stdout.write(usage);
    return command || values.help ? 0 : 1;
  }
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
    default:
      return fail(`unknown command: ${command}\n\n${usage}`);
  }
}

async function serve(config: Config): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
  const gateway = await createGateway({ config, logger });
  await gateway.listen();
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
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
    return await run(createLocalOperator({ storage, master: loadMasterKey({ masterKeyHex: config.masterKeyHex, dataDir: config.dataDir }) }));
  } finally {
    await storage.close();
  }
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
    if (error instanceof ConfigError) process.stderr.write(`paycrypt: ${error.message}\n`);
    else if (isPayCryptError(error)) process.stderr.write(`paycrypt: ${error.message} (${error.code})\n`);
    else process.stderr.write(`paycrypt: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
