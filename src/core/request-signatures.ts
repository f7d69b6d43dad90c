import type { Db } from '../storage/database.ts';

/**
 * The signatures of signed requests seen within their timestamp window.
 *
 * @dev A signed request is valid for the window around its timestamp; to
 * refuse a captured copy replayed inside that window, each signature is
 * recorded once (primary key) in the shared database, so every gateway
 * process refuses it. It is forgotten when its timestamp falls out of the
 * window, after which the timestamp check refuses it anyway.
 */
/** `signature` identifies the signed request (the caller decides what it covers besides the signature itself). */
export async function rememberSignature(db: Db, input: { signature: string; expiresAt: Date }): Promise<'new' | 'replayed'> {
  const row = await db
    .insertInto('request_signatures')
    .values({ signature: input.signature, expires_at: input.expiresAt })
    .onConflict((conflict) => conflict.column('signature').doNothing())
    .returning('signature')
    .executeTakeFirst();
  return row ? 'new' : 'replayed';
}

/** Forgets signatures whose window is over. Returns how many were removed. */
export async function forgetExpiredSignatures(db: Db, now: Date): Promise<number> {
  const result = await db.deleteFrom('request_signatures').where('expires_at', '<', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}
