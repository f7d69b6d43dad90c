import { z } from 'zod';
import { type PaymentSession, sessionMetadata, sessionStatuses } from '../../../core/payments/payment-sessions.ts';
import { formatUnits } from '../../../internal/decimal.ts';
import type { DepositAsset } from '../../../core/deposits/deposit-chains.ts';

export type SessionTransfer = { tx_hash: string; amount: string; state: string; confirmations: number };

/** Unix seconds, as the Payment Session docs give times. */
export const unixSeconds = (date: Date) => Math.floor(date.getTime() / 1000);

/**
 * A payment session as the API shows it: the documented `id`, `status`,
 * `checkout_url` and `expires_at` (unix seconds), then everything the
 * merchant sent and, once the customer has chosen an asset, the on-chain side
 * (`payment`). Amounts are decimal strings, as the merchant sends them.
 */
export function renderSession(session: PaymentSession, options: { publicUrl: string; transfers?: SessionTransfer[]; paymentUri?: string | null }) {
  const { payment } = session;
  const crypto = payment.crypto;
  const deadline = session.expiresAt;
  return {
    id: session.id,
    object: 'payment_session',
    status: session.status,
    checkout_url: checkoutUrl(options.publicUrl, session.id),
    expires_at: deadline && unixSeconds(deadline),
    order_id: session.orderId,
    amount: formatUnits(payment.amount, payment.currencyDecimals, payment.currencyDecimals),
    currency: payment.currency,
    customer: session.customerEmail === null ? null : { email: session.customerEmail },
    metadata: sessionMetadata(session),
    success_url: session.successUrl,
    cancel_url: session.cancelUrl,
    webhook_url: session.webhookUrl,
    payment_id: payment.transactionId,
    created_at: unixSeconds(session.createdAt),
    payment:
      crypto && payment.deposit
        ? {
            asset: crypto.currency,
            network: crypto.network,
            address: payment.deposit.address,
            amount: formatUnits(crypto.amount, crypto.decimals),
            amount_received: formatUnits(payment.amountDetected, crypto.decimals),
            amount_confirmed: formatUnits(payment.amountPaid, crypto.decimals),
            amount_remaining: formatUnits(crypto.amount > payment.amountPaid ? crypto.amount - payment.amountPaid : 0n, crypto.decimals),
            amount_overpaid: formatUnits(payment.amountPaid > crypto.amount ? payment.amountPaid - crypto.amount : 0n, crypto.decimals),
            required_confirmations: payment.deposit.requiredConfirmations,
            rate: payment.quote ? { asset_usd: payment.quote.cryptoUsd, currency_usd: payment.quote.fiatUsd, fee_bps: payment.quote.feeBps, source: payment.quote.source } : null,
            quoted_at: payment.quote ? unixSeconds(payment.quote.quotedAt) : null,
            quote_expires_at: deadline && unixSeconds(deadline),
            payment_uri: options.paymentUri ?? null,
            transactions: options.transfers ?? [],
          }
        : null,
  };
}

export function checkoutUrl(publicUrl: string, sessionId: string): string {
  return `${publicUrl}/checkout/${sessionId}`;
}

/**
 * The payment URI a wallet opens from the QR code (EIP-681): for a token,
 * a `transfer` call on its contract; for the native coin, a plain value
 * transfer. Amounts in base units.
 */
export function evmPaymentUri(asset: Pick<DepositAsset, 'contract'> & { chainId: number }, address: string, amount: bigint): string {
  return asset.contract
    ? `ethereum:${asset.contract}@${asset.chainId}/transfer?address=${address}&uint256=${amount}`
    : `ethereum:${address}@${asset.chainId}?value=${amount}`;
}

/** The documented response shape, for the OpenAPI document. */
export const sessionResponseSchema = z.object({
  id: z.string().meta({ example: 'ps_abcd1234ef56' }),
  object: z.literal('payment_session'),
  status: z.enum(sessionStatuses),
  checkout_url: z.string(),
  expires_at: z.number().int().nullable().meta({ description: 'Unix seconds: until then the customer can choose an asset, or (once chosen) pay at the locked quote' }),
  order_id: z.string(),
  amount: z.string().meta({ example: '49.00' }),
  currency: z.string(),
  customer: z.object({ email: z.string() }).nullable(),
  metadata: z.record(z.string(), z.unknown()),
  success_url: z.string().nullable(),
  cancel_url: z.string().nullable(),
  webhook_url: z.string().nullable(),
  payment_id: z.string(),
  created_at: z.number().int(),
  payment: z
    .object({
      asset: z.string(),
      network: z.string().nullable(),
      address: z.string(),
      amount: z.string(),
      amount_received: z.string(),
      amount_confirmed: z.string(),
      amount_remaining: z.string(),
      amount_overpaid: z.string(),
      required_confirmations: z.number().int(),
      quote_expires_at: z.number().int().nullable(),
      payment_uri: z.string().nullable(),
    })
    .nullable(),
});
