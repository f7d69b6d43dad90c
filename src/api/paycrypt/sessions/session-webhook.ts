import { createHmac } from 'node:crypto';
import type { PaymentStatus, Settlement } from '../../../core/payments/payment.ts';
import { sessionStatusOf } from '../../../core/payments/payment-sessions.ts';
import type { WebhookEndpoint } from '../../../core/webhooks/endpoints.ts';
import type { WebhookEventType } from '../../../core/webhooks/event-types.ts';
import { formatUnits } from '../../../internal/decimal.ts';
import { parseJson, stringifyJson } from '../../../internal/json.ts';
import type { StoredEvent } from '../webhooks/webhook-payload.ts';

/**
 * Webhooks of payment sessions, sent to the session's `webhook_url` in the
 * shape the Payment Session docs verify: headers `X-Paycrypt-Key` (the API
 * key the session was created with), `X-Paycrypt-Timestamp` (unix seconds)
 * and `X-Paycrypt-Signature`, the hex HMAC-SHA256 of `"<timestamp>.<raw
 * body>"` under that key's secret.
 *
 * The body is `{id, type, created, data}`; `type` names what happened to the
 * session: `payment.pending` (asset chosen, waiting for funds),
 * `payment.confirming` (funds seen, confirming), `payment.underpaid`,
 * `payment.succeeded`, `payment.expired`, `payment.cancelled`,
 * `payment.failed`, `payment.reversed` (a reorg removed a paying transfer)
 * and `payment.late_transfer` (funds after the session ended: recorded, never
 * lost; settle it with the customer).
 */

/** The payment events a session's endpoint takes. */
export const sessionWebhookSourceTypes: readonly WebhookEventType[] = [
  'payment.quoted',
  'payment.detected',
  'payment.underpaid',
  'payment.completed',
  'payment.cancelled',
  'payment.failed',
  'payment.rejected',
  'payment.reversed',
  'payment.late_transfer',
];

type Snapshot = {
  transaction_id: string;
  status: PaymentStatus;
  amount: string;
  currency: string;
  currency_decimals: number;
  crypto: { currency: string; network: string | null; amount: string; decimals: number } | null;
  deposit?: { address: string; chain: string } | null;
  amount_paid?: string;
  amount_detected?: string;
  settlement?: Settlement;
};

/** What a session endpoint's `context` holds: the session's own fields. */
export type SessionWebhookContext = { session_id: string; order_id: string; customer_email: string | null; metadata: unknown };

export function sessionWebhookType(eventType: string, payment: Snapshot): string {
  switch (eventType) {
    case 'payment.quoted':
      return 'payment.pending';
    case 'payment.detected':
      return 'payment.confirming';
    case 'payment.completed':
      return 'payment.succeeded';
    case 'payment.cancelled':
      return payment.settlement === 'expired' ? 'payment.expired' : 'payment.cancelled';
    case 'payment.rejected':
      return 'payment.failed';
    default:
      return eventType;
  }
}

export function renderSessionWebhookBody(event: StoredEvent, contextJson: string): string {
  const data = event.data as { payment: Snapshot; tx_hashes?: string[] };
  const payment = data.payment;
  const context = parseJson(contextJson) as SessionWebhookContext;
  const crypto = payment.crypto;
  const units = (value: string | undefined) => (crypto ? formatUnits(BigInt(value ?? '0'), crypto.decimals) : null);
  const txHashes = data.tx_hashes ?? [];
  return stringifyJson({
    id: event.id,
    type: sessionWebhookType(event.type, payment),
    created: Math.floor(event.createdAt.getTime() / 1000),
    data: {
      object: 'payment_session',
      id: context.session_id,
      order_id: context.order_id,
      status: sessionStatusOf({ status: payment.status, settlement: payment.settlement ?? 'none', crypto: crypto && { ...crypto, amount: BigInt(crypto.amount) } }),
      amount: formatUnits(BigInt(payment.amount), payment.currency_decimals, payment.currency_decimals),
      currency: payment.currency,
      crypto_amount: crypto ? formatUnits(BigInt(crypto.amount), crypto.decimals) : null,
      asset: crypto?.currency ?? null,
      network: crypto?.network ?? null,
      address: payment.deposit?.address ?? null,
      amount_received: units(payment.amount_detected),
      amount_confirmed: units(payment.amount_paid),
      tx_hash: txHashes.at(-1) ?? null,
      tx_hashes: txHashes,
      payment_id: payment.transaction_id,
      customer: context.customer_email === null ? null : { email: context.customer_email },
      metadata: context.metadata,
    },
  });
}

export function signSessionWebhook(secret: string, timestamp: string, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export function sessionWebhookRequest(event: StoredEvent, endpoint: WebhookEndpoint, at: Date): { body: string; headers: Record<string, string> } {
  const body = renderSessionWebhookBody(event, endpoint.context ?? '{}');
  const timestamp = String(Math.floor(at.getTime() / 1000));
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'user-agent': 'PayCrypt-Webhooks/1',
      'x-paycrypt-key': endpoint.signingKey ?? '',
      'x-paycrypt-timestamp': timestamp,
      'x-paycrypt-signature': signSessionWebhook(endpoint.secret, timestamp, body),
      'x-paycrypt-event': sessionWebhookType(event.type, (event.data as { payment: Snapshot }).payment),
      'x-paycrypt-event-id': event.id,
    },
  };
}
