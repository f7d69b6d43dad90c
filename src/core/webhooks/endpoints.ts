import { type Selectable, sql } from 'kysely';
import { PayCryptError } from '../../internal/errors.ts';
import { createId, randomToken } from '../../internal/ids.ts';
import { type MasterKey, seal, unseal } from '../../internal/secrets.ts';
import type { Db, Transaction } from '../../storage/database.ts';
import type { WebhookEndpointTable, WebhookFormat } from '../../storage/schema.ts';
import { pauseDeliveries, waitingStates, webhookChannel } from './delivery-queue.ts';
import { type WebhookEventType, webhookEventTypes } from './event-types.ts';
import { checkWebhookUrl, type WebhookUrlPolicy } from './url-safety.ts';

/**
 * A merchant's webhook settings: one endpoint (URL, on/off, event types) and
 * its signing secret, sealed at rest. After a rotation the previous secret
 * keeps signing until its overlap ends.
 */
export type WebhookEndpoint = {
  id: string;
  merchantId: number;
  url: string;
  enabled: boolean;
  /** null: every event type. */
  eventTypes: WebhookEventType[] | null;
  secret: string;
  previousSecret: { secret: string; expiresAt: Date } | null;
  createdAt: Date;
  updatedAt: Date;
  /** The payment whose events alone this endpoint takes (a session's `webhook_url`); null for the merchant's settings endpoint. */
  paymentId: number | null;
  format: WebhookFormat;
  /** The API key named in `X-Paycrypt-Key` (payment session format). */
  signingKey: string | null;
  /** JSON text of what the endpoint's webhooks carry besides the payment (payment session format: the session). */
  context: string | null;
};

export const minSecretLength = 16;

export function generateWebhookSecret(): string {
  return `whsec_${randomToken(40)}`;
}

export function endpointFromRow(master: MasterKey, row: Selectable<WebhookEndpointTable>, now = new Date()): WebhookEndpoint {
  const previousActive = row.previous_secret_sealed !== null && row.previous_secret_expires_at !== null && row.previous_secret_expires_at > now;
  return {
    id: row.id,
    merchantId: row.merchant_id,
    url: row.url,
    enabled: row.enabled,
    eventTypes: row.event_types as WebhookEventType[] | null,
    secret: unseal(master, row.secret_sealed),
    previousSecret: previousActive ? { secret: unseal(master, row.previous_secret_sealed!), expiresAt: row.previous_secret_expires_at! } : null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    paymentId: row.payment_id,
    format: row.format,
    signingKey: row.signing_key_sealed === null ? null : unseal(master, row.signing_key_sealed),
    context: row.context,
  };
}

export async function findWebhookEndpoint(db: Db, master: MasterKey, merchantId: number): Promise<WebhookEndpoint | undefined> {
  const row = await db.selectFrom('webhook_endpoints').selectAll().where('merchant_id', '=', merchantId).where('payment_id', 'is', null).executeTakeFirst();
  return row && endpointFromRow(master, row);
}

export type WebhookSettingsInput = {
  url: string;
  enabled: boolean;
  /** A secret the merchant provides; one is generated when none exists yet and none is given. */
  secret?: string | undefined;
  /** Event types to send; undefined keeps the current choice (every type for a new endpoint). */
  events?: string[] | null | undefined;
};

/**
 * Creates or replaces a merchant's webhook settings. Returns the endpoint and
 * whether the secret was created or changed by this call (it is then shown in
 * full once).
 */
export async function putWebhookSettings(
  db: Db,
  master: MasterKey,
  input: { merchantId: number; policy: WebhookUrlPolicy } & WebhookSettingsInput,
): Promise<{ endpoint: WebhookEndpoint; secretChanged: boolean }> {
  const url = (await checkWebhookUrl(input.url, input.policy)).toString();
  const eventTypes = input.events === undefined ? undefined : input.events === null ? null : checkEventTypes(input.events);
  if (input.secret !== undefined) checkSecret(input.secret);

  return db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('webhook_endpoints').selectAll().where('merchant_id', '=', input.merchantId).where('payment_id', 'is', null).forUpdate().executeTakeFirst();
    const now = new Date();
    const currentSecret = existing && unseal(master, existing.secret_sealed);
    const secret = input.secret ?? currentSecret ?? generateWebhookSecret();
    const secretChanged = secret !== currentSecret;
    const values = {
      url,
      enabled: input.enabled,
      ...pauseFlag(input.enabled),
      secret_sealed: secretChanged ? seal(master, secret) : existing!.secret_sealed,
      updated_at: now,
      ...(eventTypes !== undefined ? { event_types: eventTypes === null ? null : JSON.stringify(eventTypes) } : {}),
      // Note: a secret the merchant sets replaces the old one at once; only a rotation keeps the old one signing.
      ...(secretChanged ? { previous_secret_sealed: null, previous_secret_expires_at: null } : {}),
    };
    const row = existing
      ? await trx.updateTable('webhook_endpoints').set(values).where('id', '=', existing.id).returningAll().executeTakeFirstOrThrow()
      : await trx
          .insertInto('webhook_endpoints')
          .values({ id: createId('whe', 16), merchant_id: input.merchantId, created_at: now, event_types: null, ...values })
          .returningAll()
          .executeTakeFirstOrThrow();
    await switchDeliveries(trx, row, now);
    return { endpoint: endpointFromRow(master, row, now), secretChanged };
  });
}

/**
 * Replaces the signing secret with a new one; the old one keeps signing
 * alongside it for `overlapMs` so receivers can switch without losing events.
 */
export async function rotateWebhookSecret(db: Db, master: MasterKey, input: { merchantId: number; overlapMs: number }): Promise<WebhookEndpoint> {
  return db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('webhook_endpoints').selectAll().where('merchant_id', '=', input.merchantId).where('payment_id', 'is', null).forUpdate().executeTakeFirst();
    if (!existing) throw new PayCryptError('resource_not_found', 'No webhook settings to rotate: set a webhook URL first');
    const now = new Date();
    const row = await trx
      .updateTable('webhook_endpoints')
      .set({
        secret_sealed: seal(master, generateWebhookSecret()),
        previous_secret_sealed: input.overlapMs > 0 ? existing.secret_sealed : null,
        previous_secret_expires_at: input.overlapMs > 0 ? new Date(now.getTime() + input.overlapMs) : null,
        updated_at: now,
      })
      .where('id', '=', existing.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return endpointFromRow(master, row, now);
  });
}

/**
 * Removes a merchant's webhook settings. Deliveries still waiting end as
 * failed (they stay in the log and can be redelivered once a URL is set again).
 */
export async function deleteWebhookSettings(db: Db, merchantId: number): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('webhook_endpoints').select('id').where('merchant_id', '=', merchantId).where('payment_id', 'is', null).forUpdate().executeTakeFirst();
    if (!existing) return false;
    await trx
      .updateTable('webhook_deliveries')
      .set({ state: 'failed', last_error: 'webhook settings deleted', completed_at: new Date(), locked_until: null })
      .where('endpoint_id', '=', existing.id)
      .where('state', 'in', waitingStates)
      .execute();
    await trx.deleteFrom('webhook_endpoints').where('id', '=', existing.id).execute();
    return true;
  });
}

/**
 * Gives one payment an endpoint of its own (a payment session's
 * `webhook_url`), in the payment's transaction. It takes only that payment's
 * events of `eventTypes`, rendered in `format` and signed with `secret`. The
 * URL must have passed `checkWebhookUrl` already.
 */
export async function addPaymentEndpoint(
  trx: Transaction,
  master: MasterKey,
  input: { merchantId: number; paymentId: number; url: string; format: WebhookFormat; eventTypes: readonly WebhookEventType[]; secret: string; signingKey: string; context: string },
): Promise<void> {
  const now = new Date();
  await trx
    .insertInto('webhook_endpoints')
    .values({
      id: createId('whe', 16),
      merchant_id: input.merchantId,
      payment_id: input.paymentId,
      url: input.url,
      enabled: true,
      event_types: JSON.stringify(input.eventTypes),
      secret_sealed: seal(master, input.secret),
      previous_secret_sealed: null,
      previous_secret_expires_at: null,
      signing_key_sealed: seal(master, input.signingKey),
      format: input.format,
      context: input.context,
      created_at: now,
      updated_at: now,
    })
    .execute();
}

/**
 * Pauses a switched-off endpoint's waiting deliveries, or wakes the
 * dispatchers for a switched-on one's: they claim its paused deliveries as
 * they are, so switching on rewrites none of them however many wait.
 */
async function switchDeliveries(trx: Transaction, endpoint: { id: string; enabled: boolean }, now: Date): Promise<void> {
  if (!endpoint.enabled) return pauseDeliveries(trx, endpoint.id, now);
  await sql`select pg_notify(${webhookChannel}, '')`.execute(trx);
}

/** An endpoint written switched off is flagged as having paused deliveries, for the claims (see `clearDrainedPauseFlags`). */
const pauseFlag = (enabled: boolean) => (enabled ? {} : { has_paused_deliveries: true });

function checkEventTypes(events: string[]): WebhookEventType[] {
  if (events.length === 0) throw new PayCryptError('invalid_request', 'events must name at least one event type (omit it for all)', { details: { field: 'events' } });
  const unknown = events.filter((type) => !(webhookEventTypes as readonly string[]).includes(type));
  if (unknown.length > 0) {
    throw new PayCryptError('invalid_request', `Unknown event type${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`, {
      details: { field: 'events', allowed: webhookEventTypes },
    });
  }
  return [...new Set(events)] as WebhookEventType[];
}

function checkSecret(secret: string) {
  if (secret.length < minSecretLength || secret.length > 256 || !/^[\x21-\x7e]+$/.test(secret)) {
    throw new PayCryptError('invalid_request', `secret must be ${minSecretLength} to 256 printable ASCII characters without spaces`, {
      details: { field: 'secret' },
    });
  }
}

/** Switches webhooks off (or on) without touching URL, events or secret. */
export async function setWebhookEnabled(db: Db, master: MasterKey, input: { merchantId: number; enabled: boolean }): Promise<WebhookEndpoint> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable('webhook_endpoints')
      .set({ enabled: input.enabled, ...pauseFlag(input.enabled), updated_at: new Date() })
      .where('merchant_id', '=', input.merchantId)
      .where('payment_id', 'is', null)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new PayCryptError('resource_not_found', 'No webhook settings: set a webhook URL first');
    await switchDeliveries(trx, row, row.updated_at);
    return endpointFromRow(master, row);
  });
}
