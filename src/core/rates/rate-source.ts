import type { Decimal } from '../../internal/decimal.ts';

/** The USD value of one unit of a currency (fiat or crypto) at a moment, from a named source. */
export type UsdRate = { currency: string; usd: Decimal; source: string; at: Date };

/**
 * Where prices come from. The default is a configured table; a live feed is
 * another implementation of the same interface.
 */
export type RateSource = {
  name: string;
  /** Returns undefined when the source has no price for `currency`. */
  usdRate(currency: string): Promise<UsdRate | undefined>;
};
