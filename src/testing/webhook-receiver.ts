import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real HTTP server that receives webhooks for tests. It records every
 * request (headers and exact body bytes) and answers as `respond` says:
 * a status, a delay, a redirect, a huge body, a hang or a reset connection.
 */
export type ReceivedWebhook = { headers: http.IncomingHttpHeaders; body: string; receivedAt: number };

export type ReceiverBehaviour =
  | { status: number; body?: string; delayMs?: number; headers?: Record<string, string> }
  | { hang: true }
  | { reset: true }
  | { hugeBodyBytes: number; status?: number };

export type WebhookReceiver = {
  url: string;
  received: ReceivedWebhook[];
  /** Chooses the answer to the n-th request (0-based); 200 "ok" by default. */
  respond: (request: ReceivedWebhook, index: number) => ReceiverBehaviour;
  /** Resolves once `count` requests have arrived, or rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedWebhook[]>;
  close(): Promise<void>;
};

export async function startWebhookReceiver(path = '/webhook'): Promise<WebhookReceiver> {
  const waiters: Array<() => void> = [];
  const receiver: WebhookReceiver = {
    url: '',
    received: [],
    respond: () => ({ status: 200, body: 'ok' }),
    async waitFor(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (receiver.received.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`expected ${count} webhooks, received ${receiver.received.length}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return receiver.received.slice(0, count);
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const webhook: ReceivedWebhook = { headers: request.headers, body: Buffer.concat(chunks).toString('utf8'), receivedAt: Date.now() };
      const index = receiver.received.length;
      receiver.received.push(webhook);
      for (const wake of waiters.splice(0)) wake();
      const behaviour = receiver.respond(webhook, index);
      if ('hang' in behaviour) return;
      if ('reset' in behaviour) return request.socket.destroy();
      if ('hugeBodyBytes' in behaviour) {
        response.writeHead(behaviour.status ?? 200, { 'content-type': 'text/plain' });
        const block = Buffer.alloc(64 * 1024, 'x');
        let sent = 0;
        const pump = () => {
          while (sent < behaviour.hugeBodyBytes) {
            sent += block.length;
            if (!response.write(block)) return response.once('drain', pump);
          }
          response.end();
        };
        response.on('error', () => {});
        return pump();
      }
      setTimeout(() => {
        response.writeHead(behaviour.status, behaviour.headers);
        response.end(behaviour.body ?? '');
      }, behaviour.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
  return receiver;
}
