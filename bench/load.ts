import autocannon, { type Request } from 'autocannon';

/**
 * One load run with autocannon, and the figures the benchmark reports.
 *
 * @dev Latencies are taken from autocannon's per-response event, which carries
 * the response time with sub-millisecond precision; its own histogram keeps
 * whole milliseconds only, too coarse for list requests of a few ms.
 */

export type LoadOptions = {
  url: string;
  connections: number;
  durationSeconds: number;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (request: Request) => Request;
};

export type LoadResult = {
  /** Successful (2xx) responses per second over the run. */
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  successes: number;
  /** Responses other than 2xx, connection errors and timeouts: any of them spoils the run. */
  failures: number;
  failureDetail: string;
};

/** Sends load for `durationSeconds` and measures it. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  const instance = autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.durationSeconds,
    method: options.method ?? 'GET',
    headers: options.headers ?? {},
    ...(options.body !== undefined ? { body: options.body } : {}),
    ...(options.setupRequest ? { setupRequest: options.setupRequest } : {}),
    timeout: 10,
  });
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
    if (statusCode >= 200 && statusCode < 300) latencies.push(responseTimeMs);
  });
  const result = await instance;
  const failures = result.non2xx + result.errors + result.timeouts;
  const statuses = Object.entries(result.statusCodeStats)
    .filter(([code]) => !code.startsWith('2'))
    .map(([code, { count }]) => `${count}× HTTP ${code}`);
  if (result.errors > 0) statuses.push(`${result.errors} errors`);
  if (result.timeouts > 0) statuses.push(`${result.timeouts} timeouts`);
  latencies.sort((a, b) => a - b);
  return {
    requestsPerSecond: latencies.length / result.duration,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    successes: latencies.length,
    failures,
    failureDetail: statuses.join(', '),
  };
}

/** Warms the server's code paths and the database's caches; the figures are thrown away. */
export async function warmUp(options: LoadOptions): Promise<void> {
  const result = await runLoad(options);
  if (result.failures > 0) throw new Error(`warm-up against ${options.url} failed: ${result.failureDetail}`);
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}
