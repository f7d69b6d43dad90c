import { createHash } from 'node:crypto';
import type { Payment } from '../core/payments/payment.ts';
import { formatUnits } from '../internal/decimal.ts';

/**
 * The payment page a customer opens from `checkout_url`: what to pay, where,
 * until when, and how far the payment has got. Server-rendered, no script,
 * nothing loaded from elsewhere (`default-src 'none'`); it refreshes itself
 * every few seconds while the payment is open.
 *
 * @dev The URL's transaction id (`pay_` + 20 random characters) is the
 * capability: the page shows only what the customer needs to pay.
 */
const style = `
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1b1f24; }
  main { max-width: 32rem; margin: 2rem auto; background: #fff; border-radius: 12px; padding: 1.5rem; box-shadow: 0 1px 3px #0002; }
  h1 { font-size: 1.25rem; margin: 0 0 1rem; }
  dl { display: grid; grid-template-columns: auto 1fr; gap: .5rem 1rem; margin: 0; }
  dt { color: #5b6470; } dd { margin: 0; word-break: break-all; }
  code { font-size: .95rem; background: #f0f2f5; padding: .1rem .3rem; border-radius: 4px; }
  .status { margin: 1rem 0 0; padding: .75rem; border-radius: 8px; background: #eef4ff; }
  .done { background: #e8f7ee; } .problem { background: #fdf1e7; }
`;
const styleHash = createHash('sha256').update(style).digest('base64');
export const paymentPageContentSecurityPolicy = `default-src 'none'; style-src 'sha256-${styleHash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function statusLine(payment: Payment): { text: string; tone: '' | 'done' | 'problem'; open: boolean } {
  if (payment.status === 'completed') return { text: payment.settlement === 'overpaid' ? 'Paid (more than the amount due was received).' : 'Paid. Thank you!', tone: 'done', open: false };
  if (payment.settlement === 'expired') return { text: 'This payment has expired. Funds sent now are recorded; contact the merchant.', tone: 'problem', open: false };
  if (payment.status !== 'pending' && payment.status !== 'approved') return { text: `This payment is ${payment.status}.`, tone: 'problem', open: false };
  switch (payment.settlement) {
    case 'detected':
      return { text: `Payment seen on the chain; waiting for ${payment.deposit?.requiredConfirmations ?? 1} confirmations.`, tone: '', open: true };
    case 'underpaid':
      return { text: 'Part of the amount has arrived. Send the remaining amount to the same address.', tone: 'problem', open: true };
    default:
      return { text: 'Waiting for your payment.', tone: '', open: true };
  }
}

export function renderCheckoutPage(payment: Payment): string {
  const crypto = payment.crypto!;
  const deposit = payment.deposit!;
  const remaining = crypto.amount > payment.amountPaid ? crypto.amount - payment.amountPaid : 0n;
  const status = statusLine(payment);
  const rows: Array<[string, string]> = [
    ['Amount', `<strong>${escapeHtml(formatUnits(remaining > 0n && payment.amountPaid > 0n ? remaining : crypto.amount, crypto.decimals))} ${escapeHtml(crypto.currency)}</strong>`],
    ['Network', escapeHtml(crypto.network ?? deposit.chain)],
    ['Address', `<code>${escapeHtml(deposit.address)}</code>`],
    ['Order', `${escapeHtml(formatUnits(payment.amount, payment.currencyDecimals, payment.currencyDecimals))} ${escapeHtml(payment.currency)}`],
    ...(payment.amountDetected > 0n ? ([['Received', `${escapeHtml(formatUnits(payment.amountDetected, crypto.decimals))} ${escapeHtml(crypto.currency)}`]] as Array<[string, string]>) : []),
    ...(deposit.expiresAt && status.open ? ([['Pay before', `${escapeHtml(deposit.expiresAt.toISOString().replace('T', ' ').slice(0, 16))} UTC`]] as Array<[string, string]>) : []),
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${status.open ? '<meta http-equiv="refresh" content="5">' : ''}
<title>Pay ${escapeHtml(crypto.currency)} · PayCrypt</title>
<style>${style}</style>
</head>
<body>
<main>
<h1>${escapeHtml(payment.description ?? 'Payment')}</h1>
<dl>
${rows.map(([name, value]) => `<dt>${name}</dt><dd>${value}</dd>`).join('\n')}
</dl>
<p class="status ${status.tone}" role="status">${status.text}</p>
</main>
</body>
</html>
`;
}
