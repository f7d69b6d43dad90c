import type { ColumnType, Generated } from 'kysely';

/**
 * The tables as Kysely sees them.
 *
 * @dev `numeric(78,0)` columns arrive as decimal strings from both drivers and
 * are written as decimal strings: the repositories turn them into bigint.
 * `int8` columns (ids, counts) arrive as JavaScript numbers; ids stay far
 * below 2^53.
 */

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Numeric = ColumnType<string, string, string>;

export interface MerchantTable {
  id: Generated<number>;
  name: string;
  created_at: Timestamp;
}

export interface ApiKeyTable {
  id: string;
  merchant_id: number;
  prefix: string;
  key_hash: string;
  secret_sealed: string;
  created_at: Timestamp;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

export interface PaymentTable {
  id: Generated<number>;
  transaction_id: string;
  merchant_id: number;
  type: 'deposit' | 'withdraw';
  method: 'crypto' | 'bank';
  status: string;
  amount: Numeric;
  currency: string;
  currency_decimals: number;
  crypto_amount: Numeric | null;
  crypto_currency: string | null;
  crypto_network: string | null;
  crypto_decimals: number | null;
  quote_crypto_usd: string | null;
  quote_fiat_usd: string | null;
  quote_fee_bps: number | null;
  quote_source: string | null;
  quoted_at: Date | null;
  client_reference: string | null;
  description: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  /** The chain the payment is watched on, and its own deposit address there. */
  chain: ColumnType<string | null, string | null | undefined, string | null>;
  address: ColumnType<string | null, string | null | undefined, string | null>;
  expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  required_confirmations: ColumnType<number | null, number | null | undefined, number | null>;
  /** Crypto base units received with enough confirmations / seen at all (not removed by a reorg). */
  amount_paid: ColumnType<string, string | undefined, string>;
  amount_detected: ColumnType<string, string | undefined, string>;
  settlement: ColumnType<Settlement, Settlement | undefined, Settlement>;
}

export type Settlement = 'none' | 'awaiting_payment' | 'detected' | 'underpaid' | 'paid' | 'overpaid' | 'expired';

export interface AddressCounterTable {
  chain: string;
  next_index: number;
}

export interface DepositAddressTable {
  chain: string;
  address: string;
  derivation_index: number;
  merchant_id: number;
  payment_id: number | null;
  created_at: Timestamp;
}

export interface ChainCursorTable {
  chain: string;
  block_number: number;
  block_hash: string;
  updated_at: Timestamp;
}

export interface ChainBlockTable {
  chain: string;
  number: number;
  hash: string;
  parent_hash: string;
}

export interface ChainTransferTable {
  id: Generated<number>;
  chain: string;
  tx_hash: string;
  /** The log's index for a token transfer; -1 for a native transfer. */
  log_index: number;
  block_number: number;
  block_hash: string;
  from_address: string | null;
  to_address: string;
  asset: string;
  amount: Numeric;
  payment_id: number | null;
  state: 'detected' | 'confirmed' | 'removed';
  confirmations: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** A merchant that accepts only some of the configured assets; no row: it accepts them all. */
export interface MerchantAssetsTable {
  merchant_id: number;
  /** JSON array of the accepted assets, keyed by chain name and symbol. */
  accepted: ColumnType<Array<{ chain: string; symbol: string }>, string, string>;
  updated_at: Timestamp;
}

export interface EventTable {
  seq: Generated<number>;
  id: string;
  merchant_id: number;
  payment_id: number | null;
  type: string;
  data: ColumnType<unknown, string, string>;
  created_at: Timestamp;
}

export interface IdempotencyKeyTable {
  merchant_id: number;
  key: string;
  request_hash: string;
  response_status: number | null;
  response_body: string | null;
  created_at: Timestamp;
}

export interface WebhookEndpointTable {
  id: string;
  merchant_id: number;
  url: string;
  enabled: boolean;
  /** Event types sent to the endpoint, as a JSON array; null sends every type. */
  event_types: ColumnType<string[] | null, string | null, string | null>;
  secret_sealed: string;
  previous_secret_sealed: string | null;
  previous_secret_expires_at: Date | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  /** Set for a payment's own endpoint (a session's `webhook_url`); null for the merchant's settings endpoint. */
  payment_id: ColumnType<number | null, number | null | undefined, number | null>;
  format: ColumnType<WebhookFormat, WebhookFormat | undefined, WebhookFormat>;
  /** The API key a payment session's webhooks name in `X-Paycrypt-Key`, sealed. */
  signing_key_sealed: ColumnType<string | null, string | null | undefined, string | null>;
  /** What a payment's own endpoint's webhooks carry besides the payment (a session's id, order id, metadata). */
  context: ColumnType<string | null, string | null | undefined, string | null>;
  /**
   * Whether the endpoint may have paused deliveries: set when it is switched
   * off, cleared by the dispatchers' sweep once it is on and has none left.
   * The claims look for paused deliveries of switched-on endpoints only where
   * it is set.
   */
  has_paused_deliveries: ColumnType<boolean, boolean | undefined, boolean>;
}

export type WebhookFormat = 'paycrypt_v1' | 'payment_session';

export interface PaymentSessionTable {
  id: string;
  merchant_id: number;
  payment_id: number;
  api_key_id: string;
  order_id: string;
  customer_email: string | null;
  metadata: string;
  success_url: string | null;
  cancel_url: string | null;
  webhook_url: string | null;
  created_at: Timestamp;
}

export interface RequestSignatureTable {
  signature: string;
  expires_at: Date;
}

export interface WebhookDeliveryTable {
  id: string;
  event_id: string;
  event_seq: number;
  merchant_id: number;
  endpoint_id: string | null;
  payment_id: number | null;
  /** `paused` while its endpoint is switched off: waiting, but out of the claims' way. */
  state: 'pending' | 'paused' | 'succeeded' | 'failed';
  attempts: Generated<number>;
  next_attempt_at: Timestamp;
  locked_until: Date | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Timestamp;
  completed_at: Date | null;
}

export interface WebhookAttemptTable {
  delivery_id: string;
  attempt: number;
  url: string;
  started_at: Date;
  duration_ms: number;
  status_code: number | null;
  response_excerpt: string | null;
  error: string | null;
}

/** Payments per merchant and status, as folded from `payment_count_changes`. */
export interface PaymentCountTable {
  merchant_id: number;
  status: string;
  count: number;
}

/** Net changes to `payment_counts` that the counts worker has not folded in yet; appended by triggers on `payments`. */
export interface PaymentCountChangeTable {
  merchant_id: number;
  status: string;
  change: number;
}

export interface Database {
  merchants: MerchantTable;
  api_keys: ApiKeyTable;
  merchant_assets: MerchantAssetsTable;
  payments: PaymentTable;
  events: EventTable;
  idempotency_keys: IdempotencyKeyTable;
  webhook_endpoints: WebhookEndpointTable;
  webhook_deliveries: WebhookDeliveryTable;
  webhook_attempts: WebhookAttemptTable;
  address_counters: AddressCounterTable;
  deposit_addresses: DepositAddressTable;
  chain_cursors: ChainCursorTable;
  chain_blocks: ChainBlockTable;
  chain_transfers: ChainTransferTable;
  payment_sessions: PaymentSessionTable;
  request_signatures: RequestSignatureTable;
  payment_counts: PaymentCountTable;
  payment_count_changes: PaymentCountChangeTable;
}
