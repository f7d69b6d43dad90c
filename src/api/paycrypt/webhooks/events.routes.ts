import { z } from 'zod';
import { findEvent, listEvents } from '../../../core/events.ts';
import { listDeliveries, redeliverEvent, redeliverFailed } from '../../../core/webhooks/delivery-queue.ts';
import { webhookEventTypes } from '../../../core/webhooks/event-types.ts';
import { PayCryptError } from '../../../internal/errors.ts';
import type { ApiContext } from '../../context.ts';
import { defineRoute } from '../../route.ts';
import { isoDateFilter, queryInteger } from '../../validation.ts';
import { errorResponseSchema } from '../render.ts';
import { renderDelivery, renderEvent } from './views.ts';

const eventIdParam = z.string().regex(/^evt_[0-9a-z]{1,64}$/, 'expected an event id (evt_…)');
const deliveryId = z.string().regex(/^whd_[0-9a-z]{1,64}$/, 'expected a delivery id (whd_…)');
const denied = { 401: { description: 'Invalid or missing API key', schema: errorResponseSchema } };

/** Events (the record of every change, for recovering missed webhooks), deliveries with their attempts, and redelivery. */
export function eventRoutes(context: ApiContext) {
  const { db } = context.storage;
  const common = { tag: 'Webhooks', security: 'bearer' } as const;
  return [
    defineRoute({
      ...common,
      method: 'GET',
      url: '/events',
      summary: 'List events, newest first (cursor pagination)',
      description: 'Pass the last id of a page as `starting_after` to get the next page, while `has_more` is true.',
      query: z.object({
        limit: queryInteger(1, 100).optional().meta({ description: 'Events per page (default 20, max 100)' }),
        starting_after: eventIdParam.optional().meta({ description: 'Cursor: the last event id of the previous page' }),
        type: z.enum(webhookEventTypes).optional(),
        payment_id: queryInteger(1, Number.MAX_SAFE_INTEGER).optional(),
      }),
      responses: { 200: { description: 'A page of events' }, ...denied },
      async handler({ request, query }) {
        const limit = query.limit ?? 20;
        const page = await listEvents(db, {
          merchantId: request.auth!.merchantId,
          limit,
          startingAfter: query.starting_after,
          type: query.type,
          paymentId: query.payment_id,
        });
        return { data: page.events.map(renderEvent), has_more: page.hasMore, next_cursor: page.hasMore ? page.events.at(-1)!.id : null };
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      url: '/events/:event_id',
      summary: 'Get an event with its webhook payload',
      params: z.object({ event_id: eventIdParam }),
      responses: { 200: { description: 'The event' }, 404: { description: 'No such event', schema: errorResponseSchema }, ...denied },
      async handler({ request, params }) {
        const event = await findEvent(db, { merchantId: request.auth!.merchantId, eventId: params.event_id });
        if (!event) throw new PayCryptError('resource_not_found', `Event not found: ${params.event_id}`);
        return renderEvent(event);
      },
    }),
    defineRoute({
      ...common,
      method: 'POST',
      url: '/events/:event_id/redeliver',
      summary: 'Send an event to the webhook URL again',
      params: z.object({ event_id: eventIdParam }),
      responses: { 202: { description: 'Queued' }, 404: { description: 'No such event', schema: errorResponseSchema }, ...denied },
      async handler({ request, reply, params }) {
        const id = await redeliverEvent(db, { merchantId: request.auth!.merchantId, eventId: params.event_id });
        return reply.code(202).send({ delivery_id: id, event_id: params.event_id, state: 'pending' });
      },
    }),
    defineRoute({
      ...common,
      method: 'GET',
      url: '/webhook_deliveries',
      summary: 'List webhook deliveries with every attempt (time, status, latency, first KiB of the answer, error)',
      query: z.object({
        event_id: eventIdParam.optional(),
        state: z.enum(['pending', 'succeeded', 'failed']).optional(),
        limit: queryInteger(1, 100).optional(),
        starting_after: deliveryId.optional(),
      }),
      responses: { 200: { description: 'A page of deliveries' }, ...denied },
      async handler({ request, query }) {
        const page = await listDeliveries(db, {
          merchantId: request.auth!.merchantId,
          limit: query.limit ?? 20,
          eventId: query.event_id,
          state: query.state,
          startingAfter: query.starting_after,
        });
        return { data: page.deliveries.map(renderDelivery), has_more: page.hasMore, next_cursor: page.hasMore ? page.deliveries.at(-1)!.id : null };
      },
    }),
    defineRoute({
      ...common,
      method: 'POST',
      url: '/webhook_deliveries/redeliver',
      summary: 'Send again every event whose delivery failed for good in a time range',
      body: z.object({ from_date: isoDateFilter, to_date: isoDateFilter }).strict(),
      responses: { 202: { description: 'Queued' }, ...denied },
      async handler({ request, reply, body }) {
        const eventIds = await redeliverFailed(db, { merchantId: request.auth!.merchantId, from: body.from_date.start, until: body.to_date.end });
        return reply.code(202).send({ redelivered: eventIds.length, event_ids: eventIds });
      },
    }),
  ];
}
