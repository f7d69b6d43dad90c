import { PayCryptError } from '../../internal/errors.ts';
import { type Decimal, floorDiv, formatDecimal } from '../../internal/decimal.ts';
import type { RateSource } from './rate-source.ts';

export type Quote = {
  /** Crypto base units the payment settles for. */
  cryptoAmount: bigint;
  cryptoUsd: string;
  fiatUsd: string;
  feeBps: number;
  source: string;
  quotedAt: Date;
};

export type QuoteInput = {
  /** Fiat amount in minor units. */
  amount: bigint;
  currency: string;
  currencyDecimals: number;
  cryptoCurrency: string;
  cryptoDecimals: number;
};

export type Quoter = {
  quote(input: QuoteInput): Promise<Quote>;
  /** Throws `invalid_request` when `currency` has no rate, so cannot be priced. */
  assertPriced(currency: string): Promise<void>;
};

/**
 * Converts a fiat amount into crypto base units:
 *
 *   crypto = amount × usd(fiat) / usd(crypto) × (1 − fee_bps / 10 000)
 *
 * @dev Computed as one exact fraction of bigints and rounded once, down to the
 * asset's base unit (the rounding never exceeds one base unit). With the
 * default 50 bps fee, 100.00 USD quotes 99.5 USDT, as the PayCrypt v1 docs show.
 */
export function createQuoter(options: { rates: RateSource; feeBps: number; now?: () => Date }): Quoter {
  const now = options.now ?? (() => new Date());
  return {
    async assertPriced(currency) {
      if (!(await options.rates.usdRate(currency))) {
        throw new PayCryptError('invalid_request', `Unsupported currency: ${currency} (no exchange rate is configured)`, { details: { field: 'currency' } });
      }
    },
    async quote(input) {
      const [fiat, crypto] = await Promise.all([options.rates.usdRate(input.currency), options.rates.usdRate(input.cryptoCurrency)]);
      if (!fiat) {
        throw new PayCryptError('invalid_request', `Unsupported currency: ${input.currency} (no exchange rate is configured)`, { details: { field: 'currency' } });
      }
      if (!crypto) {
        throw new PayCryptError('invalid_request', `No exchange rate is configured for ${input.cryptoCurrency}`, {
          details: { field: 'crypto_currency' },
        });
      }
      const cryptoAmount = convert(input, fiat.usd, crypto.usd, options.feeBps);
      if (cryptoAmount <= 0n) {
        throw new PayCryptError('invalid_request', `Amount is too small to be paid in ${input.cryptoCurrency}`, {
          details: { field: 'amount' },
        });
      }
      return {
        cryptoAmount,
        cryptoUsd: formatDecimal(crypto.usd),
        fiatUsd: formatDecimal(fiat.usd),
        feeBps: options.feeBps,
        source: crypto.source === fiat.source ? crypto.source : `${fiat.source}+${crypto.source}`,
        quotedAt: now(),
      };
    },
  };
}

function convert(input: QuoteInput, fiatUsd: Decimal, cryptoUsd: Decimal, feeBps: number): bigint {
  const numerator = input.amount * fiatUsd.units * 10n ** BigInt(cryptoUsd.scale) * BigInt(10_000 - feeBps) * 10n ** BigInt(input.cryptoDecimals);
  const denominator = 10n ** BigInt(input.currencyDecimals) * 10n ** BigInt(fiatUsd.scale) * cryptoUsd.units * 10_000n;
  return floorDiv(numerator, denominator);
}
