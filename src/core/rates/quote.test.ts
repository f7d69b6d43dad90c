import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PayCryptError } from '../../internal/errors.ts';
import { createQuoter } from './quote.ts';
import { createTableRateSource } from './table-rate-source.ts';

const at = new Date('2025-11-21T12:00:00Z');

describe('quotes', () => {
  it('quotes 100.00 USD as 99.5 USDT with the default 50 bps fee, recording rate, source, fee and time', async () => {
    const quoter = createQuoter({ rates: createTableRateSource(), feeBps: 50, now: () => at });
    const quote = await quoter.quote({ amount: 10_000n, currency: 'USD', currencyDecimals: 2, cryptoCurrency: 'USDT', cryptoDecimals: 6 });
    assert.deepEqual(quote, { cryptoAmount: 99_500_000n, cryptoUsd: '1', fiatUsd: '1', feeBps: 50, source: 'table', quotedAt: at });
  });

  it('converts through USD cross rates exactly, rounding down once to the base unit', async () => {
    const quoter = createQuoter({ rates: createTableRateSource({ ETH: '3000' }), feeBps: 0 });
    // 100.00 EUR × 1.08 = 108 USD = 0.036 ETH exactly.
    const eth = await quoter.quote({ amount: 10_000n, currency: 'EUR', currencyDecimals: 2, cryptoCurrency: 'ETH', cryptoDecimals: 18 });
    assert.equal(eth.cryptoAmount, 36_000_000_000_000_000n);
    // 1.00 USD / 3000 = 0.000333… ETH: floored to 333333333333333 wei, never rounded up.
    const third = await quoter.quote({ amount: 100n, currency: 'USD', currencyDecimals: 2, cryptoCurrency: 'ETH', cryptoDecimals: 18 });
    assert.equal(third.cryptoAmount, 333_333_333_333_333n);
  });

  it('keeps exactness for amounts no float can hold', async () => {
    const quoter = createQuoter({ rates: createTableRateSource({ TRY: '0.029' }), feeBps: 0 });
    const quote = await quoter.quote({ amount: 123_456_789_012_345_67n, currency: 'TRY', currencyDecimals: 2, cryptoCurrency: 'USDT', cryptoDecimals: 6 });
    // 123456789012345.67 TRY × 0.029 = 3580246881358.02443 USD → 3580246881358.024430 USDT
    assert.equal(quote.cryptoAmount, 3_580_246_881_358_024_430n);
  });

  it('refuses currencies and assets without a configured rate', async () => {
    const quoter = createQuoter({ rates: createTableRateSource(), feeBps: 0 });
    await assert.rejects(
      quoter.quote({ amount: 100n, currency: 'USD', currencyDecimals: 2, cryptoCurrency: 'BTC', cryptoDecimals: 8 }),
      (error: unknown) => error instanceof PayCryptError && error.code === 'invalid_request' && /BTC/.test(error.message),
    );
    await assert.rejects(quoter.assertPriced('XYZ'), (error: unknown) => error instanceof PayCryptError && error.code === 'invalid_request');
  });

  it('refuses an amount that would quote to zero base units', async () => {
    const quoter = createQuoter({ rates: createTableRateSource({ BTC: '100000000' }), feeBps: 0 });
    await assert.rejects(
      quoter.quote({ amount: 1n, currency: 'USD', currencyDecimals: 2, cryptoCurrency: 'BTC', cryptoDecimals: 8 }),
      /too small/,
    );
  });

  it('rejects a non-positive configured rate', () => {
    assert.throws(() => createTableRateSource({ ETH: '0' }), /ETH/);
  });
});
