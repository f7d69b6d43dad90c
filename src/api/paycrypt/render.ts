import { z } from 'zod';
import type { Payment } from '../../core/payments/payment.ts';
import { formatUnits } from '../../internal/decimal.ts';
import { jsonNumber } from '../../internal/json.ts';

/** `2025-11-21T12:00:00Z`: the seconds-precision UTC form the PayCrypt docs use. */
export function isoSeconds(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

const isoMilliseconds = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/**
 * `isoSeconds` of a time stored as text, as event snapshots hold times
 * (`toISOString`). Such text is cut rather than parsed: a webhook body has two
 * of them, and parsing and printing them again cost about 3 µs per body.
 */
export function isoSecondsOfText(text: string): string {
  return isoMilliseconds.test(text) ? `${text.slice(0, 19)}Z` : isoSeconds(new Date(text));
}

/**
 * A payment as the PayCrypt v1 API shows it. Amounts are JSON numbers with
 * exact text: fiat with the currency's decimals (`100.00`), crypto trimmed
 * (`99.5`).
 */
export function renderPayment(payment: Payment, options: { publicUrl?: string } = {}) {
  return {
    id: payment.id,
    transaction_id: payment.transactionId,
    status: payment.status,
    method: payment.method,
    type: payment.type,
    amount: jsonNumber(formatUnits(payment.amount, payment.currencyDecimals, payment.currencyDecimals)),
    currency: payment.currency,
    crypto_amount: payment.crypto ? jsonNumber(formatUnits(payment.crypto.amount, payment.crypto.decimals)) : null,
    crypto_currency: payment.crypto?.currency ?? null,
    crypto_network: payment.crypto?.network ?? null,
    client_reference: payment.clientReference,
    description: payment.description,
    created_at: isoSeconds(payment.createdAt),
    updated_at: isoSeconds(payment.updatedAt),
    ...(payment.deposit && payment.crypto ? renderDeposit(payment, options.publicUrl) : {}),
  };
}

/**
 * The on-chain side of a crypto payment a configured chain watches: where to
 * pay, until when, and how much is due, paid and remaining (exact JSON
 * numbers in the asset's units).
 */
function renderDeposit(payment: Payment, publicUrl: string | undefined) {
  const crypto = payment.crypto!;
  const deposit = payment.deposit!;
  const remaining = crypto.amount > payment.amountPaid ? crypto.amount - payment.amountPaid : 0n;
  const units = (value: bigint) => jsonNumber(formatUnits(value, crypto.decimals));
  return {
    address: deposit.address,
    chain: deposit.chain,
    expires_at: deposit.expiresAt && isoSeconds(deposit.expiresAt),
    checkout_url: publicUrl ? `${publicUrl}/checkout/${payment.transactionId}` : null,
    settlement: payment.settlement,
    required_confirmations: deposit.requiredConfirmations,
    amount_due: units(crypto.amount),
    amount_paid: units(payment.amountPaid),
    amount_detected: units(payment.amountDetected),
    amount_remaining: units(remaining),
  };
}

/** The documented response shape, for the OpenAPI document. */
export const paymentResponseSchema = z
  .object({
    id: z.number().int().meta({ example: 123 }),
    transaction_id: z.string().meta({ example: 'pay_abc123def456' }),
    status: z.enum(['pending', 'approved', 'completed', 'failed', 'rejected', 'cancelled']),
    method: z.enum(['crypto', 'bank']),
    type: z.enum(['deposit', 'withdraw']),
    amount: z.number().meta({ description: 'Fiat amount, exact to the currency\'s decimals', example: 100.0 }),
    currency: z.string().meta({ example: 'USD' }),
    crypto_amount: z.number().nullable().meta({ description: 'Crypto amount from the quote, exact to the asset\'s base unit', example: 99.5 }),
    crypto_currency: z.string().nullable().meta({ example: 'USDT' }),
    crypto_network: z.string().nullable().meta({ example: 'TRC20' }),
    client_reference: z.string().nullable(),
    description: z.string().nullable(),
    created_at: z.string().meta({ format: 'date-time' }),
    updated_at: z.string().meta({ format: 'date-time' }),
    address: z.string().optional().meta({ description: 'On-chain payments: the deposit address, used by this payment only' }),
    chain: z.string().optional(),
    expires_at: z.string().nullable().optional().meta({ format: 'date-time', description: 'When an unpaid on-chain payment expires' }),
    checkout_url: z.string().nullable().optional(),
    settlement: z
      .enum(['awaiting_payment', 'detected', 'underpaid', 'paid', 'overpaid', 'expired'])
      .optional()
      .meta({ description: 'On-chain progress: awaiting_payment, detected (seen, confirming), underpaid, paid, overpaid, expired' }),
    required_confirmations: z.number().int().optional(),
    amount_due: z.number().optional().meta({ description: 'Crypto amount due (= crypto_amount)' }),
    amount_paid: z.number().optional().meta({ description: 'Crypto received with enough confirmations' }),
    amount_detected: z.number().optional().meta({ description: 'Crypto seen on-chain, confirmed or not' }),
    amount_remaining: z.number().optional().meta({ description: 'Crypto still to pay' }),
  })
  .meta({ id: 'Payment' });

export const errorResponseSchema = z
  .object({
    error: z.object({
      code: z.string().meta({ example: 'invalid_request' }),
      message: z.string().meta({ example: 'Missing required field: amount' }),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  })
  .meta({ id: 'Error' });
