import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type BenchDatabase,
  checkpoint,
  createBaselineTable,
  createBenchDatabase,
  defaultAdminUrl,
  describeServer,
  seedPayments,
} from './database.ts';
import { type LoadOptions, type LoadResult, runLoad, warmUp } from './load.ts';
import { type CpuPerRequest, cpuPerRequest, formatCpu, readCpu } from './cpu-time.ts';
import { profileMark, profilingEnv } from './profiling.ts';
import { type ServerProcess, startServerProcess } from './server-process.ts';

/**
 * The API benchmark (`npm run bench:api`).
 *
 * 1. Create-payment throughput and latency at 64 connections, against a
 *    baseline measured in the same run: a bare Fastify route doing one INSERT
 *    over the same kind of pg pool. Target: the gateway's create keeps at
 *    least half the baseline's requests per second.
 * 2. List latency over 100,000 payments of one merchant: the default page, a
 *    status filter, a date range and a deep page. Target: p99 under 20 ms.
 *
 * Everything runs against 127.0.0.1 in a database created for the run and
 * dropped at its end. Exits 1 when a target is missed.
 */

const settings = {
  connections: 64,
  durationSeconds: 10,
  warmUpSeconds: 3,
  /** Gateway and baseline create runs alternate this many times; the medians are compared. */
  createRounds: 3,
  /** The gateway's default PAYCRYPT_DB_POOL_SIZE, given to both servers. */
  poolSize: 10,
  listPayments: 100_000,
  listDays: 365,
  perPage: 20,
  /** One connection: list latency is measured without queueing behind other requests. */
  listConnections: 1,
  listDurationSeconds: 5,
  listWarmUpSeconds: 1,
  /** The whole run is stopped, and its database dropped, if it takes longer than this. */
  deadlineMs: 8 * 60_000,
};

const targets = { createRatio: 0.5, listP99Ms: 20 };

// Note: the amount is written as in the API docs, `100.00`; JSON.stringify would shorten it to `100`.
const createBody = '{"amount": 100.00, "currency": "USD", "method": "crypto", "type": "deposit", "crypto_currency": "USDT"}';

type ListCase = { label: string; query: string; matching: number; p50Ms: number; p99Ms: number; requestsPerSecond: number };

async function main(): Promise<boolean> {
  const adminUrl = process.env.DATABASE_URL || defaultAdminUrl;
  const startLoad = os.loadavg();
  const db = await createBenchDatabase(adminUrl, `paycrypt_bench_${process.pid}`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-bench-'));
  const running = new Set<ServerProcess<unknown>>();

  const cleanup = once(async () => {
    for (const server of running) await server.stop().catch(() => {});
    await db.drop().catch((error: unknown) => console.error(`could not drop the database ${db.name}:`, error));
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  const abort = (reason: string, code: number) => {
    console.error(`\n${reason}: stopping and dropping ${db.name}`);
    void cleanup().finally(() => process.exit(code));
  };
  const deadline = setTimeout(() => abort(`the benchmark ran past its ${settings.deadlineMs / 60_000}-minute limit`, 1), settings.deadlineMs);
  process.once('SIGINT', () => abort('interrupted', 130));
  process.once('SIGTERM', () => abort('terminated', 143));

  async function start<Extra = {}>(file: string, env: Record<string, string>): Promise<ServerProcess<Extra>> {
    const server = await startServerProcess<Extra>(file, env);
    running.add(server);
    return {
      ...server,
      stop: async () => {
        running.delete(server);
        await server.stop();
      },
    };
  }

  try {
    printHeader(db, adminUrl, startLoad);

    const gateway = await start<{ apiKey: string; merchantId: number }>('gateway-server.ts', gatewayEnv(db, dataDir));
    const { url, apiKey, merchantId } = gateway.ready;
    const auth = { authorization: `Bearer ${apiKey}` };

    await createBaselineTable(db.client);
    const baseline = await start('baseline-server.ts', { NODE_ENV: 'production', BENCH_DATABASE_URL: db.url, BENCH_DB_POOL_SIZE: String(settings.poolSize) });

    profileMark('list: start');
    const list = await measureList({ db, url, headers: auth, merchantId });
    profileMark('list: done');
    const createIdempotent = await measureCreate(db, gateway, {
      url: `${url}/api/v1/payments`,
      headers: auth,
      setupRequest: (request) => ({ ...request, headers: { ...request.headers, 'idempotency-key': randomUUID() } }),
    });
    // Note: gateway and baseline runs alternate, so that load others put on the machine falls on both alike; each side's median run counts.
    const rounds: Array<{ gateway: CreateResult; baseline: CreateResult }> = [];
    for (let round = 0; round < settings.createRounds; round++) {
      profileMark(`create round ${round + 1}: gateway warm-up`);
      const gatewayRun = await measureCreate(db, gateway, { url: `${url}/api/v1/payments`, headers: auth });
      profileMark(`create round ${round + 1}: gateway done`);
      rounds.push({ gateway: gatewayRun, baseline: await measureCreate(db, baseline, { url: `${baseline.ready.url}/payments`, headers: {} }) });
    }
    await gateway.stop();
    await baseline.stop();

    return printReport({ rounds, createIdempotent, list, endLoad: os.loadavg() });
  } finally {
    clearTimeout(deadline);
    await cleanup();
  }
}

function gatewayEnv(db: BenchDatabase, dataDir: string): Record<string, string> {
  return {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: '0',
    DATABASE_URL: db.url,
    PAYCRYPT_DATA_DIR: dataDir,
    PAYCRYPT_MASTER_KEY: randomBytes(32).toString('hex'),
    PAYCRYPT_ADMIN_TOKEN: randomBytes(24).toString('hex'),
    PAYCRYPT_LOG_LEVEL: 'warn',
    PAYCRYPT_DB_POOL_SIZE: String(settings.poolSize),
    // Note: one key sends every request here; the per-key limit (1,200/min by default) would otherwise be what is measured.
    PAYCRYPT_RATE_LIMIT_PER_MINUTE: '10000000',
    ...profilingEnv(),
  };
}

/** Warm-up, a checkpoint, then the measured run at 64 connections. */
async function measureCreate(db: BenchDatabase, server: ServerProcess<unknown>, target: Pick<LoadOptions, 'url' | 'headers' | 'setupRequest'>): Promise<CreateResult> {
  const options: LoadOptions = {
    ...target,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...target.headers },
    body: createBody,
    connections: settings.connections,
    durationSeconds: settings.durationSeconds,
  };
  await warmUp({ ...options, durationSeconds: settings.warmUpSeconds });
  await checkpoint(db.client);
  const before = readCpu(server.pid);
  const result = await runLoad(options);
  const cpu = cpuPerRequest(before, readCpu(server.pid), result.successes);
  assertClean(result, options.url);
  return { ...result, cpu };
}

type CreateResult = LoadResult & { cpu: CpuPerRequest };

async function measureList(input: { db: BenchDatabase; url: string; headers: Record<string, string>; merchantId: number }): Promise<ListCase[]> {
  const seeding = performance.now();
  await seedPayments(input.db.client, { merchantId: input.merchantId, count: settings.listPayments, days: settings.listDays });
  console.log(`seeded ${settings.listPayments.toLocaleString('en')} payments over ${settings.listDays} days in ${((performance.now() - seeding) / 1000).toFixed(1)} s (VACUUM ANALYZE included)\n`);

  const lastPage = Math.ceil(settings.listPayments / settings.perPage);
  const cases = [
    { label: 'default page', query: '' },
    { label: 'status filter', query: '?status=completed' },
    { label: 'date range (30 days)', query: `?from_date=${isoDay(daysAgo(90))}&to_date=${isoDay(daysAgo(61))}` },
    { label: `deep page (page ${lastPage / 2} of ${lastPage})`, query: `?page=${lastPage / 2}` },
  ];
  const results: ListCase[] = [];
  for (const { label, query } of cases) {
    const url = `${input.url}/api/v1/payments${query}`;
    const matching = await matchingTotal(url, input.headers);
    const options: LoadOptions = { url, headers: input.headers, connections: settings.listConnections, durationSeconds: settings.listDurationSeconds };
    await warmUp({ ...options, durationSeconds: settings.listWarmUpSeconds });
    const result = await runLoad(options);
    assertClean(result, url);
    results.push({ label, query: `GET /api/v1/payments${query}`, matching, p50Ms: result.p50Ms, p99Ms: result.p99Ms, requestsPerSecond: result.requestsPerSecond });
  }
  return results;
}

/** One request before the load: checks the page is served and says how many payments the filter matches. */
async function matchingTotal(url: string, headers: Record<string, string>): Promise<number> {
  const response = await fetch(url, { headers });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}: ${text}`);
  const body = JSON.parse(text) as { data: unknown[]; pagination: { total: number } };
  if (body.data.length !== settings.perPage) throw new Error(`GET ${url} returned ${body.data.length} payments, expected a full page`);
  return body.pagination.total;
}

function assertClean(result: LoadResult, url: string): void {
  if (result.failures > 0) throw new Error(`the run against ${url} had failures (${result.failureDetail}); its figures would be meaningless`);
}

function printHeader(db: BenchDatabase, adminUrl: string, load: number[]): void {
  console.log('PayCrypt API benchmark');
  console.log(`machine:   ${os.availableParallelism()} cores (${os.cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, PostgreSQL ${db.serverVersion}`);
  console.log(`load avg:  ${formatLoad(load)} (1, 5, 15 min) at start`);
  console.log(`database:  ${db.name} on ${describeServer(adminUrl)}, created for this run and dropped at its end`);
  console.log(
    'placement: gateway and baseline each in its own child process (one Node event loop each), only one under load at a time;\n' +
      '           autocannon in the parent process; PostgreSQL on the same machine; no CPU pinning: the OS shares the cores among them',
  );
  console.log(`pool:      pg pool of ${settings.poolSize} connections in both the gateway and the baseline\n`);
}

function printReport(input: { rounds: Array<{ gateway: CreateResult; baseline: CreateResult }>; createIdempotent: CreateResult; list: ListCase[]; endLoad: number[] }): boolean {
  const { rounds, createIdempotent, list } = input;
  const create = median(rounds.map((round) => round.gateway));
  const baseline = median(rounds.map((round) => round.baseline));
  const ratio = create.requestsPerSecond / baseline.requestsPerSecond;
  const createPass = ratio >= targets.createRatio;

  console.log(
    `Create payment: ${settings.connections} connections, ${settings.durationSeconds} s each after a ${settings.warmUpSeconds} s warm-up; ` +
      `${settings.createRounds} rounds of gateway then baseline`,
  );
  for (const [index, round] of rounds.entries()) {
    console.log(
      `  round ${index + 1}: gateway ${round.gateway.requestsPerSecond.toFixed(0)} req/s, baseline ${round.baseline.requestsPerSecond.toFixed(0)} req/s ` +
        `(${((round.gateway.requestsPerSecond / round.baseline.requestsPerSecond) * 100).toFixed(0)} %)`,
    );
  }
  console.log(row(['', 'req/s', 'p50 ms', 'p99 ms', 'requests'], [50, 9, 8, 8, 9]));
  const createRow = (label: string, result: LoadResult) =>
    console.log(row([label, result.requestsPerSecond.toFixed(0), ms(result.p50Ms), ms(result.p99Ms), String(result.successes)], [50, 9, 8, 8, 9]));
  createRow('gateway  POST /api/v1/payments (median run)', create);
  createRow('baseline POST /payments, one INSERT (median run)', baseline);
  createRow('gateway  with Idempotency-Key (no target)', createIdempotent);
  console.log('CPU per request in the median runs (from /proc, over the measured 10 s):');
  console.log(`  gateway:  ${formatCpu(create.cpu)}`);
  console.log(`  baseline: ${formatCpu(baseline.cpu)}`);
  console.log(`ratio gateway / baseline: ${(ratio * 100).toFixed(0)} % of the baseline's req/s`);
  console.log(`${verdict(createPass)}  create >= ${targets.createRatio * 100} % of baseline req/s\n`);

  console.log(
    `List payments: ${settings.listPayments.toLocaleString('en')} payments of one merchant, ${settings.perPage} per page, ` +
      `${settings.listConnections} connection, ${settings.listDurationSeconds} s each after a ${settings.listWarmUpSeconds} s warm-up`,
  );
  console.log(row(['case', 'matching', 'req/s', 'p50 ms', 'p99 ms', 'p99 < 20 ms'], [28, 9, 7, 8, 8, 12]));
  let listPass = true;
  for (const item of list) {
    const pass = item.p99Ms < targets.listP99Ms;
    listPass &&= pass;
    console.log(row([item.label, String(item.matching), item.requestsPerSecond.toFixed(0), ms(item.p50Ms), ms(item.p99Ms), verdict(pass)], [28, 9, 7, 8, 8, 12]));
  }
  for (const item of list) console.log(`  ${item.label}: ${item.query}`);
  console.log(`\nload avg:  ${formatLoad(input.endLoad)} (1, 5, 15 min) at the end`);
  return createPass && listPass;
}

function row(cells: string[], widths: number[]): string {
  return cells.map((cell, index) => (index === 0 ? cell.padEnd(widths[index]!) : cell.padStart(widths[index]!))).join(' ');
}

const ms = (value: number) => value.toFixed(2);
const median = <T extends { requestsPerSecond: number }>(runs: T[]) => [...runs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)[Math.floor(runs.length / 2)]!;
const verdict = (pass: boolean) => (pass ? 'PASS' : 'FAIL');
const formatLoad = (load: number[]) => load.map((value) => value.toFixed(2)).join(' ');
const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000);
const isoDay = (date: Date) => date.toISOString().slice(0, 10);

/** Runs `fn` once; later calls get the first call's promise. */
function once(fn: () => Promise<void>): () => Promise<void> {
  let promise: Promise<void> | undefined;
  return () => (promise ??= fn());
}

main().then(
  (passed) => {
    process.exitCode = passed ? 0 : 1;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
