/**
 * What the gateway can price and settle in.
 *
 * @dev Fiat amounts are integers in the currency's minor unit (ISO 4217
 * exponent); crypto amounts are integers in the asset's base unit. The
 * catalogue of crypto assets and their networks is static until chains are
 * configured; a network's own token decimals replace these when they are.
 */

/** ISO 4217 exponents of the fiat currencies whose exponent is not 2. */
const fiatExponents: Record<string, number> = {
  JPY: 0, KRW: 0, VND: 0, CLP: 0, ISK: 0, HUF: 2, KWD: 3, BHD: 3, JOD: 3, OMR: 3, TND: 3,
};

export function fiatDecimals(currency: string): number {
  return fiatExponents[currency] ?? 2;
}

export type CryptoAsset = {
  symbol: string;
  decimals: number;
  /** Networks the asset can be paid on, as the APIs name them; the first is the default. */
  networks: readonly string[];
  /** Fiat-pegged assets are priced at 1.00 USD by the default rates table. */
  stablecoin: boolean;
};

const assets: readonly CryptoAsset[] = [
  { symbol: 'USDT', decimals: 6, networks: ['TRC20', 'ERC20', 'BEP20'], stablecoin: true },
  { symbol: 'USDC', decimals: 6, networks: ['ERC20', 'BEP20', 'TRC20'], stablecoin: true },
  { symbol: 'DAI', decimals: 18, networks: ['ERC20'], stablecoin: true },
  { symbol: 'BTC', decimals: 8, networks: ['BTC'], stablecoin: false },
  { symbol: 'LTC', decimals: 8, networks: ['LTC'], stablecoin: false },
  { symbol: 'ETH', decimals: 18, networks: ['ERC20'], stablecoin: false },
  { symbol: 'BNB', decimals: 18, networks: ['BEP20'], stablecoin: false },
  { symbol: 'TRX', decimals: 6, networks: ['TRC20'], stablecoin: false },
];

const assetsBySymbol = new Map(assets.map((asset) => [asset.symbol, asset]));

export function findCryptoAsset(symbol: string): CryptoAsset | undefined {
  return assetsBySymbol.get(symbol);
}

export function listCryptoAssets(): readonly CryptoAsset[] {
  return assets;
}

export function isCryptoSymbol(symbol: string): boolean {
  return assetsBySymbol.has(symbol);
}
