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

/**
 * POSTs one webhook. Never throws: every way a receiver can fail (timeout,
 * refused or reset connection, redirect, non-2xx, a blocked address) comes
 * back as an outcome to log and retry.
 *
 * @dev Redirects are not followed (a 3xx is a failure). Only the first KiB of
 * the answer is read, so a receiver answering with a huge body costs nothing.
 */
export async function sendWebhook(input: {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  policy: WebhookUrlPolicy;
}): Promise<AttemptOutcome> {
  const startedAt = new Date();
  const started = performance.now();
  const finish = (fields: Pick<AttemptOutcome, 'statusCode' | 'responseExcerpt' | 'error'>): AttemptOutcome => ({
    url: input.url,
    startedAt,
    durationMs: performance.now() - started,
    succeeded: fields.error === null && fields.statusCode !== null && fields.statusCode >= 200 && fields.statusCode < 300,
    ...fields,
  });

  let url: URL;
  try {
    url = new URL(input.url);
  } catch {
    return finish({ statusCode: null, responseExcerpt: null, error: 'invalid URL' });
  }
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  if (input.policy === 'public-https' && (url.protocol !== 'https:' || (isIP(literal) && isBlockedAddress(literal)))) {
    return finish({ statusCode: null, responseExcerpt: null, error: `refused: ${url.protocol !== 'https:' ? 'not https' : `${literal} is not a public address`}` });
  }
  const transport = url.protocol === 'https:' ? https : http;

  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: AttemptOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const request = transport.request(
      url,
      {
        method: 'POST',
        headers: { ...input.headers, 'content-length': Buffer.byteLength(input.body) },
        agent: agents[url.protocol as 'http:' | 'https:'],
        lookup: guardedLookup(input.policy),
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () =>
          settle(
            finish({
              statusCode: response.statusCode ?? null,
              responseExcerpt: Buffer.concat(chunks).subarray(0, responseExcerptBytes).toString('utf8'),
              error: response.statusCode !== undefined && response.statusCode >= 300 && response.statusCode < 400 ? `redirect to ${response.headers.location ?? '?'} not followed` : null,
            }),
          );
        response.on('data', (chunk: Buffer) => {
          if (size < responseExcerptBytes) chunks.push(chunk);
          size += chunk.length;
          if (size >= responseExcerptBytes) {
            done();
            response.destroy();
          }
        });
        response.on('end', done);
        response.on('error', done);
        response.on('close', done);
      },
    );
    const timer = setTimeout(() => {
      request.destroy(Object.assign(new Error(`timed out after ${input.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, input.timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) => {
      settle(finish({ statusCode: null, responseExcerpt: null, error: error.code && !error.message.includes(error.code) ? `${error.code}: ${error.message}` : error.message }));
    });
    request.end(input.body);
  });
}
