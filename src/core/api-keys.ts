import { PayCryptError } from '../internal/errors.ts';
import { createId, randomToken } from '../internal/ids.ts';
import { type MasterKey, seal, sha256Hex, unseal } from '../internal/secrets.ts';
import type { Db, Transaction } from '../storage/database.ts';

/**
 * API keys.
 *
 * @dev A key is `pk_` + 32 random base-36 characters (~165 bits); only its
 * SHA-256 is stored. Its secret (`sk_…`, the HMAC secret of the signed
 * dialects) must be read back to verify signatures, so it is sealed with the
 * master key instead. Both are shown once, when created.
 */
export type ApiKey = {
  id: string;
  merchantId: number;
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
};

export type IssuedApiKey = { apiKey: ApiKey; key: string; secret: string };

const keyPrefixLength = 11; // "pk_" and 8 characters: enough to tell keys apart, far too little to guess one

export async function issueApiKey(trx: Transaction, master: MasterKey, merchantId: number): Promise<IssuedApiKey> {
  const key = `pk_${randomToken(32)}`;
  const secret = `sk_${randomToken(40)}`;
  const row = await trx
    .insertInto('api_keys')
    .values({
      id: createId('key', 16),
      merchant_id: merchantId,
      prefix: key.slice(0, keyPrefixLength),
      key_hash: sha256Hex(key),
      secret_sealed: seal(master, secret),
      last_used_at: null,
      revoked_at: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { apiKey: apiKeyFromRow(row), key, secret };
}

export async function listApiKeys(db: Db, merchantId: number): Promise<ApiKey[]> {
  const rows = await db.selectFrom('api_keys').selectAll().where('merchant_id', '=', merchantId).orderBy('created_at').execute();
  return rows.map(apiKeyFromRow);
}

/** Revokes a key at once; a revoked key stays listed, with its revocation time. */
export async function revokeApiKey(db: Db, keyId: string): Promise<ApiKey> {
  const row = await db
    .updateTable('api_keys')
    .set({ revoked_at: new Date() })
    .where('id', '=', keyId)
    .where('revoked_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  if (row) return apiKeyFromRow(row);
  const existing = await db.selectFrom('api_keys').selectAll().where('id', '=', keyId).executeTakeFirst();
  if (!existing) throw new PayCryptError('resource_not_found', `API key not found: ${keyId}`);
  return apiKeyFromRow(existing);
}

export type ApiKeyAuthenticator = {
  /** Returns the key's owner, or undefined for an unknown or revoked key. */
  authenticate(key: string): Promise<{ keyId: string; merchantId: number } | undefined>;
  /** The key's HMAC secret, for dialects that sign requests. */
  secretOf(key: string): Promise<{ keyId: string; merchantId: number; secret: string } | undefined>;
};

/** How often `last_used_at` is written at most, per key and process. */
const lastUsedResolutionMs = 60_000;

export function createApiKeyAuthenticator(options: { db: Db; master: MasterKey }): ApiKeyAuthenticator {
  const lastUsedWrites = new Map<string, number>();

  async function lookup(key: string) {
    if (!/^pk_[0-9a-z]{32}$/.test(key)) return undefined;
    const row = await options.db
      .selectFrom('api_keys')
      .select(['id', 'merchant_id', 'secret_sealed'])
      .where('key_hash', '=', sha256Hex(key))
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (!row) return undefined;
    touch(row.id);
    return row;
  }

  function touch(keyId: string) {
    // Note: last-used time is informational, so it is written at most once a
    // minute and off the request's path; a failed write only delays it.
    const now = Date.now();
    if (now - (lastUsedWrites.get(keyId) ?? 0) < lastUsedResolutionMs) return;
    lastUsedWrites.set(keyId, now);
    options.db
      .updateTable('api_keys')
      .set({ last_used_at: new Date(now) })
      .where('id', '=', keyId)
      .execute()
      .catch(() => lastUsedWrites.delete(keyId));
  }

  return {
    async authenticate(key) {
      const row = await lookup(key);
      return row && { keyId: row.id, merchantId: row.merchant_id };
    },
    async secretOf(key) {
      const row = await lookup(key);
      return row && { keyId: row.id, merchantId: row.merchant_id, secret: unseal(options.master, row.secret_sealed) };
    },
  };
}

function apiKeyFromRow(row: { id: string; merchant_id: number; prefix: string; created_at: Date; last_used_at: Date | null; revoked_at: Date | null }): ApiKey {
  return {
    id: row.id,
    merchantId: row.merchant_id,
    prefix: row.prefix,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
}
