import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { AttemptOutcome } from '../core/webhooks/delivery-queue.ts';
import { guardedLookup, isBlockedAddress, type WebhookUrlPolicy } from '../core/webhooks/url-safety.ts';

/** How much of a receiver's answer is kept in the delivery log. */
export const responseExcerptBytes = 1024;

const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 64 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 64 }),
};

/** The connection-time DNS check of each policy, made once: one per request cost a closure each. */
const lookups: Record<WebhookUrlPolicy, ReturnType<typeof guardedLookup>> = { any: guardedLookup('any'), 'public-https': guardedLookup('public-https') };

type WebhookRequest = { url: string; headers: Record<string, string>; body: string; timeoutMs: number; policy: WebhookUrlPolicy };

/**
 * POSTs one webhook. Never throws: every way a receiver can fail (timeout,
 * refused or reset connection, redirect, non-2xx, a blocked address) comes
 * back as an outcome to log and retry.
 *
 * @dev Redirects are not followed (a 3xx is a failure). Only the first KiB of
 * the answer is read, so a receiver answering with a huge body costs nothing.
 */
export function sendWebhook(input: WebhookRequest): Promise<AttemptOutcome> {
  const startedAt = new Date();
  const started = performance.now();
  let url: URL;
  try {
    url = new URL(input.url);
  } catch {
    return Promise.resolve(attemptOutcome(input.url, startedAt, started, null, null, 'invalid URL'));
  }
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  if (input.policy === 'public-https' && (url.protocol !== 'https:' || (isIP(literal) && isBlockedAddress(literal)))) {
    const refusal = `refused: ${url.protocol !== 'https:' ? 'not https' : `${literal} is not a public address`}`;
    return Promise.resolve(attemptOutcome(input.url, startedAt, started, null, null, refusal));
  }
  return new Promise((resolve) => new WebhookExchange(input, url, startedAt, started, resolve).start());
}

function attemptOutcome(url: string, startedAt: Date, started: number, statusCode: number | null, responseExcerpt: string | null, error: string | null): AttemptOutcome {
  const succeeded = error === null && statusCode !== null && statusCode >= 200 && statusCode < 300;
  return { url, startedAt, durationMs: performance.now() - started, statusCode, responseExcerpt, error, succeeded };
}

/**
 * One request and its answer, settled once: by the answer's end (or its
 * first KiB, or its close), by an error, or by the timeout.
 *
 * @dev A class rather than closures, because this runs once per webhook:
 * the gateway runs its TypeScript through tsx, whose esbuild transform keeps
 * function names by wrapping every named closure in a `__name` call each time
 * it is created. The closures' version cost the sender about 16 µs of CPU
 * more per request than this one (81 against 65, the best of twenty runs of
 * 8,000 requests to a local receiver, 64 in flight); a plain `node:http`
 * POST with the same listeners takes about 63 (docs/benchmarks.md).
 */
class WebhookExchange {
  private settled = false;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private timer: NodeJS.Timeout | undefined;
  private request: http.ClientRequest | undefined;
  private response: http.IncomingMessage | undefined;

  constructor(
    private readonly input: WebhookRequest,
    private readonly url: URL,
    private readonly startedAt: Date,
    private readonly started: number,
    private readonly resolve: (outcome: AttemptOutcome) => void,
  ) {}

  start(): void {
    const protocol = this.url.protocol === 'https:' ? 'https:' : 'http:';
    const headers = { ...this.input.headers, 'content-length': Buffer.byteLength(this.input.body) };
    const request = (protocol === 'https:' ? https : http).request(
      this.url,
      { method: 'POST', headers, agent: agents[protocol], lookup: lookups[this.input.policy] },
      (response) => this.onResponse(response),
    );
    this.request = request;
    this.timer = setTimeout(() => this.onTimeout(), this.input.timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) => this.onError(error));
    request.end(this.input.body);
  }

  private onResponse(response: http.IncomingMessage): void {
    this.response = response;
    response.on('data', (chunk: Buffer) => this.onData(chunk));
    response.on('end', () => this.onAnswer());
    response.on('error', () => this.onAnswer());
    response.on('close', () => this.onAnswer());
  }

  private onData(chunk: Buffer): void {
    if (this.size < responseExcerptBytes) this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size >= responseExcerptBytes) {
      this.onAnswer();
      this.response!.destroy();
    }
  }

  private onAnswer(): void {
    if (this.settled) return;
    const response = this.response!;
    const status = response.statusCode ?? null;
    const excerpt = Buffer.concat(this.chunks).subarray(0, responseExcerptBytes).toString('utf8');
    const redirect = status !== null && status >= 300 && status < 400 ? `redirect to ${response.headers.location ?? '?'} not followed` : null;
    this.settle(status, excerpt, redirect);
  }

  private onTimeout(): void {
    this.request!.destroy(Object.assign(new Error(`timed out after ${this.input.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
  }

  private onError(error: NodeJS.ErrnoException): void {
    this.settle(null, null, error.code && !error.message.includes(error.code) ? `${error.code}: ${error.message}` : error.message);
  }

  private settle(statusCode: number | null, responseExcerpt: string | null, error: string | null): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.resolve(attemptOutcome(this.input.url, this.startedAt, this.started, statusCode, responseExcerpt, error));
  }
}
