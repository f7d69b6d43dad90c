import type { Selectable } from 'kysely';
import type { PaymentTable, Settlement } from '../../storage/schema.ts';

export type { Settlement };

export const paymentStatuses = ['pending', 'approved', 'completed', 'failed', 'rejected', 'cancelled'] as const;
export type PaymentStatus = (typeof paymentStatuses)[number];
export const paymentTypes = ['deposit', 'withdraw'] as const;
export type PaymentType = (typeof paymentTypes)[number];
export const paymentMethods = ['crypto', 'bank'] as const;
export type PaymentMethod = (typeof paymentMethods)[number];

/**
 * One payment: the state machine behind every dialect's invoices, orders and
 * sessions. Amounts are integers in base units: `amount` in the fiat
 * currency's minor unit, `crypto.amount` in the asset's base unit.
 */
export type Payment = {
  id: number;
  transactionId: string;
  merchantId: number;
  type: PaymentType;
  method: PaymentMethod;
  status: PaymentStatus;
  amount: bigint;
  currency: string;
  currencyDecimals: number;
  crypto: { currency: string; network: string | null; amount: bigint; decimals: number } | null;
  quote: { cryptoUsd: string; fiatUsd: string; feeBps: number; source: string; quotedAt: Date } | null;
  clientReference: string | null;
  description: string | null;
  createdAt: Date;
  updatedAt: Date;
  /** Where the payment is paid on-chain; null for payments no configured chain watches. */
  deposit: { chain: string; address: string; expiresAt: Date | null; requiredConfirmations: number } | null;
  /** Crypto base units received with enough confirmations. */
  amountPaid: bigint;
  /** Crypto base units seen on-chain, confirmed or not (without transfers a reorg removed). */
  amountDetected: bigint;
  settlement: Settlement;
};

export function paymentFromRow(row: Selectable<PaymentTable>): Payment {
  return {
    id: row.id,
    transactionId: row.transaction_id,
    merchantId: row.merchant_id,
    type: row.type,
    method: row.method,
    status: row.status as PaymentStatus,
    amount: BigInt(row.amount),
    currency: row.currency,
    currencyDecimals: row.currency_decimals,
    crypto:
      row.crypto_currency !== null && row.crypto_amount !== null
        ? { currency: row.crypto_currency, network: row.crypto_network, amount: BigInt(row.crypto_amount), decimals: row.crypto_decimals ?? 0 }
        : null,
    quote:
      row.quoted_at !== null
        ? {
            cryptoUsd: row.quote_crypto_usd ?? '',
            fiatUsd: row.quote_fiat_usd ?? '',
            feeBps: row.quote_fee_bps ?? 0,
            source: row.quote_source ?? '',
            quotedAt: row.quoted_at,
          }
        : null,
    clientReference: row.client_reference,
    description: row.description,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deposit:
      row.chain !== null && row.address !== null
        ? { chain: row.chain, address: row.address, expiresAt: row.expires_at, requiredConfirmations: row.required_confirmations ?? 1 }
        : null,
    amountPaid: BigInt(row.amount_paid),
    amountDetected: BigInt(row.amount_detected),
    settlement: row.settlement,
  };
}

/** The payment as an event carries it: plain JSON, amounts as exact decimal strings of base units. */
export function paymentSnapshot(payment: Payment) {
  return {
    id: payment.id,
    transaction_id: payment.transactionId,
    merchant_id: payment.merchantId,
    type: payment.type,
    method: payment.method,
    status: payment.status,
    amount: payment.amount.toString(),
    currency: payment.currency,
    currency_decimals: payment.currencyDecimals,
    crypto: payment.crypto && { ...payment.crypto, amount: payment.crypto.amount.toString() },
    client_reference: payment.clientReference,
    description: payment.description,
    created_at: payment.createdAt.toISOString(),
    updated_at: payment.updatedAt.toISOString(),
    deposit: payment.deposit && { ...payment.deposit, expiresAt: payment.deposit.expiresAt?.toISOString() ?? null },
    amount_paid: payment.amountPaid.toString(),
    amount_detected: payment.amountDetected.toString(),
    settlement: payment.settlement,
  };
}
