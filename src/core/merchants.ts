import { PayCryptError } from '../internal/errors.ts';
import type { MasterKey } from '../internal/secrets.ts';
import type { Db } from '../storage/database.ts';
import { type IssuedApiKey, issueApiKey } from './api-keys.ts';

export type Merchant = { id: number; name: string; createdAt: Date };

/** Creates a merchant with its first API key; the key and secret exist in clear only in the result. */
export async function createMerchant(db: Db, master: MasterKey, input: { name: string }): Promise<{ merchant: Merchant } & IssuedApiKey> {
  const name = input.name.trim();
  if (name.length === 0 || name.length > 200) {
    throw new PayCryptError('invalid_request', 'name must be 1 to 200 characters', { details: { field: 'name' } });
  }
  return db.transaction().execute(async (trx) => {
    const row = await trx.insertInto('merchants').values({ name }).returningAll().executeTakeFirstOrThrow();
    const issued = await issueApiKey(trx, master, row.id);
    return { merchant: { id: row.id, name: row.name, createdAt: row.created_at }, ...issued };
  });
}

export async function listMerchants(db: Db): Promise<Merchant[]> {
  const rows = await db.selectFrom('merchants').selectAll().orderBy('id').execute();
  return rows.map((row) => ({ id: row.id, name: row.name, createdAt: row.created_at }));
}

export async function requireMerchant(db: Db, merchantId: number): Promise<Merchant> {
  const row = await db.selectFrom('merchants').selectAll().where('id', '=', merchantId).executeTakeFirst();
  if (!row) throw new PayCryptError('resource_not_found', `Merchant not found: ${merchantId}`);
  return { id: row.id, name: row.name, createdAt: row.created_at };
}
