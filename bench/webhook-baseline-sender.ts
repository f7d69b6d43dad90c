import fs from 'node:fs';
import http from 'node:http';
import { Agent } from 'undici';
import type { CapturedRequest } from './webhook-receiver.ts';

/**
 * The baseline of the webhook benchmark, in a child process of its own like
 * the gateway: plain HTTP POSTs of the very requests the gateway delivered
 * (same headers, same bodies) to the same receiver, with as many in flight as
 * the dispatcher may have at one endpoint, over a keep-alive agent like the
 * webhook sender's. No queue, no database, no signing: what sending alone
 * costs on this machine.
 *
 * `BENCH_CLIENT` picks the HTTP client: `node:http` (Node's own, the
 * baseline the target is judged against) or `undici` (the client the webhook
 * sender uses, through its plain `request` API), for context: how much of the
 * gap is the queue's own work rather than the client's.
 *
 * Protocol with bench/webhook-baseline.ts over the IPC channel: the child
 * warms up, sends `{type: 'ready'}`, sends everything on `'go'`, then
 * `{type: 'done', failures}`. It exits when the parent goes away.
 */

const receiverUrl = new URL(requireEnv('BENCH_RECEIVER_URL'));
const concurrency = Number(requireEnv('BENCH_CONCURRENCY'));
const warmUpCount = Number(requireEnv('BENCH_WARM_UP'));
const requests = JSON.parse(fs.readFileSync(requireEnv('BENCH_REQUESTS_FILE'), 'utf8')) as CapturedRequest[];
const client = requireEnv('BENCH_CLIENT');
if (client !== 'node:http' && client !== 'undici') throw new Error(`BENCH_CLIENT must be node:http or undici, not ${client}`);

// Note: keep-alive with up to 64 connections per host, as the webhook sender's pool.
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const pool = new Agent({ connections: 64 });

/** One POST through `node:http`; resolves with whether the receiver answered 2xx. Reads the whole answer, as the sender does. */
function postWithNodeHttp(path: string, request: CapturedRequest): Promise<boolean> {
  return new Promise((resolve) => {
    const outgoing = http.request(
      receiverUrl,
      { method: 'POST', path, agent, headers: { ...request.headers, 'content-length': Buffer.byteLength(request.body) } },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode !== undefined && response.statusCode >= 200 && response.statusCode < 300));
        response.on('error', () => resolve(false));
      },
    );
    outgoing.on('error', () => resolve(false));
    outgoing.end(request.body);
  });
}

/** The same through undici's `request`. */
async function postWithUndici(path: string, request: CapturedRequest): Promise<boolean> {
  try {
    const response = await pool.request({ origin: receiverUrl.origin, path, method: 'POST', headers: request.headers, body: request.body });
    await response.body.dump();
    return response.statusCode >= 200 && response.statusCode < 300;
  } catch {
    return false;
  }
}

const post = client === 'undici' ? postWithUndici : postWithNodeHttp;

/** Sends every request with `concurrency` in flight; returns how many failed. */
async function sendAll(path: string, batch: readonly CapturedRequest[]): Promise<number> {
  let next = 0;
  let failures = 0;
  async function lane() {
    while (next < batch.length) {
      const request = batch[next++]!;
      if (!(await post(path, request))) failures += 1;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  return failures;
}

if (!process.send) throw new Error('this sender is meant to be started by bench/webhooks.bench.ts');
process.on('disconnect', () => process.exit(0));
// Note: the warm-up goes to another path, which the receiver answers but does not count.
await sendAll('/warm-up', requests.slice(0, warmUpCount));
process.on('message', (message) => {
  if (message !== 'go') return;
  void sendAll(receiverUrl.pathname, requests).then((failures) => process.send!({ type: 'done', failures }));
});
process.send({ type: 'ready' });

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}
