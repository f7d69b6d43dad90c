import type { Operator } from '../api/admin/operator.ts';
import { type ErrorCode, PayCryptError, errorStatus } from '../internal/errors.ts';

/** The operator actions through a running gateway's admin API, for when the CLI must not open the database itself. */
export function createRemoteOperator(options: { url: string; token: string }): Operator {
  async function call<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${options.url}/admin/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${options.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? null : JSON.stringify(body),
      });
    } catch (error) {
      throw new PayCryptError('service_unavailable', `Cannot reach the gateway at ${options.url}`, { cause: error });
    }
    const payload = (await response.json().catch(() => undefined)) as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined;
    if (!response.ok) {
      const code = (payload?.error?.code && payload.error.code in errorStatus ? payload.error.code : 'internal_error') as ErrorCode;
      throw new PayCryptError(code, payload?.error?.message ?? `HTTP ${response.status}`, payload?.error?.details ? { details: payload.error.details } : {});
    }
    return payload as T;
  }

  return {
    createMerchant: (input) => call('POST', '/merchants', input),
    listMerchants: async () => (await call<{ data: Awaited<ReturnType<Operator['listMerchants']>> }>('GET', '/merchants')).data,
    createKey: (merchantId) => call('POST', `/merchants/${merchantId}/keys`),
    listKeys: async (merchantId) => (await call<{ data: Awaited<ReturnType<Operator['listKeys']>> }>('GET', `/merchants/${merchantId}/keys`)).data,
    revokeKey: (keyId) => call('POST', `/keys/${encodeURIComponent(keyId)}/revoke`),
    actOnPayment: (payment, action, reason) => call('POST', `/payments/${encodeURIComponent(String(payment))}/${action}`, reason === undefined ? {} : { reason }),
    showWebhook: (merchantId) => call('GET', `/merchants/${merchantId}/webhook_settings`),
    setWebhook: (merchantId, input) => call('PUT', `/merchants/${merchantId}/webhook_settings`, input),
    disableWebhook: (merchantId) => call('POST', `/merchants/${merchantId}/webhook_settings/disable`),
    rotateWebhookSecret: (merchantId, overlapHours) =>
      call('POST', `/merchants/${merchantId}/webhook_settings/rotate_secret`, overlapHours === undefined ? {} : { overlap_hours: overlapHours }),
    redeliver: (merchantId, target) =>
      call(
        'POST',
        `/merchants/${merchantId}/redeliver`,
        'eventId' in target ? { event_id: target.eventId } : { from_date: target.from.toISOString(), to_date: target.until.toISOString() },
      ),
    listAssets: (merchantId) => call('GET', `/merchants/${merchantId}/assets`),
    changeAssets: (merchantId, change) => {
      if ('set' in change) return call('PUT', `/merchants/${merchantId}/assets`, { assets: change.set });
      return 'enable' in change
        ? call('POST', `/merchants/${merchantId}/assets/enable`, { assets: change.enable })
        : call('POST', `/merchants/${merchantId}/assets/disable`, { assets: change.disable });
    },
  };
}
