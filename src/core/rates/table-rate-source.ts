import { type Decimal, parseDecimal } from '../../internal/decimal.ts';
import { listCryptoAssets } from '../currencies.ts';
import type { RateSource } from './rate-source.ts';

/**
 * Default prices: USD itself, stablecoins at 1.00 USD, and fiat cross rates
 * for a few common currencies. They are a starting point for development;
 * an operator sets real ones with `PAYCRYPT_RATES` (or plugs in a live source).
 */
export const defaultUsdRates: Readonly<Record<string, string>> = {
  USD: '1',
  EUR: '1.08',
  GBP: '1.27',
  TRY: '0.029',
  ...Object.fromEntries(listCryptoAssets().filter((asset) => asset.stablecoin).map((asset) => [asset.symbol, '1.00'])),
};

/** A rate source backed by a fixed table of USD values (`{"EUR": "1.08", "BTC": "65000"}`). */
export function createTableRateSource(overrides: Readonly<Record<string, string>> = {}): RateSource {
  const table = new Map<string, Decimal>();
  for (const [currency, text] of Object.entries({ ...defaultUsdRates, ...overrides })) {
    const value = parseDecimal(text);
    if (!value || value.units <= 0n) throw new Error(`rate for ${currency} must be a positive decimal, got ${JSON.stringify(text)}`);
    table.set(currency, value);
  }
  const loadedAt = new Date();
  return {
    name: 'table',
    async usdRate(currency) {
      const usd = table.get(currency);
      return usd ? { currency, usd, source: 'table', at: loadedAt } : undefined;
    },
  };
}
