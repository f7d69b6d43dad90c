import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, FastifyReply } from 'fastify';
import encodeQR from 'qr';
import type { ApiContext } from '../../api/context.ts';
import { paymentUriOf } from '../../api/paycrypt/sessions/payment-sessions.routes.ts';
import { choosePaymentSessionAsset, findPaymentSession, type PaymentSession } from '../../core/payments/payment-sessions.ts';
import { acceptedAssets } from '../../core/merchant-assets.ts';
import { findPaymentByTransactionId } from '../../core/payments/query-payments.ts';
import { formatUnits } from '../../internal/decimal.ts';
import { isPayCryptError } from '../../internal/errors.ts';
import { paymentPageContentSecurityPolicy, renderCheckoutPage } from '../checkout-page.ts';
import { checkoutStateOf } from './checkout-state.ts';
import { type AssetChoice, escapeHtml, renderSessionPage } from './session-page.ts';

/**
 * The hosted checkout at `/checkout/{id}`: a payment session's page (`ps_…`)
 * or a v1 on-chain payment's page (`pay_…`), their script and stylesheet,
 * the QR code, live status over server-sent events, and the forms the
 * customer submits (choosing the asset; in `paycrypt dev`, paying with the dev
 * wallet).
 *
 * @dev The id in the URL is the capability (20 random characters): the pages
 * show only what the customer needs to pay. Everything is served from the
 * gateway's origin under a Content-Security-Policy that allows nothing else.
 */
const assets = {
  'checkout.js': { type: 'text/javascript; charset=utf-8', body: fs.readFileSync(new URL('./assets/checkout.js', import.meta.url)) },
  'checkout.css': { type: 'text/css; charset=utf-8', body: fs.readFileSync(new URL('./assets/checkout.css', import.meta.url)) },
} as const;

export const checkoutContentSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/** How often a live status stream looks at the session, and sends a comment to keep the connection open. */
const streamPollMs = 1_000;
const streamKeepAliveMs = 15_000;

export function checkoutPages(context: ApiContext) {
  const { db } = context.storage;
  return async function plugin(app: FastifyInstance) {
    // Note: the checkout's forms post urlencoded fields; nowhere else takes them.
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    app.addHook('onSend', async (_request, reply) => {
      if (!reply.hasHeader('content-security-policy')) reply.header('content-security-policy', checkoutContentSecurityPolicy);
      reply
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('x-frame-options', 'DENY');
    });

    const streams = new Set<FastifyReply>();
    app.addHook('preClose', async () => {
      for (const reply of streams) reply.raw.end();
    });

    app.get<{ Params: { file: string } }>('/checkout/assets/:file', async (request, reply) => {
      const asset = assets[request.params.file as keyof typeof assets];
      if (!asset) return notFound(reply);
      return reply.type(asset.type).header('cache-control', 'public, max-age=300').send(asset.body);
    });

    app.get<{ Params: { id: string } }>('/checkout/:id', async (request, reply) => {
      const { id } = request.params;
      if (id.startsWith('pay_')) {
        const payment = /^pay_[0-9a-z]{1,64}$/.test(id) ? await findPaymentByTransactionId(db, id) : undefined;
        if (!payment?.deposit || !payment.crypto) return notFound(reply);
        return html(reply.header('content-security-policy', paymentPageContentSecurityPolicy), 200, renderCheckoutPage(payment));
      }
      const session = await findPaymentSession(db, { id });
      if (!session) return notFound(reply);
      return html(reply, 200, await sessionPage(session));
    });

    app.post<{ Params: { id: string }; Body: Record<string, string> | undefined }>('/checkout/:id/asset', async (request, reply) => {
      if (!sameOrigin(request.headers)) return html(reply, 403, simplePage('This form must be sent from the checkout page.'));
      const session = await findPaymentSession(db, { id: request.params.id });
      if (!session) return notFound(reply);
      const [network, symbol] = String(request.body?.asset ?? '').split(':');
      const offered = (await choicesFor(session)).some((choice) => choice.network === network && choice.symbol === symbol);
      if (!offered) return html(reply, 400, await sessionPage(session, 'Choose one of the currencies listed.'));
      try {
        await choosePaymentSessionAsset({ db, quoter: context.quoter, chains: context.chains, lockMs: context.config.sessions.quoteLockMs }, { id: session.id, network: network!, symbol: symbol! });
      } catch (error) {
        if (!isPayCryptError(error)) throw error;
        const current = (await findPaymentSession(db, { id: session.id }))!;
        return html(reply, error.status, await sessionPage(current, error.message));
      }
      return reply.code(303).header('location', `/checkout/${session.id}`).send();
    });

    app.get<{ Params: { id: string } }>('/checkout/:id/qr.svg', async (request, reply) => {
      const session = await findPaymentSession(db, { id: request.params.id });
      const uri = session && paymentUriOf(context, session);
      if (!session || !uri) return notFound(reply);
      const svg = encodeQR(uri, 'svg', { ecc: 'medium', border: 2, optimize: true }).replace('<svg ', '<svg role="img" shape-rendering="crispEdges" ');
      return reply.type('image/svg+xml').header('cache-control', 'no-store').send(svg);
    });

    app.get<{ Params: { id: string } }>('/checkout/:id/events', async (request, reply) => {
      const session = await findPaymentSession(db, { id: request.params.id });
      if (!session) return notFound(reply);
      reply.hijack();
      const response = reply.raw;
      response.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-content-type-options': 'nosniff',
      });
      streams.add(reply);
      let open = true;
      response.on('close', () => {
        open = false;
        streams.delete(reply);
      });
      let sent = '';
      let quietSince = Date.now();
      // Note: each stream looks at its session once a second; a checkout page
      // is one customer, and the status moves at the pace of blocks.
      while (open) {
        try {
          const current = await findPaymentSession(db, { id: session.id });
          const state = await checkoutStateOf(db, current!);
          const json = JSON.stringify(state);
          if (json !== sent) {
            response.write(`data: ${json}\n\n`);
            sent = json;
            quietSince = Date.now();
          } else if (Date.now() - quietSince > streamKeepAliveMs) {
            response.write(': keep-alive\n\n');
            quietSince = Date.now();
          }
          if (!state.open) break;
        } catch (error) {
          request.log.warn({ err: error, session_id: session.id }, 'checkout status stream could not read the session; retrying');
        }
        await sleep(streamPollMs);
      }
      response.end();
    });

    app.post<{ Params: { id: string }; Body: Record<string, string> | undefined }>('/checkout/:id/dev-pay', async (request, reply) => {
      const wallet = context.devWallet;
      if (!wallet) return notFound(reply);
      if (!sameOrigin(request.headers)) return html(reply, 403, simplePage('This form must be sent from the checkout page.'));
      const session = await findPaymentSession(db, { id: request.params.id });
      const { crypto, deposit } = session?.payment ?? {};
      const asset = crypto?.network ? context.chains.resolve(crypto.network, crypto.currency) : undefined;
      if (!session || !crypto || !deposit || !asset || asset === 'unknown_asset' || !wallet.chains.includes(asset.chain)) return notFound(reply);
      const remaining = crypto.amount - session.payment.amountDetected;
      if (remaining > 0n) {
        const { txHash } = await wallet.pay({ chain: asset.chain, contract: asset.contract, to: deposit.address, amount: remaining });
        request.log.info({ session_id: session.id, tx_hash: txHash, amount: formatUnits(remaining, crypto.decimals) }, 'paid with the dev wallet');
      }
      if (request.body?.via === 'script') return reply.code(204).send();
      return reply.code(303).header('location', `/checkout/${session.id}`).send();
    });
  };

  /** The assets the session's merchant accepts, each with what the order costs in it now; those without a price are left out. */
  async function choicesFor(session: PaymentSession): Promise<AssetChoice[]> {
    const { payment } = session;
    const accepted = await acceptedAssets(db, context.chains, session.merchantId);
    return Promise.all(
      accepted.map(async (asset) => {
        const quote = await context.quoter
          .quote({ amount: payment.amount, currency: payment.currency, currencyDecimals: payment.currencyDecimals, cryptoCurrency: asset.symbol, cryptoDecimals: asset.decimals })
          .catch(() => undefined);
        return { network: asset.network, symbol: asset.symbol, estimate: quote ? formatUnits(quote.cryptoAmount, asset.decimals) : null };
      }),
    ).then((choices) => choices.filter((choice) => choice.estimate !== null));
  }

  async function sessionPage(session: PaymentSession, notice?: string): Promise<string> {
    return renderSessionPage({
      session,
      state: await checkoutStateOf(db, session),
      choices: session.status === 'created' ? await choicesFor(session) : [],
      devWallet: context.devWallet !== undefined,
      notice,
    });
  }
}

function html(reply: FastifyReply, status: number, page: string) {
  return reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page);
}

function simplePage(message: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>PayCrypt</title><link rel="stylesheet" href="/checkout/assets/checkout.css"></head><body><main><p class="notice">${escapeHtml(message)}</p></main></body></html>`;
}

function notFound(reply: FastifyReply) {
  return html(reply, 404, simplePage('No such payment. Check the link the merchant gave you.'));
}

/**
 * A form post from another site is refused: browsers say where a request
 * comes from in `Sec-Fetch-Site` (or at least `Origin`).
 */
function sameOrigin(headers: Record<string, string | string[] | undefined>): boolean {
  const site = headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin' || site === 'none';
  const origin = headers.origin;
  if (typeof origin !== 'string' || origin === 'null') return origin === undefined;
  return new URL(origin).host === headers.host;
}
