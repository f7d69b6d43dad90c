/**
 * What the core needs to know of the configured chains to take a payment on
 * one: the asset's decimals, the confirmation policy, the payment window, and
 * how to derive the n-th deposit address. Implemented by `chains/`.
 */
export type DepositAsset = {
  chain: string;
  /** The network code to show (the one the merchant asked for). */
  network: string;
  symbol: string;
  decimals: number;
  /** Token contract (lower case), or null for the chain's native coin. */
  contract: string | null;
  /** The EVM chain id, for payment URIs (EIP-681). */
  chainId: number;
  confirmations: number;
  paymentWindowMs: number;
  addressAt(index: number): string;
};

/** An asset a configured chain receives, as operators, merchants and customers see it. */
export type ConfiguredAsset = {
  chain: string;
  /** The chain's first network code, the one shown. */
  network: string;
  /** Every network code that names the chain. */
  networks: readonly string[];
  symbol: string;
  decimals: number;
  /** Token contract (lower case), or null for the chain's native coin. */
  contract: string | null;
};

export type DepositChains = {
  /** Every asset of every configured chain: chains in configuration order, each native coin first, then its tokens. */
  assets(): readonly ConfiguredAsset[];
  /** undefined: no configured chain serves `network`; 'unknown_asset': the chain does not carry `symbol`. */
  resolve(network: string, symbol: string): DepositAsset | 'unknown_asset' | undefined;
  /** The symbol of every asset configured on `network`'s chain, for error messages. */
  assetsOn(network: string): string[];
  /** The first configured network that carries `symbol`, used when a payment names no network. */
  defaultNetworkFor(symbol: string): string | undefined;
};

export const noDepositChains: DepositChains = {
  assets: () => [],
  resolve: () => undefined,
  assetsOn: () => [],
  defaultNetworkFor: () => undefined,
};
