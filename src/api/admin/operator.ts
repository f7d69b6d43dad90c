import { type ApiKey, type ApiKeyAuthenticator, issueApiKey, listApiKeys, revokeApiKey } from '../../core/api-keys.ts';
import type { DepositChains } from '../../core/deposits/deposit-chains.ts';
import { type AssetRef, disableAssets, enableAssets, merchantAssets, type MerchantAssets, setAcceptedAssets } from '../../core/merchant-assets.ts';
import { createMerchant, listMerchants, requireMerchant, type Merchant } from '../../core/merchants.ts';
import type { PaymentStatus } from '../../core/payments/payment.ts';
import { transitionPayment } from '../../core/payments/transitions.ts';
import { redeliverEvent, redeliverFailed } from '../../core/webhooks/delivery-queue.ts';
import {
  findWebhookEndpoint,
  putWebhookSettings,
  rotateWebhookSecret,
  setWebhookEnabled,
  type WebhookSettingsInput,
} from '../../core/webhooks/endpoints.ts';
import type { WebhookUrlPolicy } from '../../core/webhooks/url-safety.ts';
import type { MasterKey } from '../../internal/secrets.ts';
import { renderWebhookSettings } from '../paycrypt/webhooks/views.ts';
import type { Storage } from '../../storage/database.ts';
import { isoSeconds, renderPayment } from '../paycrypt/render.ts';
import { renderAsset } from '../paycrypt/assets/views.ts';

/**
 * What an operator can do, as plain JSON-ready results. The admin API serves
 * it over HTTP and the CLI calls it either in-process or through that API, so
 * both print the same thing.
 */
export type Operator = {
  createMerchant(input: { name: string }): Promise<CreatedMerchantView>;
  listMerchants(): Promise<MerchantView[]>;
  createKey(merchantId: number): Promise<CreatedKeyView>;
  listKeys(merchantId: number): Promise<KeyView[]>;
  revokeKey(keyId: string): Promise<KeyView>;
  actOnPayment(payment: number | string, action: PaymentAction, reason?: string): Promise<ReturnType<typeof renderPayment> & { merchant_id: number }>;
  showWebhook(merchantId: number): Promise<WebhookSettingsView>;
  setWebhook(merchantId: number, input: WebhookSettingsInput): Promise<WebhookSettingsView>;
  disableWebhook(merchantId: number): Promise<WebhookSettingsView>;
  rotateWebhookSecret(merchantId: number, overlapHours?: number): Promise<WebhookSettingsView>;
  redeliver(merchantId: number, target: { eventId: string } | { from: Date; until: Date }): Promise<{ event_ids: string[] }>;
  listAssets(merchantId: number): Promise<MerchantAssetsView>;
  /** `enable` and `disable` add to or take from what the merchant accepts; `set` replaces it (`'all'`: every configured asset). */
  changeAssets(merchantId: number, change: AssetsChange): Promise<MerchantAssetsView>;
};

export type AssetsChange = { enable: AssetRef[] } | { disable: AssetRef[] } | { set: AssetRef[] | 'all' };

export type WebhookSettingsView = ReturnType<typeof renderWebhookSettings>;

export const paymentActions = { approve: 'approved', reject: 'rejected', complete: 'completed', fail: 'failed', cancel: 'cancelled' } as const satisfies Record<
  string,
  PaymentStatus
>;
export type PaymentAction = keyof typeof paymentActions;

export type MerchantView = { merchant_id: number; name: string; created_at: string };
export type KeyView = { key_id: string; merchant_id: number; prefix: string; created_at: string; last_used_at: string | null; revoked_at: string | null };
export type CreatedKeyView = KeyView & { api_key: string; api_secret: string };
export type CreatedMerchantView = MerchantView & { key_id: string; api_key: string; api_secret: string };
export type AssetView = ReturnType<typeof renderAsset>;
export type MerchantAssetsView = { merchant_id: number; accepts: 'all' | 'selected'; data: AssetView[]; not_accepted: AssetView[] };

export function createLocalOperator(context: {
  storage: Storage;
  master: MasterKey;
  chains: DepositChains;
  webhookPolicy: WebhookUrlPolicy;
  secretOverlapHours: number;
  /** The API-key cache of the gateway this operator runs in, if any. */
  authenticator?: Pick<ApiKeyAuthenticator, 'forget'>;
}): Operator {
  const { db } = context.storage;
  const assetsView = (merchantId: number, assets: MerchantAssets): MerchantAssetsView => ({
    merchant_id: merchantId,
    accepts: assets.accepts,
    data: assets.accepted.map(renderAsset),
    not_accepted: assets.notAccepted.map(renderAsset),
  });
  return {
    async createMerchant(input) {
      const created = await createMerchant(db, context.master, input);
      return { ...merchantView(created.merchant), key_id: created.apiKey.id, api_key: created.key, api_secret: created.secret };
    },
    async listMerchants() {
      return (await listMerchants(db)).map(merchantView);
    },
    async createKey(merchantId) {
      await requireMerchant(db, merchantId);
      const issued = await db.transaction().execute((trx) => issueApiKey(trx, context.master, merchantId));
      return { ...keyView(issued.apiKey), api_key: issued.key, api_secret: issued.secret };
    },
    async listKeys(merchantId) {
      await requireMerchant(db, merchantId);
      return (await listApiKeys(db, merchantId)).map(keyView);
    },
    async revokeKey(keyId) {
      const revoked = await revokeApiKey(db, keyId);
      // Note: other processes forget the key when the revocation's NOTIFY reaches them; this one does not wait for it.
      context.authenticator?.forget();
      return keyView(revoked);
    },
    async actOnPayment(payment, action, reason) {
      const changed = await db.transaction().execute((trx) => transitionPayment(trx, { payment, to: paymentActions[action], reason }));
      return { ...renderPayment(changed), merchant_id: changed.merchantId };
    },
    async showWebhook(merchantId) {
      await requireMerchant(db, merchantId);
      return renderWebhookSettings(await findWebhookEndpoint(db, context.master, merchantId), { revealSecret: false });
    },
    async setWebhook(merchantId, input) {
      await requireMerchant(db, merchantId);
      const { endpoint, secretChanged } = await putWebhookSettings(db, context.master, { merchantId, policy: context.webhookPolicy, ...input });
      return renderWebhookSettings(endpoint, { revealSecret: secretChanged });
    },
    async disableWebhook(merchantId) {
      return renderWebhookSettings(await setWebhookEnabled(db, context.master, { merchantId, enabled: false }), { revealSecret: false });
    },
    async rotateWebhookSecret(merchantId, overlapHours) {
      const overlapMs = (overlapHours ?? context.secretOverlapHours) * 3_600_000;
      return renderWebhookSettings(await rotateWebhookSecret(db, context.master, { merchantId, overlapMs }), { revealSecret: true });
    },
    async redeliver(merchantId, target) {
      if ('eventId' in target) {
        await redeliverEvent(db, { merchantId, eventId: target.eventId });
        return { event_ids: [target.eventId] };
      }
      return { event_ids: await redeliverFailed(db, { merchantId, from: target.from, until: target.until }) };
    },
    async listAssets(merchantId) {
      await requireMerchant(db, merchantId);
      return assetsView(merchantId, await merchantAssets(db, context.chains, merchantId));
    },
    async changeAssets(merchantId, change) {
      if ('enable' in change) return assetsView(merchantId, await enableAssets(db, context.chains, merchantId, change.enable));
      if ('disable' in change) return assetsView(merchantId, await disableAssets(db, context.chains, merchantId, change.disable));
      return assetsView(merchantId, await setAcceptedAssets(db, context.chains, merchantId, change.set));
    },
  };
}

function merchantView(merchant: Merchant): MerchantView {
  return { merchant_id: merchant.id, name: merchant.name, created_at: isoSeconds(merchant.createdAt) };
}

function keyView(key: ApiKey): KeyView {
  return {
    key_id: key.id,
    merchant_id: key.merchantId,
    prefix: key.prefix,
    created_at: isoSeconds(key.createdAt),
    last_used_at: key.lastUsedAt && isoSeconds(key.lastUsedAt),
    revoked_at: key.revokedAt && isoSeconds(key.revokedAt),
  };
}
