import { createGateway } from '../src/gateway.ts';
import { loadConfig } from '../src/internal/config.ts';
import { createLogger } from '../src/internal/logger.ts';
import { serveUntilStopped } from './server-process.ts';

/**
 * The gateway under test, as `paycrypt serve` would run it: configured from
 * the environment the benchmark passes in, with one merchant whose API key
 * the load generator uses.
 */
const config = loadConfig(process.env);
const gateway = await createGateway({ config, logger: createLogger({ level: config.logLevel }) });
const merchant = await gateway.operator.createMerchant({ name: 'Benchmark merchant' });
const url = await gateway.listen();

serveUntilStopped({ type: 'ready', url, apiKey: merchant.api_key, merchantId: merchant.merchant_id }, () => gateway.close());
