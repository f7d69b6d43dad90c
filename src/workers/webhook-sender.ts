import { isIP } from 'node:net';
import { Agent, type Dispatcher } from 'undici';
import type { AttemptOutcome } from '../core/webhooks/delivery-queue.ts';
import { guardedLookup, isBlockedAddress, type WebhookUrlPolicy } from '../core/webhooks/url-safety.ts';

/** How much of a receiver's answer is kept in the delivery log. */
export const responseExcerptBytes = 1024;

/**
 * One connection pool per URL policy, each with that policy's connection-time
 * DNS check: keep-alive, up to 64 connections per origin. Redirects are never
 * followed (an undici `Agent` follows none unless told to).
 *
 * @dev undici rather than `node:http`: on a 2-core machine, 64 POSTs in
 * flight to a local receiver cost the sender 23–37 µs of CPU each against
 * 41–70 through `node:http` with a keep-alive agent (docs/benchmarks.md).
 */
const agents: Record<WebhookUrlPolicy, Agent> = {
  any: new Agent({ connections: 64, connect: { lookup: guardedLookup('any') } }),
  'public-https': new Agent({ connections: 64, connect: { lookup: guardedLookup('public-https') } }),
};

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
  return new Promise((resolve) => new WebhookExchange(input, startedAt, started, resolve).start(url));
}

function attemptOutcome(url: string, startedAt: Date, started: number, statusCode: number | null, responseExcerpt: string | null, error: string | null): AttemptOutcome {
  const succeeded = error === null && statusCode !== null && statusCode >= 200 && statusCode < 300;
  return { url, startedAt, durationMs: performance.now() - started, statusCode, responseExcerpt, error, succeeded };
}

/**
 * One request and its answer, as an undici dispatch handler, settled once: by
 * the answer's end (or its first KiB), by an error, or by the timeout.
 *
 * @dev The timeout runs from the call, so it covers waiting for a free
 * connection and connecting too. undici hands over the request's controller
 * only when the request is about to be written; a timeout that fires before
 * that settles the attempt at once and aborts the request as soon as the
 * controller comes, before anything is sent. So nothing is ever sent after
 * an attempt has timed out, and an attempt never outlasts its timeout.
 */
class WebhookExchange implements Dispatcher.DispatchHandler {
  private settled = false;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private statusCode: number | null = null;
  private location: string | undefined;
  private readonly timer: NodeJS.Timeout;
  private controller: Dispatcher.DispatchController | undefined;

  constructor(
    private readonly input: WebhookRequest,
    private readonly startedAt: Date,
    private readonly started: number,
    private readonly resolve: (outcome: AttemptOutcome) => void,
  ) {
    this.timer = setTimeout(() => this.onTimeout(), input.timeoutMs);
  }

  start(url: URL): void {
    const options: Dispatcher.DispatchOptions = { origin: url.origin, path: `${url.pathname}${url.search}`, method: 'POST', headers: this.input.headers, body: this.input.body };
    try {
      agents[this.input.policy].dispatch(options, this);
    } catch (error) {
      this.fail(error as Error);
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) controller.abort(new Error('the attempt timed out before it could be sent'));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.statusCode = statusCode;
    const location = headers.location;
    this.location = Array.isArray(location) ? location[0] : location;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.size < responseExcerptBytes) this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size >= responseExcerptBytes) {
      this.onAnswer();
      controller.abort(new Error('answer read up to the excerpt'));
    }
  }

  onResponseEnd(): void {
    this.onAnswer();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.fail(error);
  }

  private onAnswer(): void {
    if (this.settled) return;
    const status = this.statusCode;
    const excerpt = Buffer.concat(this.chunks).subarray(0, responseExcerptBytes).toString('utf8');
    const redirect = status !== null && status >= 300 && status < 400 ? `redirect to ${this.location ?? '?'} not followed` : null;
    this.settle(status, excerpt, redirect);
  }

  private onTimeout(): void {
    this.settle(null, null, `timed out after ${this.input.timeoutMs} ms`);
    this.controller?.abort(new Error('timed out'));
  }

  private fail(error: NodeJS.ErrnoException): void {
    this.settle(null, null, describeError(error));
  }

  private settle(statusCode: number | null, responseExcerpt: string | null, error: string | null): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.resolve(attemptOutcome(this.input.url, this.startedAt, this.started, statusCode, responseExcerpt, error));
  }
}

/**
 * What the delivery log says of a failed connection: the system's code and
 * message (`ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9`), or undici's
 * own, with the socket error beneath it where there is one.
 */
function describeError(error: NodeJS.ErrnoException): string {
  if (error.code === 'UND_ERR_SOCKET') {
    const cause = (error as { cause?: NodeJS.ErrnoException }).cause;
    return `the receiver closed the connection before answering${cause?.message && cause.message !== error.message ? ` (${cause.message})` : ''}`;
  }
  return error.code && !error.message.includes(error.code) ? `${error.code}: ${error.message}` : error.message;
}
