import { type Kysely, type Migration, Migrator, sql } from 'kysely';
import * as initial from './0001_initial.ts';
import * as webhooks from './0002_webhooks.ts';
import * as chains from './0003_chains.ts';
import * as paymentCounts from './0004_payment_counts.ts';
import * as paymentSessions from './0005_payment_sessions.ts';
import * as merchantAssets from './0006_merchant_assets.ts';
import * as paymentCountTable from './0007_payment_count_table.ts';
import * as hotPathKeys from './0008_hot_path_keys.ts';
import * as pausedDeliveries from './0009_paused_deliveries.ts';
import * as watchedAddressHash from './0010_watched_address_hash.ts';
import * as orderedDueDeliveries from './0011_ordered_due_deliveries.ts';
import * as roomForUpdates from './0012_room_for_updates.ts';
import * as attemptKeys from './0013_attempt_keys.ts';
import * as eventDataJson from './0014_event_data_json.ts';
import * as pausedDeliveriesClaimed from './0015_paused_deliveries_claimed.ts';

/** Every migration, in order. One set serves PostgreSQL and PGlite alike. */
const migrations: Record<string, Migration> = {
  '0001_initial': initial,
  '0002_webhooks': webhooks,
  '0003_chains': chains,
  '0004_payment_counts': paymentCounts,
  '0005_payment_sessions': paymentSessions,
  '0006_merchant_assets': merchantAssets,
  '0007_payment_count_table': paymentCountTable,
  '0008_hot_path_keys': hotPathKeys,
  '0009_paused_deliveries': pausedDeliveries,
  '0010_watched_address_hash': watchedAddressHash,
  '0011_ordered_due_deliveries': orderedDueDeliveries,
  '0012_room_for_updates': roomForUpdates,
  '0013_attempt_keys': attemptKeys,
  '0014_event_data_json': eventDataJson,
  '0015_paused_deliveries_claimed': pausedDeliveriesClaimed,
};

/** Key of the advisory lock that lets one process at a time migrate a shared database. */
const migrationLockKey = 7_061_001;

/**
 * Brings the schema up to date. Safe when several processes start at once:
 * they queue on a session advisory lock, and the later ones find nothing to do.
 */
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  return db.connection().execute(async (connection) => {
    await sql`select pg_advisory_lock(${migrationLockKey})`.execute(connection);
    try {
      const migrator = new Migrator({
        db: connection,
        provider: { getMigrations: async () => migrations },
      });
      const { error, results = [] } = await migrator.migrateToLatest();
      if (error) throw error;
      return results.filter((result) => result.status === 'Success').map((result) => result.migrationName);
    } finally {
      await sql`select pg_advisory_unlock(${migrationLockKey})`.execute(connection);
    }
  });
}
