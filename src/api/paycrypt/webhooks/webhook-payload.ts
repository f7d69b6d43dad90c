import { createHmac } from 'node:crypto';
import type { WebhookEndpoint } from '../../../core/webhooks/endpoints.ts';
import { formatUnits } from '../../../internal/decimal.ts';
import { isoSeconds, isoSecondsOfText } from '../render.ts';

/** The payment as a `payment.*` event stores it (see `paymentSnapshot`). */
type PaymentSnapshot = {
  id: number;
  transaction_id: string;
  merchant_id: number;
  type: string;
  method: string;
  status: string;
  amount: string;
  currency: string;
  currency_decimals: number;
  crypto: { currency: string; network: string | null; amount: string; decimals: number } | null;
  client_reference: string | null;
  description: string | null;
  created_at: string;
  updated_at: string;
  deposit?: { chain: string; address: string; expiresAt: string | null; requiredConfirmations: number } | null;
  amount_paid?: string;
  settlement?: string;
};

export type StoredEvent = { id: string; type: string; data: unknown; createdAt: Date };

/**
 * The PayCrypt v1 webhook body: `{event_type, payment{…}, timestamp}` as the
 * docs show it, plus `event_id` and exact decimal strings of the amounts.
 *
 * @dev The body is exactly `JSON.stringify` of its object, so a receiver that
 * re-serializes the parsed body (as the docs' Node.js example does) gets the
 * very bytes that were signed. That is why the amounts are plain JSON numbers
 * here; `amount_exact` and `crypto_amount_exact` carry them exactly.
 */
export function renderPayCryptWebhookBody(event: StoredEvent): string {
  const { payment } = event.data as { payment: PaymentSnapshot };
  const amount = formatUnits(BigInt(payment.amount), payment.currency_decimals, payment.currency_decimals);
  const cryptoAmount = payment.crypto ? formatUnits(BigInt(payment.crypto.amount), payment.crypto.decimals) : null;
  return JSON.stringify({
    event_type: event.type,
    event_id: event.id,
    payment: {
      id: payment.id,
      client_id: payment.merchant_id,
      amount: Number(amount),
      currency: payment.currency,
      fiat_amount: Number(amount),
      fiat_currency: payment.currency,
      crypto_amount: cryptoAmount === null ? null : Number(cryptoAmount),
      crypto_currency: payment.crypto?.currency ?? null,
      crypto_network: payment.crypto?.network ?? null,
      status: payment.status,
      payment_method: payment.method,
      type: payment.type,
      transaction_id: payment.transaction_id,
      client_reference: payment.client_reference,
      description: payment.description,
      created_at: isoSecondsOfText(payment.created_at),
      updated_at: isoSecondsOfText(payment.updated_at),
      amount_exact: amount,
      crypto_amount_exact: cryptoAmount,
      ...(payment.deposit && payment.crypto ? depositFields(payment) : {}),
    },
    timestamp: isoSeconds(event.createdAt),
  });
}

export function signPayCryptWebhook(secret: string, timestamp: string, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/**
 * The request for one attempt: headers as documented, signed over
 * `timestamp + "." + body` with the endpoint's secret. During a rotation's
 * overlap `X-Paycrypt-Signature` is still made with the previous secret, so
 * receivers keep working unchanged, and `X-Paycrypt-Signature-Next` carries
 * the signature with the new one.
 */
export function payCryptWebhookRequest(event: StoredEvent, endpoint: WebhookEndpoint, at: Date): { body: string; headers: Record<string, string> } {
  const body = renderPayCryptWebhookBody(event);
  const timestamp = isoSeconds(at);
  const current = signPayCryptWebhook(endpoint.secret, timestamp, body);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'PayCrypt-Webhooks/1',
    'x-paycrypt-event': event.type,
    'x-paycrypt-timestamp': timestamp,
    'x-paycrypt-event-id': event.id,
    'x-paycrypt-signature': current,
  };
  if (endpoint.previousSecret) {
    headers['x-paycrypt-signature'] = signPayCryptWebhook(endpoint.previousSecret.secret, timestamp, body);
    headers['x-paycrypt-signature-next'] = current;
  }
  return { body, headers };
}

/** On-chain payments also carry where they are paid and how much has arrived. */
function depositFields(payment: PaymentSnapshot) {
  const paid = formatUnits(BigInt(payment.amount_paid ?? '0'), payment.crypto!.decimals);
  return {
    address: payment.deposit!.address,
    chain: payment.deposit!.chain,
    settlement: payment.settlement ?? null,
    amount_paid: Number(paid),
    amount_paid_exact: paid,
  };
}
