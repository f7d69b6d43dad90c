// PayCrypt hosted checkout: copy buttons, the countdown, paying with the dev
// wallet without leaving the page, and the payment's status live over
// server-sent events. The page works without this script; it only adds.
'use strict';
(() => {
  const main = document.getElementById('checkout');
  if (!main) return;
  const byId = (id) => document.getElementById(id);
  const base = `/checkout/${main.dataset.session}`;
  const terminal = ['succeeded', 'expired', 'cancelled', 'failed'];

  document.addEventListener('click', async (event) => {
    const button = event.target.closest('button.copy');
    if (!button) return;
    const source = byId(button.dataset.copyFrom);
    const text = source ? source.textContent.trim() : '';
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
    } catch {
      const range = document.createRange();
      range.selectNodeContents(source);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = 'Selected';
    }
    setTimeout(() => { button.textContent = 'Copy'; }, 2000);
  });

  const countdown = byId('countdown');
  const tick = () => {
    const deadline = Number(countdown && countdown.dataset.deadline);
    if (!deadline) return;
    const left = Math.max(0, deadline - Math.floor(Date.now() / 1000));
    const hours = Math.floor(left / 3600);
    const clock = `${hours > 0 ? `${hours}:` : ''}${String(Math.floor(left / 60) % 60).padStart(hours > 0 ? 2 : 1, '0')}:${String(left % 60).padStart(2, '0')}`;
    countdown.textContent = left > 0 ? `${countdown.dataset.label}: ${clock}` : 'Time is up';
  };
  tick();
  setInterval(tick, 1000);

  const devPay = byId('dev-pay');
  if (devPay) {
    devPay.addEventListener('submit', async (event) => {
      event.preventDefault();
      const button = devPay.querySelector('button');
      button.disabled = true;
      button.textContent = 'Paying…';
      try {
        const response = await fetch(devPay.action, { method: 'POST', body: new URLSearchParams({ via: 'script' }) });
        button.textContent = response.ok ? 'Sent from the dev wallet' : 'The dev wallet could not pay';
      } catch {
        button.textContent = 'The dev wallet could not pay';
      }
    });
  }

  let redirecting = false;
  const redirectSoon = (url) => {
    if (redirecting) return;
    redirecting = true;
    setTimeout(() => location.assign(url), 2000);
  };

  const apply = (state) => {
    main.dataset.status = state.status;
    const status = byId('status');
    status.textContent = state.message;
    status.className = `status ${state.tone}`;
    for (const item of document.querySelectorAll('.steps li')) {
      const index = Number(item.dataset.step);
      const done = state.step !== null && (index < state.step || state.step === 3);
      const current = state.step !== null && index === state.step && !done;
      item.className = done ? 'done' : current ? 'current' : '';
      if (current) item.setAttribute('aria-current', 'step');
      else item.removeAttribute('aria-current');
    }
    const amount = byId('amount');
    if (amount && state.amountRemaining !== null) {
      const shown = state.status === 'underpaid' ? state.amountRemaining : state.amountDue;
      if (amount.textContent !== shown) {
        amount.textContent = shown;
        const label = amount.closest('.field').querySelector('.label');
        label.textContent = state.status === 'underpaid' ? 'Remaining amount' : 'Amount';
        byId('qr').src = `${base}/qr.svg?amount=${encodeURIComponent(shown)}`;
      }
    }
    const received = byId('received');
    if (received && state.amountReceived !== null) {
      byId('received-amount').textContent = state.amountReceived;
      received.hidden = state.amountReceived === '0';
    }
    if (countdown) {
      if (state.deadline === null) countdown.hidden = true;
      else countdown.dataset.deadline = String(state.deadline);
    }
    if (!state.open) {
      const pay = byId('pay');
      if (pay) pay.classList.add('closed');
      const choose = byId('choose');
      if (choose) choose.hidden = true;
      if (devPay) devPay.hidden = true;
    }
    if (state.redirectUrl) {
      let link = byId('return');
      if (!link) {
        link = document.createElement('a');
        link.id = 'return';
        link.className = 'button';
        link.textContent = 'Return to the merchant';
        document.querySelector('footer').prepend(link);
      }
      link.href = state.redirectUrl;
      redirectSoon(state.redirectUrl);
    }
  };

  if (main.dataset.redirect) redirectSoon(main.dataset.redirect);
  if (terminal.includes(main.dataset.status) || !('EventSource' in window)) return;
  const events = new EventSource(`${base}/events`);
  events.onmessage = (message) => {
    const state = JSON.parse(message.data);
    apply(state);
    if (terminal.includes(state.status)) events.close();
  };
})();
