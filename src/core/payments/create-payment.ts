import { type Decimal, toBaseUnits } from '../../internal/decimal.ts';
import { PayCryptError } from '../../internal/errors.ts';
import { createId } from '../../internal/ids.ts';
import { CompiledQuery, type Selectable } from 'kysely';
import { type Db, inTransaction, preparedStatementMark, type Transaction } from '../../storage/database.ts';
import type { PaymentTable } from '../../storage/schema.ts';
import { allocateDepositAddress } from '../deposits/deposit-addresses.ts';
import type { DepositAsset, DepositChains } from '../deposits/deposit-chains.ts';
import { findCryptoAsset, fiatDecimals, isCryptoSymbol } from '../currencies.ts';
import { appendEvent } from '../events.ts';
import { deliveryCte, queuedDeliveries } from '../webhooks/delivery-queue.ts';
import { defaultNetworkFor, requireAcceptedAsset } from '../merchant-assets.ts';
import type { Quote, Quoter } from '../rates/quote.ts';
import { type Payment, type PaymentMethod, type PaymentType, paymentFromRow, paymentSnapshot } from './payment.ts';

/** The largest fiat amount a payment may carry, in major units (10^12). */
export const maxFiatAmount = 10n ** 12n;

export type CreatePaymentRequest = {
  merchantId: number;
  type: PaymentType;
  method: PaymentMethod;
  /** The fiat amount exactly as the merchant wrote it. */
  amount: Decimal;
  currency: string;
  cryptoCurrency?: string | undefined;
  cryptoNetwork?: string | undefined;
  clientReference?: string | undefined;
  description?: string | undefined;
  /** How long an on-chain payment waits for funds, overriding the chain's payment window. */
  expiresInMs?: number | undefined;
};

/** A request checked against the catalogue and priced, ready to be written. */
export type PreparedPayment = {
  request: CreatePaymentRequest;
  amount: bigint;
  currencyDecimals: number;
  crypto: { currency: string; network: string; decimals: number; quote: Quote } | null;
  /** The chain that watches the payment, when its network is a configured chain. */
  deposit: DepositAsset | null;
};

/** Checks a fiat amount: a fiat currency, positive, at most the currency's decimals, not absurdly large. Returns it in minor units. */
export function checkFiatAmount(request: { amount: Decimal; currency: string }): { units: bigint; currencyDecimals: number } {
  if (isCryptoSymbol(request.currency)) {
    throw new PayCryptError('invalid_request', `currency must be a fiat currency code, got ${request.currency}`, { details: { field: 'currency' } });
  }
  const currencyDecimals = fiatDecimals(request.currency);
  if (request.amount.units <= 0n) {
    throw new PayCryptError('invalid_request', 'amount must be greater than zero', { details: { field: 'amount' } });
  }
  const converted = toBaseUnits(request.amount, currencyDecimals);
  if (!converted.ok) {
    throw new PayCryptError('invalid_request', `amount has more than ${currencyDecimals} decimal places for ${request.currency}`, {
      details: { field: 'amount' },
    });
  }
  if (converted.units > maxFiatAmount * 10n ** BigInt(currencyDecimals)) {
    throw new PayCryptError('invalid_request', `amount must not exceed ${maxFiatAmount}`, { details: { field: 'amount' } });
  }
  return { units: converted.units, currencyDecimals };
}

/**
 * Checks a payment request and quotes it. Runs before the write transaction
 * because a rate source may be slow; nothing is written here.
 */
export async function preparePayment(deps: { db: Db; quoter: Quoter; chains: DepositChains }, request: CreatePaymentRequest): Promise<PreparedPayment> {
  const converted = checkFiatAmount(request);
  const currencyDecimals = converted.currencyDecimals;

  if (request.method !== 'crypto') {
    if (request.cryptoCurrency !== undefined || request.cryptoNetwork !== undefined) {
      throw new PayCryptError('invalid_request', 'crypto_currency and crypto_network apply only to method "crypto"', {
        details: { field: request.cryptoCurrency !== undefined ? 'crypto_currency' : 'crypto_network' },
      });
    }
    await deps.quoter.assertPriced(request.currency);
    return { request, amount: converted.units, currencyDecimals, crypto: null, deposit: null };
  }

  const symbol = request.cryptoCurrency ?? 'USDT';
  const catalogued = findCryptoAsset(symbol);
  const network = request.cryptoNetwork ?? (await defaultNetworkFor(deps.db, deps.chains, request.merchantId, symbol)) ?? catalogued?.networks[0];
  const onChain = network === undefined ? undefined : deps.chains.resolve(network, symbol);
  if (onChain === 'unknown_asset') {
    throw new PayCryptError('invalid_request', `${symbol} is not accepted on ${network}; it accepts ${deps.chains.assetsOn(network!).join(', ')}`, {
      details: { field: 'crypto_currency' },
    });
  }
  if (onChain) await requireAcceptedAsset(deps.db, deps.chains, request.merchantId, onChain);
  // Note: a network no configured chain watches is still accepted for the
  // catalogued assets, as a payment the operator settles by hand.
  if (!onChain) {
    if (!catalogued) throw new PayCryptError('invalid_request', `Unsupported crypto_currency: ${symbol}`, { details: { field: 'crypto_currency' } });
    if (!catalogued.networks.includes(network!)) {
      throw new PayCryptError('invalid_request', `Unsupported crypto_network ${network} for ${symbol}; use one of ${catalogued.networks.join(', ')}`, {
        details: { field: 'crypto_network' },
      });
    }
  }
  const decimals = onChain ? onChain.decimals : catalogued!.decimals;
  const quote = await deps.quoter.quote({ amount: converted.units, currency: request.currency, currencyDecimals, cryptoCurrency: symbol, cryptoDecimals: decimals });
  return { request, amount: converted.units, currencyDecimals, crypto: { currency: symbol, network: network!, decimals, quote }, deposit: onChain ?? null };
}

/**
 * Writes a prepared payment as `pending` with its `payment.created` event and
 * the event's webhook deliveries, and counts it (payment-counts.ts: every
 * insert into `payments` must). A payment no chain watches is written by one
 * statement, atomic without a transaction: `db` may be the pool itself. A
 * payment watched on-chain also takes its deposit address, in the caller's
 * transaction or one of its own.
 */
export async function insertPayment(db: Db, prepared: PreparedPayment): Promise<Payment> {
  const now = new Date();
  const values = paymentValues(prepared, now);
  const deposit = prepared.deposit;
  if (deposit) {
    return inTransaction(db, async (trx) => {
      const inserted = await trx.insertInto('payments').values(values).returningAll().executeTakeFirstOrThrow();
      await trx.insertInto('payment_count_changes').values({ merchant_id: inserted.merchant_id, status: inserted.status, change: 1 }).execute();
      const payment = paymentFromRow(await assignAddress(trx, inserted, deposit));
      await appendEvent(trx, { merchantId: payment.merchantId, paymentId: payment.id, type: 'payment.created', data: { payment: paymentSnapshot(payment) }, at: now });
      return payment;
    });
  }
  // Note: the event's snapshot is made from the values written, and the one
  // value PostgreSQL draws, the id, is set into it by the same statement.
  const unsaved = paymentFromRow({ ...values, id: 0 });
  const columns = Object.keys(values) as Array<keyof typeof values>;
  const parameters = [...columns.map((column) => values[column]), createId('evt'), JSON.stringify({ payment: paymentSnapshot(unsaved) })];
  const { rows } = await db.executeQuery<{ id: number }>(CompiledQuery.raw(createPaymentStatement(columns), parameters));
  return { ...unsaved, id: rows[0]!.id };
}

let createPaymentText: string | undefined;

/**
 * The statement that writes a payment no chain watches, counts it (see
 * payment-counts.ts), and writes its `payment.created` event and the event's
 * deliveries. Its text is made once: `paymentValues`
 * always lists the same columns in the same order.
 */
function createPaymentStatement(columns: readonly string[]): string {
  const event = columns.length + 1;
  return (createPaymentText ??= `${preparedStatementMark('create_payment')}with payment as (
      insert into payments (${columns.join(', ')}) values (${columns.map((_, index) => `$${index + 1}`).join(', ')})
      returning id, merchant_id, status, created_at
    ),
    counted as (
      insert into payment_count_changes (merchant_id, status, change) select merchant_id, status, 1 from payment
    ),
    event as (
      insert into events (id, merchant_id, payment_id, type, data, created_at)
      select $${event}, merchant_id, id, 'payment.created', jsonb_set($${event + 1}::jsonb, '{payment,id}', to_jsonb(id))::json, created_at
      from payment
      returning id, seq, merchant_id, payment_id, type, created_at
    ),
    ${deliveryCte}
    select payment.id, ${queuedDeliveries} as queued_deliveries from payment`);
}

/** Every column of a new payment's row but its id, defaults included, so the row is known before it is written. */
function paymentValues(prepared: PreparedPayment, now: Date): Omit<Selectable<PaymentTable>, 'id'> {
  const { request, crypto, deposit } = prepared;
  return {
    transaction_id: createId('pay'),
    merchant_id: request.merchantId,
    type: request.type,
    method: request.method,
    status: 'pending',
    amount: prepared.amount.toString(),
    currency: request.currency,
    currency_decimals: prepared.currencyDecimals,
    crypto_amount: crypto ? crypto.quote.cryptoAmount.toString() : null,
    crypto_currency: crypto?.currency ?? null,
    crypto_network: crypto?.network ?? null,
    crypto_decimals: crypto?.decimals ?? null,
    quote_crypto_usd: crypto?.quote.cryptoUsd ?? null,
    quote_fiat_usd: crypto?.quote.fiatUsd ?? null,
    quote_fee_bps: crypto?.quote.feeBps ?? null,
    quote_source: crypto?.quote.source ?? null,
    quoted_at: crypto?.quote.quotedAt ?? null,
    client_reference: request.clientReference ?? null,
    description: request.description ?? null,
    created_at: now,
    updated_at: now,
    chain: deposit?.chain ?? null,
    address: null,
    required_confirmations: deposit?.confirmations ?? null,
    expires_at: deposit ? new Date(now.getTime() + (request.expiresInMs ?? deposit.paymentWindowMs)) : null,
    amount_paid: '0',
    amount_detected: '0',
    settlement: deposit ? 'awaiting_payment' : 'none',
  };
}

async function assignAddress(trx: Transaction, row: Selectable<PaymentTable>, deposit: DepositAsset): Promise<Selectable<PaymentTable>> {
  const { address } = await allocateDepositAddress(trx, { chain: deposit.chain, merchantId: row.merchant_id, paymentId: row.id, addressAt: deposit.addressAt });
  return trx.updateTable('payments').set({ address }).where('id', '=', row.id).returningAll().executeTakeFirstOrThrow();
}
