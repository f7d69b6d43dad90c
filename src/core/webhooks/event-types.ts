/**
 * The event types a merchant can receive. Each status change of a payment
 * appends `payment.<status>`; creation appends `payment.created` (the payment
 * is then `pending`, so `payment.pending` announces only a return to pending).
 * On-chain payments add `payment.detected` (a transfer seen, not yet
 * confirmed), `payment.underpaid` (confirmed funds short of the amount due),
 * `payment.reversed` (a reorg removed a paying transfer after completion; the
 * payment is pending again) and `payment.late_transfer` (funds arrived after
 * the payment expired or was closed). A payment session's payment adds
 * `payment.quoted` when the customer chooses the asset (the quote is then
 * locked and the deposit address assigned).
 */
export const webhookEventTypes = [
  'payment.created',
  'payment.pending',
  'payment.approved',
  'payment.completed',
  'payment.failed',
  'payment.rejected',
  'payment.cancelled',
  'payment.detected',
  'payment.underpaid',
  'payment.reversed',
  'payment.late_transfer',
  'payment.quoted',
] as const;

export type WebhookEventType = (typeof webhookEventTypes)[number];
