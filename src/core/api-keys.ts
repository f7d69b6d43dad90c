import { type Selectable, sql } from 'kysely';
import { PayCryptError } from '../internal/errors.ts';
import { createId, randomToken } from '../internal/ids.ts';
import { type MasterKey, seal, sha256Hex, unseal } from '../internal/secrets.ts';
import type { Db, Storage, Transaction } from '../storage/database.ts';
import type { ApiKeyTable } from '../storage/schema.ts';

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

/** The channel a revocation is announced on, so every gateway process drops what it cached at once. */
export const apiKeyChannel = 'paycrypt_api_keys';

/**
 * Revokes a key at once; a revoked key stays listed, with its revocation time.
 *
 * @dev The `NOTIFY` goes out when the revocation commits (one statement, so
 * at once), and tells every gateway process to forget its cached lookups.
 */
export async function revokeApiKey(db: Db, keyId: string): Promise<ApiKey> {
  const { rows } = await sql<Selectable<ApiKeyTable>>`
    with revoked as (
      update api_keys set revoked_at = ${new Date()} where id = ${keyId} and revoked_at is null returning *
    )
    select revoked.*, pg_notify(${apiKeyChannel}, revoked.id) from revoked
  `.execute(db);
  if (rows[0]) return apiKeyFromRow(rows[0]);
  const existing = await db.selectFrom('api_keys').selectAll().where('id', '=', keyId).executeTakeFirst();
  if (!existing) throw new PayCryptError('resource_not_found', `API key not found: ${keyId}`);
  return apiKeyFromRow(existing);
}

export type ApiKeyAuthenticator = {
  /** Returns the key's owner, or undefined for an unknown or revoked key. */
  authenticate(key: string): Promise<{ keyId: string; merchantId: number } | undefined>;
  /** The key's HMAC secret, for dialects that sign requests. */
  secretOf(key: string): Promise<{ keyId: string; merchantId: number; secret: string } | undefined>;
  /** Drops every cached lookup, so the next request of each key reads the database (a key was revoked). */
  forget(): void;
  /** Stops listening for revocations. */
  close(): Promise<void>;
};

/** How long a looked-up key is trusted without reading the database again: the bound on a revocation whose notification was lost. */
export const apiKeyCacheTtlMs = 5_000;
/** Keys cached at most, per process; the oldest go first. */
const apiKeyCacheSize = 10_000;
/** How often `last_used_at` is written at most, per key and process. */
const lastUsedResolutionMs = 60_000;

type KeyRow = { id: string; merchant_id: number; secret_sealed: string };

/**
 * Authenticates API keys, remembering each key found for `cacheTtlMs`, so a
 * request needs no round trip to the database for its key.
 *
 * @dev A revocation takes effect at once: `revokeApiKey` sends a `NOTIFY` on
 * commit, and every authenticator listening on the database drops its cache
 * when it arrives (the revoking process also calls `forget()` itself, so its
 * own next request is refused without waiting for the notification). A
 * notification lost with a dropped listening connection is covered by the
 * listener's reconnect, which drops the cache too, and at worst by the TTL.
 * A lookup that was in flight when the cache was dropped is not cached, as it
 * may have read the key before its revocation. Unknown keys are never cached,
 * so guessing cannot fill the cache.
 */
export async function createApiKeyAuthenticator(options: {
  storage: Pick<Storage, 'db' | 'listen'>;
  master: MasterKey;
  cacheTtlMs?: number;
  /** The clock the cache runs on, for tests. */
  now?: () => number;
}): Promise<ApiKeyAuthenticator> {
  const { db } = options.storage;
  const ttlMs = options.cacheTtlMs ?? apiKeyCacheTtlMs;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { row: KeyRow; until: number }>();
  // Note: bumped by every forget(); a lookup that started under an older generation is not cached.
  let generation = 0;
  const lastUsedWrites = new Map<string, number>();

  const forget = () => {
    generation += 1;
    cache.clear();
  };
  // Note: listening starts before the first lookup, so no revocation can slip between them.
  const unlisten = await options.storage.listen(apiKeyChannel, forget);

  async function lookup(key: string): Promise<KeyRow | undefined> {
    if (!/^pk_[0-9a-z]{32}$/.test(key)) return undefined;
    const hash = sha256Hex(key);
    const cached = cache.get(hash);
    if (cached && cached.until > now()) {
      touch(cached.row.id);
      return cached.row;
    }
    const started = generation;
    const row = await db
      .selectFrom('api_keys')
      .select(['id', 'merchant_id', 'secret_sealed'])
      .where('key_hash', '=', hash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (cached) cache.delete(hash);
    if (!row) return undefined;
    if (started === generation) {
      if (cache.size >= apiKeyCacheSize) cache.delete(cache.keys().next().value!);
      cache.set(hash, { row, until: now() + ttlMs });
    }
    touch(row.id);
    return row;
  }

  function touch(keyId: string) {
    // Note: last-used time is informational, so it is written at most once a
    // minute and off the request's path; a failed write only delays it.
    const at = Date.now();
    if (at - (lastUsedWrites.get(keyId) ?? 0) < lastUsedResolutionMs) return;
    lastUsedWrites.set(keyId, at);
    db.updateTable('api_keys')
      .set({ last_used_at: new Date(at) })
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
    forget,
    close: unlisten,
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
