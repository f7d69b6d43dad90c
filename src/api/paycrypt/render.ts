import { z } from 'zod';
import type { Payment } from '../../core/payments/payment.ts';
import { formatUnits } from '../../internal/decimal.ts';
import { jsonNumber } from '../../internal/json.ts';

/** `2025-11-21T12:00:00Z`: the seconds-precision UTC form the PayCrypt docs use. */
export function isoSeconds(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/**
 * A payment as the PayCrypt v1 API shows it. Amounts are JSON numbers with
 * exact text: fiat with the currency's decimals (`100.00`), crypto trimmed
 * (`99.5`).
 */
export function renderPayment(payment: Payment) {
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
