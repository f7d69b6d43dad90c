import { type PaymentSession, paymentTransfers } from '../../core/payments/payment-sessions.ts';
import { floorDiv, formatUnits, parseDecimal } from '../../internal/decimal.ts';
import type { Db } from '../../storage/database.ts';

/**
 * What the checkout shows of a session, in plain words and exact amounts:
 * rendered into the page and sent again over server-sent events each time
 * it changes. Holds only what the customer needs to pay.
 */
export type CheckoutState = {
  status: PaymentSession['status'];
  /** One sentence saying where the payment is and what to do next. */
  message: string;
  tone: 'info' | 'done' | 'problem';
  /** Which step of waiting → detected → confirming → paid the payment is at (0-based), or null when it left that path. */
  step: number | null;
  asset: string | null;
  network: string | null;
  address: string | null;
  amountDue: string | null;
  amountReceived: string | null;
  amountRemaining: string | null;
  /** The locked quote in words: `1 USDT = 1.00 USD`, with the fee when there is one. */
  rate: string | null;
  confirmations: { current: number; required: number } | null;
  /** Unix seconds until which the customer can pay (or choose an asset); null once the session is over. */
  deadline: number | null;
  /** Where the page sends the customer once paid. */
  redirectUrl: string | null;
  /** Whether the QR code and address are still to be paid to. */
  open: boolean;
};

export const checkoutSteps = ['Waiting for payment', 'Payment detected', 'Confirming', 'Paid'] as const;

export async function checkoutStateOf(db: Db, session: PaymentSession): Promise<CheckoutState> {
  const { payment } = session;
  const crypto = payment.crypto;
  const units = (value: bigint) => (crypto ? formatUnits(value, crypto.decimals) : null);
  const transfers = crypto ? await paymentTransfers(db, payment.id) : [];
  const unconfirmed = transfers.filter((transfer) => transfer.state === 'detected' && transfer.asset === crypto?.currency);
  const required = payment.deposit?.requiredConfirmations ?? 1;
  const confirmations = unconfirmed.length > 0 ? { current: Math.min(...unconfirmed.map((transfer) => transfer.confirmations)), required } : null;
  const remaining = crypto && crypto.amount > payment.amountPaid ? crypto.amount - payment.amountPaid : 0n;
  const overpaid = crypto && payment.amountPaid > crypto.amount ? payment.amountPaid - crypto.amount : 0n;
  const asset = crypto?.currency ?? '';
  const open = session.status === 'created' || session.status === 'pending' || session.status === 'confirming' || session.status === 'underpaid';

  let message: string;
  let tone: CheckoutState['tone'] = 'info';
  let step: number | null = null;
  switch (session.status) {
    case 'created':
      message = 'Choose the currency and network you want to pay with.';
      break;
    case 'pending':
      message = `Waiting for your payment. Send exactly ${units(crypto!.amount)} ${asset} to the address below.`;
      step = 0;
      break;
    case 'confirming':
      message = confirmations
        ? `Payment detected. Waiting for confirmations: ${confirmations.current} of ${confirmations.required}.`
        : 'Payment detected. Waiting for confirmations.';
      step = confirmations && confirmations.current > 1 ? 2 : 1;
      break;
    case 'underpaid':
      message = `We received ${units(payment.amountPaid)} ${asset}, less than the ${units(crypto!.amount)} ${asset} due. Send the remaining ${units(remaining)} ${asset} to the same address before the time runs out.`;
      tone = 'problem';
      step = 0;
      break;
    case 'succeeded':
      message =
        overpaid > 0n
          ? `Paid. You sent ${units(overpaid)} ${asset} more than the amount due; the merchant has been told and will settle the difference with you.`
          : 'Paid. Thank you!';
      tone = 'done';
      step = 3;
      break;
    case 'expired':
      message =
        payment.amountDetected > 0n
          ? `The time to pay ran out before the full amount arrived (${units(payment.amountDetected)} ${asset} received). The funds are recorded and the merchant has been told; contact the merchant to settle them. Do not send more to this address.`
          : 'This payment has expired: the time to pay ran out. Do not send funds to this address. If you already sent some, they are recorded and the merchant has been told; contact the merchant.';
      tone = 'problem';
      break;
    case 'cancelled':
      message = 'This payment was cancelled. Do not send funds to this address.';
      tone = 'problem';
      break;
    default:
      message = 'This payment was closed by the merchant. Do not send funds to this address.';
      tone = 'problem';
  }
  return {
    status: session.status,
    message,
    tone,
    step,
    asset: crypto?.currency ?? null,
    network: crypto?.network ?? null,
    address: payment.deposit?.address ?? null,
    amountDue: crypto ? units(crypto.amount) : null,
    amountReceived: crypto ? units(payment.amountDetected) : null,
    amountRemaining: crypto ? units(remaining) : null,
    rate: crypto && payment.quote ? rateText(crypto.currency, payment.currency, payment.currencyDecimals, payment.quote) : null,
    confirmations,
    deadline: open && session.expiresAt ? Math.floor(session.expiresAt.getTime() / 1000) : null,
    redirectUrl: session.status === 'succeeded' && session.successUrl ? withSessionId(session.successUrl, session.id) : null,
    open,
  };
}

/** The success URL with `session_id` added to its query, so the merchant's page knows which session returned. */
export function withSessionId(url: string, sessionId: string): string {
  const target = new URL(url);
  target.searchParams.set('session_id', sessionId);
  return target.toString();
}

/**
 * One unit of the asset in the order's currency, from the quote's two USD
 * values, rounded down to 6 decimals (shown to the customer, never used to
 * compute an amount).
 */
function rateText(asset: string, currency: string, currencyDecimals: number, quote: { cryptoUsd: string; fiatUsd: string; feeBps: number }): string | null {
  const assetUsd = parseDecimal(quote.cryptoUsd);
  const currencyUsd = parseDecimal(quote.fiatUsd);
  if (!assetUsd || !currencyUsd || currencyUsd.units === 0n) return null;
  const places = Math.max(6, currencyDecimals);
  const scaled = floorDiv(assetUsd.units * 10n ** BigInt(currencyUsd.scale + places), currencyUsd.units * 10n ** BigInt(assetUsd.scale));
  const fee = quote.feeBps > 0 ? ` (fee ${formatUnits(BigInt(quote.feeBps), 2)} %)` : '';
  return `1 ${asset} = ${formatUnits(scaled, places, currencyDecimals)} ${currency}${fee}`;
}
