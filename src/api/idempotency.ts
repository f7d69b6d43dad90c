import { createHash } from 'node:crypto';
import { PayCryptError } from '../internal/errors.ts';
import type { Db } from '../storage/database.ts';

export type StoredResponse = { status: number; body: string; replayed: boolean };

const keyPattern = /^[\x21-\x7e]{1,255}$/;

/** Reads and checks the `Idempotency-Key` header; undefined when absent. */
export function idempotencyKeyOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const key = Array.isArray(header) ? header[0] : header;
  if (key === undefined || !keyPattern.test(key)) {
    throw new PayCryptError('invalid_request', 'Idempotency-Key must be 1 to 255 printable ASCII characters without spaces', {
      details: { field: 'Idempotency-Key' },
    });
  }
  return key;
}

/** The request a key was first used with: its method, path and exact body. */
export type IdempotentRequest = { method: string; path: string; rawBody: string };

function requestFingerprint(request: IdempotentRequest): string {
  return createHash('sha256').update(`${request.method} ${request.path}\n${request.rawBody}`).digest('hex');
}

/**
 * Runs `produce` at most once per (merchant, key).
 *
 * @dev The key is claimed and the response stored in the same transaction as
 * the work, so a key is never spent on work that rolled back. A concurrent
 * request with the same key blocks on the claim's unique index until the first
 * commits, then replays its stored response. Same key, other request: refused.
 * Without a key there is nothing to claim: `produce` runs on `db` itself, and
 * makes its own writes atomic (one statement, or a transaction of its own).
 */
export async function runIdempotent(
  db: Db,
  input: { merchantId: number; key: string | undefined; request: IdempotentRequest },
  produce: (db: Db) => Promise<{ status: number; body: string }>,
): Promise<StoredResponse> {
  if (input.key === undefined) return { ...(await produce(db)), replayed: false };
  const key = input.key;
  const fingerprint = requestFingerprint(input.request);
  return db.transaction().execute(async (trx) => {

    const claimed = await trx
      .insertInto('idempotency_keys')
      .values({ merchant_id: input.merchantId, key, request_hash: fingerprint, response_status: null, response_body: null })
      .onConflict((conflict) => conflict.columns(['merchant_id', 'key']).doNothing())
      .returning('key')
      .executeTakeFirst();

    if (!claimed) {
      const stored = await trx
        .selectFrom('idempotency_keys')
        .select(['request_hash', 'response_status', 'response_body'])
        .where('merchant_id', '=', input.merchantId)
        .where('key', '=', key)
        .executeTakeFirstOrThrow();
      if (stored.request_hash !== fingerprint) {
        throw new PayCryptError('idempotency_conflict', 'This Idempotency-Key was already used with a different request', {
          details: { idempotency_key: key },
        });
      }
      if (stored.response_status === null || stored.response_body === null) {
        throw new PayCryptError('idempotency_conflict', 'A request with this Idempotency-Key is still in progress', { details: { idempotency_key: key } });
      }
      return { status: stored.response_status, body: stored.response_body, replayed: true };
    }

    const response = await produce(trx);
    await trx
      .updateTable('idempotency_keys')
      .set({ response_status: response.status, response_body: response.body })
      .where('merchant_id', '=', input.merchantId)
      .where('key', '=', key)
      .execute();
    return { ...response, replayed: false };
  });
}

/** Forgets keys older than the retention period. Returns how many were removed. */
export async function pruneIdempotencyKeys(db: Db, olderThan: Date): Promise<number> {
  const result = await db.deleteFrom('idempotency_keys').where('created_at', '<', olderThan).executeTakeFirst();
  return Number(result.numDeletedRows);
}
