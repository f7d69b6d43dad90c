import { z } from 'zod';
import { paymentStatuses } from '../../../core/payments/payment.ts';
import { listPayments } from '../../../core/payments/query-payments.ts';
import { PayCryptError } from '../../../internal/errors.ts';
import { type ApiContext, publicUrlOf } from '../../context.ts';
import { defineRoute } from '../../route.ts';
import { isoDateFilter, queryInteger } from '../../validation.ts';
import { errorResponseSchema, paymentResponseSchema, renderPayment } from '../render.ts';

const listQuery = z.object({
  status: z.enum(paymentStatuses).optional().meta({ description: 'Filter by status' }),
  page: queryInteger(1, 1_000_000).optional().meta({ description: 'Page number (default: 1)' }),
  per_page: queryInteger(1, 100).optional().meta({ description: 'Items per page (default: 20, max: 100)' }),
  from_date: isoDateFilter.optional().meta({ description: 'Created at or after (ISO 8601, inclusive; UTC without an offset)' }),
  to_date: isoDateFilter.optional().meta({ description: 'Created at or before (ISO 8601, inclusive: a date covers its whole day, a time its whole second)' }),
});

export function listPaymentsRoute(context: ApiContext) {
  return defineRoute({
    method: 'GET',
    url: '/payments',
    summary: 'List payments',
    description: 'Newest first. `from_date` and `to_date` are both inclusive.',
    tag: 'Payments',
    security: 'bearer',
    query: listQuery,
    responses: {
      200: {
        description: 'A page of payments',
        schema: z.object({
          data: z.array(paymentResponseSchema),
          pagination: z.object({ page: z.number().int(), per_page: z.number().int(), total: z.number().int(), pages: z.number().int() }),
        }),
      },
      400: { description: 'Invalid filter', schema: errorResponseSchema },
      401: { description: 'Invalid or missing API key', schema: errorResponseSchema },
    },
    async handler({ request, query }) {
      const page = query.page ?? 1;
      const perPage = query.per_page ?? 20;
      const from = query.from_date?.start;
      const until = query.to_date?.end;
      if (from && until && from >= until) {
        throw new PayCryptError('invalid_request', 'from_date must not be after to_date', {
          details: { invalid_fields: [{ field: 'from_date', message: 'must not be after to_date' }] },
        });
      }
      const { payments, total } = await listPayments(context.storage.db, {
        merchantId: request.auth!.merchantId,
        status: query.status,
        from,
        until,
        page,
        perPage,
      });
      return {
        data: payments.map((payment) => renderPayment(payment, { publicUrl: publicUrlOf(context, request) })),
        pagination: { page, per_page: perPage, total, pages: Math.ceil(total / perPage) },
      };
    },
  });
}
