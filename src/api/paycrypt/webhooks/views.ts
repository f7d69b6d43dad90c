import type { EventRecord } from '../../../core/events.ts';
import type { DeliveryRecord } from '../../../core/webhooks/delivery-queue.ts';
import type { WebhookEndpoint } from '../../../core/webhooks/endpoints.ts';
import { isoSeconds } from '../render.ts';
import { renderPayCryptWebhookBody } from './webhook-payload.ts';

/** Shows a secret's kind and last four characters only. */
export function maskSecret(secret: string): string {
  const kind = /^[a-z]+_/.exec(secret)?.[0] ?? '';
  return `${kind}${'•'.repeat(8)}${secret.slice(-4)}`;
}

/** Webhook settings as the API shows them: the secret in full only when this call created or changed it. */
export function renderWebhookSettings(endpoint: WebhookEndpoint | undefined, options: { revealSecret: boolean }) {
  if (!endpoint) return { enabled: false, url: null, events: null, secret: null, secret_rotation: null, created_at: null, updated_at: null };
  return {
    enabled: endpoint.enabled,
    url: endpoint.url,
    events: endpoint.eventTypes,
    secret: options.revealSecret ? endpoint.secret : maskSecret(endpoint.secret),
    secret_rotation: endpoint.previousSecret ? { previous_secret_expires_at: isoSeconds(endpoint.previousSecret.expiresAt) } : null,
    created_at: isoSeconds(endpoint.createdAt),
    updated_at: isoSeconds(endpoint.updatedAt),
  };
}

/** An event with `data`, the very payload its webhook carries. */
export function renderEvent(event: EventRecord) {
  return {
    id: event.id,
    type: event.type,
    payment_id: event.paymentId,
    created_at: isoSeconds(event.createdAt),
    data: JSON.parse(renderPayCryptWebhookBody(event)) as unknown,
  };
}

export function renderDelivery(delivery: DeliveryRecord) {
  return {
    id: delivery.id,
    event_id: delivery.eventId,
    event_type: delivery.eventType,
    state: delivery.state,
    attempts: delivery.attempts,
    next_attempt_at: delivery.nextAttemptAt && delivery.nextAttemptAt.toISOString(),
    last_status_code: delivery.lastStatusCode,
    last_error: delivery.lastError,
    created_at: delivery.createdAt.toISOString(),
    completed_at: delivery.completedAt && delivery.completedAt.toISOString(),
    attempt_log: delivery.log.map((attempt) => ({
      attempt: attempt.attempt,
      url: attempt.url,
      started_at: attempt.startedAt.toISOString(),
      duration_ms: attempt.durationMs,
      status_code: attempt.statusCode,
      response_excerpt: attempt.responseExcerpt,
      error: attempt.error,
    })),
  };
}
