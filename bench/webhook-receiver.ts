import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The merchant's side of the webhook benchmark: a plain node:http server on
 * 127.0.0.1 that answers 200 with an empty body as soon as a request's body
 * has been read, and does as little else as it can, so that what is measured
 * is the sender and not the receiver.
 *
 * It counts arrivals per phase. Deliveries are at least once, so a phase is
 * complete when every distinct event id it expects has arrived; repeats are
 * counted apart (also after completion, until the phase ends). Between
 * phases each webhook is matched to its payment for the latency runs. Only
 * requests to `/webhooks` count: the baseline's warm-up goes to another path.
 */

export const webhookPath = '/webhooks';

/** One captured request: what the baseline sends again, byte for byte. */
export type CapturedRequest = { headers: Record<string, string>; body: string };

type Phase = {
  expected: number;
  seen: Set<string>;
  repeats: number;
  /** performance.now() of the arrival that completed the phase. */
  completedAt: number | undefined;
  /** Each first arrival's raw header list and body, made into `CapturedRequest`s once the phase is complete. */
  capture: Array<{ rawHeaders: string[]; body: string }> | undefined;
  done: () => void;
};

export type WebhookReceiver = {
  url: string;
  /**
   * Starts counting toward `expected` distinct event ids; `capture` keeps each
   * first arrival's headers and body. Resolves with the completing arrival's
   * time, or rejects after `timeoutMs`.
   */
  expect(input: { expected: number; capture?: boolean; timeoutMs: number }): {
    completed: Promise<{ completedAt: number; repeats: number; captured: CapturedRequest[] }>;
    /** Repeats so far, including those that arrive after completion. */
    repeats: () => number;
  };
  /** Stops counting: webhooks are matched to payments again (see `arrivalOf`). */
  endPhase(): void;
  /** Resolves with the arrival time (performance.now()) of the `payment.created` webhook of payment `paymentId`. */
  arrivalOf(paymentId: number, timeoutMs: number): Promise<number>;
  close(): Promise<void>;
};

/** The headers a webhook is made of; connection-level ones (host, content-length, connection) are the sender's own. */
const webhookHeader = /^(content-type|user-agent|x-paycrypt-.*)$/;

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  let phase: Phase | undefined;
  const arrivals = new Map<number, number>();
  const arrivalWaiters = new Map<number, (at: number) => void>();

  function count(request: http.IncomingMessage, body: string, at: number): void {
    const eventId = request.headers['x-paycrypt-event-id'];
    if (typeof eventId !== 'string') return;
    if (phase) countInPhase(phase, request, eventId, body, at);
    else noteArrival(body, at);
  }

  function countInPhase(current: Phase, request: http.IncomingMessage, eventId: string, body: string, at: number): void {
    if (current.seen.has(eventId)) {
      current.repeats += 1;
      return;
    }
    current.seen.add(eventId);
    // Note: kept as they came; picking the webhook's headers waits until the phase is complete, out of the timed window.
    current.capture?.push({ rawHeaders: request.rawHeaders, body });
    if (current.seen.size === current.expected) {
      current.completedAt = at;
      current.done();
    }
  }

  // Note: outside a counted phase (the latency runs) the body is parsed to
  // find which payment the webhook is about; a counted phase never parses.
  function noteArrival(body: string, at: number): void {
    const parsed = JSON.parse(body) as { event_type?: string; payment?: { id?: number } };
    const paymentId = parsed.payment?.id;
    if (parsed.event_type !== 'payment.created' || typeof paymentId !== 'number' || arrivals.has(paymentId)) return;
    arrivals.set(paymentId, at);
    arrivalWaiters.get(paymentId)?.(at);
    arrivalWaiters.delete(paymentId);
  }

  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const at = performance.now();
      response.writeHead(200, { 'content-length': '0' }).end();
      if (request.url === webhookPath) count(request, Buffer.concat(chunks).toString('utf8'), at);
    });
  });
  // Note: as many sockets as the senders open stay open between requests (keep-alive on both sides).
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}${webhookPath}`,
    expect({ expected, capture = false, timeoutMs }) {
      let done!: () => void;
      const finished = new Promise<void>((resolve) => (done = resolve));
      const current: Phase = { expected, seen: new Set(), repeats: 0, completedAt: undefined, capture: capture ? [] : undefined, done };
      phase = current;
      const completed = withTimeout(finished, timeoutMs, () => `${current.seen.size} of ${expected} webhooks arrived within ${timeoutMs / 1000} s`).then(
        () => ({
          completedAt: current.completedAt!,
          repeats: current.repeats,
          captured: (current.capture ?? []).map(({ rawHeaders, body }) => ({ headers: webhookHeaders(rawHeaders), body })),
        }),
      );
      // Note: a step that fails before awaiting this must not leave an unhandled rejection behind.
      completed.catch(() => {});
      return { completed, repeats: () => current.repeats };
    },
    endPhase() {
      phase = undefined;
    },
    arrivalOf(paymentId, timeoutMs) {
      const known = arrivals.get(paymentId);
      if (known !== undefined) return Promise.resolve(known);
      const arrived = new Promise<number>((resolve) => arrivalWaiters.set(paymentId, resolve));
      return withTimeout(arrived, timeoutMs, () => `the webhook of payment ${paymentId} did not arrive within ${timeoutMs} ms`);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function webhookHeaders(rawHeaders: readonly string[]): Record<string, string> {
  const kept: Record<string, string> = {};
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const name = rawHeaders[index]!.toLowerCase();
    if (webhookHeader.test(name)) kept[name] = rawHeaders[index + 1]!;
  }
  return kept;
}

/** `promise`, or a rejection after `timeoutMs`; the timer alone does not keep the process alive. */
function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message())), timeoutMs).unref()));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
