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

export interface Database {
  merchants: MerchantTable;
  api_keys: ApiKeyTable;
  payments: PaymentTable;
  events: EventTable;
  idempotency_keys: IdempotencyKeyTable;
}
