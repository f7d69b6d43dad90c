import { z } from 'zod';
import { deleteWebhookSettings, findWebhookEndpoint, putWebhookSettings, rotateWebhookSecret } from '../../../core/webhooks/endpoints.ts';
import { webhookEventTypes } from '../../../core/webhooks/event-types.ts';
import type { ApiContext } from '../../context.ts';
import { defineRoute } from '../../route.ts';
import { jsonInteger } from '../../validation.ts';
import { errorResponseSchema } from '../render.ts';
import { renderWebhookSettings } from './views.ts';

const settingsSchema = z
  .object({
    enabled: z.boolean(),
    url: z.string().nullable(),
    events: z.array(z.enum(webhookEventTypes)).nullable().meta({ description: 'null: every event type' }),
    secret: z.string().nullable().meta({ description: 'In full only in the answer that created or changed it; masked otherwise' }),
    secret_rotation: z.object({ previous_secret_expires_at: z.string() }).nullable(),
    created_at: z.string().nullable(),
    updated_at: z.string().nullable(),
  })
  .meta({ id: 'WebhookSettings' });

export const webhookSettingsBody = z
  .object({
    url: z.string().max(2048).meta({ description: 'Where to POST events: https (http allowed in development)' }),
    enabled: z.boolean(),
    secret: z.string().optional().meta({ description: 'Your own signing secret (16 to 256 characters); generated when omitted on first set-up' }),
    events: z.array(z.string()).nullable().optional().meta({ description: 'Event types to send; null or omitted: every type' }),
  })
  .strict();

export const rotateSecretBody = z
  .object({ overlap_hours: jsonInteger(0, 720, 'How long the previous secret keeps signing (default 24)').optional() })
  .strict()
  .optional();

const responses = {
  200: { description: 'The webhook settings', schema: settingsSchema },
  400: { description: 'Invalid settings', schema: errorResponseSchema },
  401: { description: 'Invalid or missing API key', schema: errorResponseSchema },
};

/** "Webhook Settings" over the API: one endpoint per merchant, its events and its secret. */
export function webhookSettingsRoutes(context: ApiContext) {
  const { db } = context.storage;
  const common = { tag: 'Webhooks', security: 'bearer' } as const;
  return [
    defineRoute({
      ...common,
      method: 'GET',
      url: '/webhook_settings',
      summary: 'Get the webhook settings (secret masked)',
      responses,
      handler: async ({ request }) => renderWebhookSettings(await findWebhookEndpoint(db, context.master, request.auth!.merchantId), { revealSecret: false }),
    }),
    defineRoute({
      ...common,
      method: 'PUT',
      url: '/webhook_settings',
      summary: 'Set the webhook URL, switch webhooks on or off, choose events, provide or generate the secret',
      body: webhookSettingsBody,
      responses,
      async handler({ request, body }) {
        const { endpoint, secretChanged } = await putWebhookSettings(db, context.master, {
          merchantId: request.auth!.merchantId,
          policy: context.webhookPolicy,
          ...body,
        });
        return renderWebhookSettings(endpoint, { revealSecret: secretChanged });
      },
    }),
    defineRoute({
      ...common,
      method: 'DELETE',
      url: '/webhook_settings',
      summary: 'Remove the webhook settings; deliveries still waiting end as failed',
      responses,
      async handler({ request }) {
        await deleteWebhookSettings(db, request.auth!.merchantId);
        return renderWebhookSettings(undefined, { revealSecret: false });
      },
    }),
    defineRoute({
      ...common,
      method: 'POST',
      url: '/webhook_settings/rotate_secret',
      summary: 'Rotate the signing secret; the previous one keeps signing during the overlap',
      description:
        'During the overlap X-Paycrypt-Signature is still made with the previous secret and X-Paycrypt-Signature-Next with the new one, ' +
        'so receivers keep working while they switch. `overlap_hours: 0` retires the previous secret at once.',
      body: rotateSecretBody,
      responses: { ...responses, 404: { description: 'No webhook settings yet', schema: errorResponseSchema } },
      async handler({ request, body }) {
        const overlapHours = body?.overlap_hours ?? context.config.webhooks.secretOverlapHours;
        const endpoint = await rotateWebhookSecret(db, context.master, { merchantId: request.auth!.merchantId, overlapMs: overlapHours * 3_600_000 });
        return renderWebhookSettings(endpoint, { revealSecret: true });
      },
    }),
  ];
}
