import type { PaymentSession } from '../../core/payments/payment-sessions.ts';
import { formatUnits } from '../../internal/decimal.ts';
import { type CheckoutState, checkoutSteps } from './checkout-state.ts';

/** An asset the customer can choose, with what the order costs in it right now. */
export type AssetChoice = { network: string; symbol: string; estimate: string | null };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/**
 * The hosted checkout of a payment session. Server-rendered and usable
 * without script (forms and links); `checkout.js` adds copy buttons, the
 * countdown and live status over server-sent events. Everything comes from
 * the gateway's own origin.
 */
export function renderSessionPage(input: {
  session: PaymentSession;
  state: CheckoutState;
  choices: AssetChoice[];
  /** Whether this gateway runs in `paycrypt dev` with a funded wallet that can pay. */
  devWallet: boolean;
  notice?: string | undefined;
}): string {
  const { session, state } = input;
  const base = `/checkout/${session.id}`;
  const fiat = `${formatUnits(session.payment.amount, session.payment.currencyDecimals, session.payment.currencyDecimals)} ${session.payment.currency}`;
  const body = state.status === 'created' ? chooseSection(base, input.choices) : paySection(base, state, input.devWallet);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Pay ${escapeHtml(fiat)} · PayCrypt</title>
<link rel="stylesheet" href="/checkout/assets/checkout.css">
<script src="/checkout/assets/checkout.js" defer></script>
</head>
<body>
<main id="checkout" data-session="${escapeHtml(session.id)}" data-status="${state.status}"${state.redirectUrl ? ` data-redirect="${escapeHtml(state.redirectUrl)}"` : ''}>
<header>
<p class="order">Order ${escapeHtml(session.orderId)}</p>
<h1>${escapeHtml(fiat)}</h1>
</header>
${input.notice ? `<p class="notice" role="alert">${escapeHtml(input.notice)}</p>` : ''}
<p id="status" class="status ${state.tone}" role="status" aria-live="polite">${escapeHtml(state.message)}</p>
${body}
${deadlineLine(state)}
<footer>
${session.cancelUrl ? `<a id="cancel" href="${escapeHtml(session.cancelUrl)}">Cancel and return to the merchant</a>` : ''}
${state.redirectUrl ? `<a id="return" class="button" href="${escapeHtml(state.redirectUrl)}">Return to the merchant</a>` : ''}
<p class="brand">Secured by PayCrypt</p>
</footer>
</main>
</body>
</html>
`;
}

function chooseSection(base: string, choices: AssetChoice[]): string {
  if (choices.length === 0) return '<p class="notice">This merchant accepts no currency at the moment. Contact the merchant.</p>';
  return `<form id="choose" method="post" action="${base}/asset">
<fieldset>
<legend>Pay with</legend>
<ul class="choices">
${choices
  .map(
    (choice) =>
      `<li><button type="submit" name="asset" value="${escapeHtml(`${choice.network}:${choice.symbol}`)}"><strong>${escapeHtml(choice.symbol)}</strong> <span class="network">on ${escapeHtml(choice.network)}</span>${choice.estimate ? ` <span class="estimate">${escapeHtml(choice.estimate)} ${escapeHtml(choice.symbol)}</span>` : ''}</button></li>`,
  )
  .join('\n')}
</ul>
</fieldset>
<p class="hint">The amount is fixed for a while once you choose.</p>
</form>`;
}

function paySection(base: string, state: CheckoutState, devWallet: boolean): string {
  const amount = state.status === 'underpaid' ? state.amountRemaining : state.amountDue;
  return `<section id="pay"${state.open ? '' : ' class="closed"'}>
<ol class="steps" aria-label="Progress">
${checkoutSteps.map((label, index) => `<li data-step="${index}"${stepClass(state, index)}>${label}</li>`).join('\n')}
</ol>
<div class="payto">
<div class="field">
<span class="label">${state.status === 'underpaid' ? 'Remaining amount' : 'Amount'}</span>
<span class="value"><strong id="amount">${escapeHtml(amount ?? '')}</strong> ${escapeHtml(state.asset ?? '')}</span>
<button type="button" class="copy" data-copy-from="amount" aria-label="Copy the amount">Copy</button>
</div>
${state.rate ? `<div class="field">
<span class="label">Rate, locked</span>
<span class="value" id="rate">${escapeHtml(state.rate)}</span>
</div>` : ''}
<div class="field">
<span class="label">Network</span>
<span class="value" id="network">${escapeHtml(state.network ?? '')}</span>
</div>
<div class="field">
<span class="label">Address</span>
<code class="value" id="address">${escapeHtml(state.address ?? '')}</code>
<button type="button" class="copy" data-copy-from="address" aria-label="Copy the address">Copy</button>
</div>
<img id="qr" class="qr" src="${base}/qr.svg?amount=${escapeHtml(amount ?? '')}" width="220" height="220" alt="QR code with the address and the amount, for a wallet app">
<p class="received" id="received"${state.amountReceived && state.amountReceived !== '0' ? '' : ' hidden'}>Received so far: <span id="received-amount">${escapeHtml(state.amountReceived ?? '0')}</span> ${escapeHtml(state.asset ?? '')}</p>
</div>
${devWallet && state.open ? `<form id="dev-pay" method="post" action="${base}/dev-pay"><button type="submit" class="button">Pay with the dev wallet</button><p class="hint">Development only: pays the remaining amount from the dev payer account.</p></form>` : ''}
</section>`;
}

function stepClass(state: CheckoutState, index: number): string {
  if (state.step === null) return '';
  if (index < state.step || state.step === checkoutSteps.length - 1) return ' class="done"';
  if (index === state.step) return ' class="current" aria-current="step"';
  return '';
}

function deadlineLine(state: CheckoutState): string {
  if (state.deadline === null || !state.open) return '<p id="countdown" class="countdown" hidden></p>';
  const label = state.status === 'created' ? 'Choose within' : 'Time left to pay';
  return `<p id="countdown" class="countdown" data-deadline="${state.deadline}" data-label="${label}">${label}: until ${new Date(state.deadline * 1000).toISOString().slice(11, 16)} UTC</p>`;
}
