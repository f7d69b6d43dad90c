import { z } from 'zod';
import { findPayment } from '../../../core/payments/query-payments.ts';
import { PayCryptError } from '../../../internal/errors.ts';
import { type ApiContext, publicUrlOf } from '../../context.ts';
import { defineRoute } from '../../route.ts';
import { errorResponseSchema, paymentResponseSchema, renderPayment } from '../render.ts';

/** A payment is named by its numeric `id` or its `transaction_id`. */
export const paymentIdParam = z
  .string()
  .regex(/^(?:[1-9]\d{0,14}|pay_[0-9a-z]{1,64})$/, 'expected a payment id (123) or transaction id (pay_…)')
  .transform((value) => (value.startsWith('pay_') ? value : Number(value)))
  .meta({ type: 'string', description: 'The payment\'s numeric `id` or its `transaction_id`' });

export function getPaymentRoute(context: ApiContext) {
  return defineRoute({
    method: 'GET',
    url: '/payments/:payment_id',
    summary: 'Get a payment',
    tag: 'Payments',
    security: 'bearer',
    params: z.object({ payment_id: paymentIdParam }),
    responses: {
      200: { description: 'The payment', schema: paymentResponseSchema },
      401: { description: 'Invalid or missing API key', schema: errorResponseSchema },
      404: { description: 'No such payment for this merchant', schema: errorResponseSchema },
    },
    async handler({ request, params }) {
      const payment = await findPayment(context.storage.db, { merchantId: request.auth!.merchantId, payment: params.payment_id });
      if (!payment) throw new PayCryptError('resource_not_found', `Payment not found: ${params.payment_id}`);
      return renderPayment(payment, { publicUrl: publicUrlOf(context, request) });
    },
  });
}
