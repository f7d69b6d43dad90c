import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Storage } from '../storage/database.ts';
import { openTestStorage } from '../testing/harness.ts';
import { type ApiKeyAuthenticator, apiKeyCacheTtlMs, createApiKeyAuthenticator, issueApiKey, revokeApiKey } from './api-keys.ts';
import { createMerchant } from './merchants.ts';

const master = { key: Buffer.alloc(32, 9) };
const anHour = 3_600_000;

/** Asks until `authenticator` refuses `key`, for at most `withinMs`; says whether it did. */
async function refusedWithin(authenticator: ApiKeyAuthenticator, key: string, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if ((await authenticator.authenticate(key)) === undefined) return true;
    await sleep(20);
  }
  return false;
}

describe('API keys: cached lookups and revocation', () => {
  let storage: Storage;
  /** What another gateway process has: its own connections to the same database (PostgreSQL), or the same embedded database (PGlite, one process only). */
  let otherStorage: Storage;
  let merchantId: number;

  before(async () => {
    storage = await openTestStorage();
    otherStorage = storage.kind === 'postgres' ? await openTestStorage() : storage;
    merchantId = (await createMerchant(storage.db, master, { name: 'Key cache' })).merchant.id;
  });
  after(async () => {
    if (otherStorage !== storage) await otherStorage.close();
    await storage.close();
  });

  const issue = () => storage.db.transaction().execute((trx) => issueApiKey(trx, master, merchantId));

  it('serves a known key from its cache, without the database, until the TTL runs out', async () => {
    let now = 1_000_000;
    const authenticator = await createApiKeyAuthenticator({ storage, master, now: () => now });
    try {
      const { apiKey, key } = await issue();
      assert.deepEqual(await authenticator.authenticate(key), { keyId: apiKey.id, merchantId });

      // Note: a revocation written behind the authenticator's back (no NOTIFY, as if the notification were lost) …
      await storage.db.updateTable('api_keys').set({ revoked_at: new Date() }).where('id', '=', apiKey.id).execute();
      now += apiKeyCacheTtlMs - 1;
      assert.deepEqual(await authenticator.authenticate(key), { keyId: apiKey.id, merchantId }, 'within the TTL the cached lookup still serves');
      // … is seen once the TTL has run out.
      now += 1;
      assert.equal(await authenticator.authenticate(key), undefined);
    } finally {
      await authenticator.close();
    }
  });

  it('refuses a revoked key at once in the process that revoked it', async () => {
    const authenticator = await createApiKeyAuthenticator({ storage, master, cacheTtlMs: anHour });
    try {
      const { apiKey, key } = await issue();
      assert.ok(await authenticator.authenticate(key));
      await revokeApiKey(storage.db, apiKey.id);
      authenticator.forget();
      assert.equal(await authenticator.authenticate(key), undefined);
      assert.equal(await authenticator.secretOf(key), undefined);
    } finally {
      await authenticator.close();
    }
  });

  it("refuses a revoked key in another process as soon as the revocation's notification arrives, long before the TTL", async () => {
    const here = await createApiKeyAuthenticator({ storage, master, cacheTtlMs: anHour });
    const elsewhere = await createApiKeyAuthenticator({ storage: otherStorage, master, cacheTtlMs: anHour });
    try {
      const [revoked, kept] = [await issue(), await issue()];
      for (const authenticator of [here, elsewhere]) {
        assert.ok(await authenticator.authenticate(revoked.key));
        assert.ok(await authenticator.authenticate(kept.key));
      }
      await revokeApiKey(storage.db, revoked.apiKey.id);
      assert.ok(await refusedWithin(elsewhere, revoked.key, 5_000), 'the other process refuses the revoked key');
      assert.ok(await refusedWithin(here, revoked.key, 5_000), 'so does this one, without being told by the caller');
      assert.deepEqual(await elsewhere.authenticate(kept.key), { keyId: kept.apiKey.id, merchantId }, 'the other keys keep working');
    } finally {
      await here.close();
      await elsewhere.close();
    }
  });

});
