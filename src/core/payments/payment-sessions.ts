import type { Selectable } from 'kysely';
import type { Decimal } from '../../internal/decimal.ts';
import { PayCryptError } from '../../internal/errors.ts';
import { createId } from '../../internal/ids.ts';
import { parseJson } from '../../internal/json.ts';
import type { Db, Transaction } from '../../storage/database.ts';
import type { PaymentSessionTable, PaymentTable } from '../../storage/schema.ts';
import { allocateDepositAddress } from '../deposits/deposit-addresses.ts';
import type { DepositChains } from '../deposits/deposit-chains.ts';
import { appendEvent } from '../events.ts';
import type { Quoter } from '../rates/quote.ts';
import { checkFiatAmount, insertPayment, preparePayment } from './create-payment.ts';
import { type Payment, paymentFromRow, paymentSnapshot } from './payment.ts';
import { transitionPayment } from './transitions.ts';

/**
 * Payment sessions (seed 001): a payment the customer completes on the hosted
 * checkout. The merchant fixes the fiat amount; the customer then picks the
 * asset and network, which locks a quote for a while and assigns the
 * payment's own deposit address. From there the payment is settled by the
 * chain watcher like any on-chain payment.
 *
 * @dev A session is one payment (`payments`) plus one `payment_sessions` row;
 * its status is derived from the payment's status and settlement, never
 * stored twice. Before the asset is chosen the payment has no crypto side,
 * settlement `none`, and `expires_at` at the session's end; choosing moves
 * `expires_at` to the end of the quote lock.
 */
export const sessionStatuses = ['created', 'pending', 'confirming', 'underpaid', 'succeeded', 'expired', 'cancelled', 'failed'] as const;
export type SessionStatus = (typeof sessionStatuses)[number];

export type PaymentSession = {
  id: string;
  merchantId: number;
  apiKeyId: string;
  orderId: string;
  customerEmail: string | null;
  /** The merchant's metadata as exact JSON text. */
  metadataJson: string;
  successUrl: string | null;
  cancelUrl: string | null;
  webhookUrl: string | null;
  createdAt: Date;
  /** Until when the customer can choose an asset; once chosen, until when the quote is locked. */
  expiresAt: Date | null;
  payment: Payment;
  status: SessionStatus;
};

/** The session status a payment's state means. */
export function sessionStatusOf(payment: Pick<Payment, 'status' | 'settlement' | 'crypto'>): SessionStatus {
  if (payment.settlement === 'expired') return 'expired';
  switch (payment.status) {
    case 'completed':
      return 'succeeded';
    case 'cancelled':
      return 'cancelled';
    case 'failed':
    case 'rejected':
      return 'failed';
  }
  if (payment.crypto === null) return 'created';
  switch (payment.settlement) {
    case 'detected':
      return 'confirming';
    case 'underpaid':
      return 'underpaid';
    default:
      return 'pending';
  }
}

export type CreatePaymentSessionInput = {
  merchantId: number;
  apiKeyId: string;
  orderId: string;
  amount: Decimal;
  currency: string;
  customerEmail?: string | undefined;
  metadataJson: string;
  successUrl?: string | undefined;
  cancelUrl?: string | undefined;
  webhookUrl?: string | undefined;
  /** How long the customer has to choose an asset and start paying. */
  lifetimeMs: number;
};

/**
 * Checks a session request before its write transaction: the amount, and
 * that the currency has a price. Returns the amount in minor units.
 */
export async function preparePaymentSession(deps: { quoter: Quoter }, input: Pick<CreatePaymentSessionInput, 'amount' | 'currency'>) {
  const fiat = checkFiatAmount(input);
  await deps.quoter.assertPriced(input.currency);
  return fiat;
}

/**
 * Writes a session and its payment (`pending`, no asset yet) with the
 * payment's `payment.created` event, in the caller's transaction (where what
 * must commit with the session, such as its webhook endpoint, is written too).
 */
export async function insertPaymentSession(
  trx: Transaction,
  input: CreatePaymentSessionInput,
  fiat: { units: bigint; currencyDecimals: number },
): Promise<PaymentSession> {
  const inserted = await insertPayment(trx, {
    request: { merchantId: input.merchantId, type: 'deposit', method: 'crypto', amount: input.amount, currency: input.currency, clientReference: input.orderId },
    amount: fiat.units,
    currencyDecimals: fiat.currencyDecimals,
    crypto: null,
    deposit: null,
  });
  const paymentRow = await trx
    .updateTable('payments')
    .set({ expires_at: new Date(inserted.createdAt.getTime() + input.lifetimeMs) })
    .where('id', '=', inserted.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  const row = await trx
    .insertInto('payment_sessions')
    .values({
      id: createId('ps'),
      merchant_id: input.merchantId,
      payment_id: inserted.id,
      api_key_id: input.apiKeyId,
      order_id: input.orderId,
      customer_email: input.customerEmail ?? null,
      metadata: input.metadataJson,
      success_url: input.successUrl ?? null,
      cancel_url: input.cancelUrl ?? null,
      webhook_url: input.webhookUrl ?? null,
      created_at: inserted.createdAt,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return sessionFromRows(row, paymentRow);
}

/** One session by id; scoped to a merchant when `merchantId` is given (another merchant's session is not found). */
export async function findPaymentSession(db: Db, input: { id: string; merchantId?: number }): Promise<PaymentSession | undefined> {
  if (!/^ps_[0-9a-z]{1,64}$/.test(input.id)) return undefined;
  let query = sessionsWithPayments(db)
    .where('s.id', '=', input.id);
  if (input.merchantId !== undefined) query = query.where('s.merchant_id', '=', input.merchantId);
  const row = await query.executeTakeFirst();
  return row && sessionFromJoined(row);
}

/**
 * A merchant's sessions, newest first, by cursor: `startingAfter` is the id
 * of the last session of the previous page; optionally those of one order.
 */
export async function listPaymentSessions(
  db: Db,
  input: { merchantId: number; limit: number; orderId?: string | undefined; startingAfter?: string | undefined },
): Promise<{ sessions: PaymentSession[]; hasMore: boolean }> {
  let query = sessionsWithPayments(db)
    .where('s.merchant_id', '=', input.merchantId);
  if (input.orderId !== undefined) query = query.where('s.order_id', '=', input.orderId);
  if (input.startingAfter !== undefined) {
    const cursor = await db
      .selectFrom('payment_sessions')
      .select(['created_at', 'id'])
      .where('id', '=', input.startingAfter)
      .where('merchant_id', '=', input.merchantId)
      .executeTakeFirst();
    if (!cursor) throw new PayCryptError('invalid_request', `starting_after names no session: ${input.startingAfter}`, { details: { field: 'starting_after' } });
    query = query.where((eb) => eb.or([eb('s.created_at', '<', cursor.created_at), eb.and([eb('s.created_at', '=', cursor.created_at), eb('s.id', '<', cursor.id)])]));
  }
  const rows = await query.orderBy('s.created_at', 'desc').orderBy('s.id', 'desc').limit(input.limit + 1).execute();
  return { sessions: rows.slice(0, input.limit).map(sessionFromJoined), hasMore: rows.length > input.limit };
}

/**
 * Cancels a session whose customer has not paid anything yet. Once funds
 * are seen the session runs its course (it completes, or expires and its
 * funds are recorded), so that no payment is cut off half-way.
 */
export async function cancelPaymentSession(db: Db, input: { id: string; merchantId: number }): Promise<PaymentSession> {
  const session = await findPaymentSession(db, input);
  if (!session) throw new PayCryptError('resource_not_found', `Payment session not found: ${input.id}`);
  if (session.payment.amountDetected > 0n) {
    throw new PayCryptError('invalid_state_transition', `Cannot cancel a payment session that is ${session.status}: funds have been received`, {
      details: { status: session.status },
    });
  }
  if (session.status !== 'created' && session.status !== 'pending') {
    throw new PayCryptError('invalid_state_transition', `Cannot cancel a payment session that is ${session.status}`, { details: { status: session.status } });
  }
  await db.transaction().execute(async (trx) => {
    // Note: the transition re-checks the status in its UPDATE; a transfer detected
    // meanwhile (settlement moved on) is caught by the settlement condition.
    const locked = await trx.selectFrom('payments').select(['amount_detected']).where('id', '=', session.payment.id).forUpdate().executeTakeFirstOrThrow();
    if (BigInt(locked.amount_detected) > 0n) throw new PayCryptError('invalid_state_transition', 'Cannot cancel a payment session: funds have been received');
    await transitionPayment(trx, { payment: session.payment.id, to: 'cancelled', reason: 'cancelled by the merchant' });
  });
  return (await findPaymentSession(db, input))!;
}

/**
 * The customer's choice of asset: quotes the amount, locks the quote for
 * `lockMs`, assigns the deposit address and appends `payment.quoted`, all in
 * one transaction. Only an open session without an asset can choose one.
 */
export async function choosePaymentSessionAsset(
  deps: { db: Db; quoter: Quoter; chains: DepositChains; lockMs: number },
  input: { id: string; network: string; symbol: string },
): Promise<PaymentSession> {
  const session = await findPaymentSession(deps.db, { id: input.id });
  if (!session) throw new PayCryptError('resource_not_found', `Payment session not found: ${input.id}`);
  if (session.status !== 'created') {
    throw new PayCryptError('invalid_state_transition', `The asset of this payment session cannot be chosen now: it is ${session.status}`, {
      details: { status: session.status },
    });
  }
  const { payment } = session;
  const prepared = await preparePayment(deps, {
    merchantId: session.merchantId,
    type: 'deposit',
    method: 'crypto',
    amount: { units: payment.amount, scale: payment.currencyDecimals },
    currency: payment.currency,
    cryptoCurrency: input.symbol,
    cryptoNetwork: input.network,
  });
  const { crypto, deposit } = prepared;
  if (!crypto || !deposit) {
    throw new PayCryptError('invalid_request', `${input.symbol} on ${input.network} is not watched by this gateway`, { details: { field: 'network' } });
  }
  await deps.db.transaction().execute(async (trx) => {
    const now = new Date();
    const row = await trx
      .updateTable('payments')
      .set({
        crypto_amount: crypto.quote.cryptoAmount.toString(),
        crypto_currency: crypto.currency,
        crypto_network: crypto.network,
        crypto_decimals: crypto.decimals,
        quote_crypto_usd: crypto.quote.cryptoUsd,
        quote_fiat_usd: crypto.quote.fiatUsd,
        quote_fee_bps: crypto.quote.feeBps,
        quote_source: crypto.quote.source,
        quoted_at: crypto.quote.quotedAt,
        chain: deposit.chain,
        required_confirmations: deposit.confirmations,
        expires_at: new Date(now.getTime() + deps.lockMs),
        settlement: 'awaiting_payment',
        updated_at: now,
      })
      .where('id', '=', payment.id)
      .where('status', '=', 'pending')
      .where('settlement', '=', 'none')
      .where('crypto_currency', 'is', null)
      .where('expires_at', '>', now)
      .returning(['id'])
      .executeTakeFirst();
    // Note: a second choice racing this one, or the session expiring meanwhile, finds the row changed.
    if (!row) throw new PayCryptError('invalid_state_transition', 'The asset of this payment session cannot be chosen now');
    const { address } = await allocateDepositAddress(trx, { chain: deposit.chain, merchantId: session.merchantId, paymentId: payment.id, addressAt: deposit.addressAt });
    const updated = paymentFromRow(await trx.updateTable('payments').set({ address }).where('id', '=', payment.id).returningAll().executeTakeFirstOrThrow());
    await appendEvent(trx, { merchantId: session.merchantId, paymentId: payment.id, type: 'payment.quoted', data: { payment: paymentSnapshot(updated) }, at: now });
  });
  return (await findPaymentSession(deps.db, { id: input.id }))!;
}

/** The on-chain transfers of a session's payment, oldest first (reorged-out ones left out). */
export async function paymentTransfers(db: Db, paymentId: number) {
  return db
    .selectFrom('chain_transfers')
    .select(['tx_hash', 'asset', 'amount', 'state', 'confirmations', 'block_number'])
    .where('payment_id', '=', paymentId)
    .where('state', '<>', 'removed')
    .orderBy('block_number')
    .orderBy('log_index')
    .execute();
}

/** Sessions joined with their payments: every column of the payment, and the session's own under names of their own. */
function sessionsWithPayments(db: Db) {
  return db
    .selectFrom('payment_sessions as s')
    .innerJoin('payments as p', 'p.id', 's.payment_id')
    .selectAll('p')
    .select(['s.id as session_id', 's.merchant_id as session_merchant_id', 's.api_key_id', 's.order_id', 's.customer_email', 's.metadata', 's.success_url', 's.cancel_url', 's.webhook_url', 's.created_at as session_created_at']);
}

type JoinedRow = Selectable<PaymentTable> & {
  session_id: string;
  session_merchant_id: number;
  api_key_id: string;
  order_id: string;
  customer_email: string | null;
  metadata: string;
  success_url: string | null;
  cancel_url: string | null;
  webhook_url: string | null;
  session_created_at: Date;
};

function sessionFromJoined(row: JoinedRow): PaymentSession {
  return sessionFromRows(
    {
      id: row.session_id,
      merchant_id: row.session_merchant_id,
      payment_id: row.id,
      api_key_id: row.api_key_id,
      order_id: row.order_id,
      customer_email: row.customer_email,
      metadata: row.metadata,
      success_url: row.success_url,
      cancel_url: row.cancel_url,
      webhook_url: row.webhook_url,
      created_at: row.session_created_at,
    },
    row,
  );
}

function sessionFromRows(row: Selectable<PaymentSessionTable>, paymentRow: Selectable<PaymentTable>): PaymentSession {
  const payment = paymentFromRow(paymentRow);
  return {
    id: row.id,
    merchantId: row.merchant_id,
    apiKeyId: row.api_key_id,
    orderId: row.order_id,
    customerEmail: row.customer_email,
    metadataJson: row.metadata,
    successUrl: row.success_url,
    cancelUrl: row.cancel_url,
    webhookUrl: row.webhook_url,
    createdAt: row.created_at,
    expiresAt: paymentRow.expires_at,
    payment,
    status: sessionStatusOf(payment),
  };
}

/** The merchant's metadata, parsed with its numbers kept exact. */
export function sessionMetadata(session: Pick<PaymentSession, 'metadataJson'>): unknown {
  return parseJson(session.metadataJson);
}
