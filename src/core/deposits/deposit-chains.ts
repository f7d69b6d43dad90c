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

export type DepositChains = {
  /** undefined: no configured chain serves `network`; 'unknown_asset': the chain does not carry `symbol`. */
  resolve(network: string, symbol: string): DepositAsset | 'unknown_asset' | undefined;
  /** The symbol of every asset configured on `network`'s chain, for error messages. */
  assetsOn(network: string): string[];
  /** The first configured network that carries `symbol`, used when a payment names no network. */
  defaultNetworkFor(symbol: string): string | undefined;
  /** Every configured asset, once per chain, under the chain's first network code. */
  listAssets(): DepositAsset[];
};

export const noDepositChains: DepositChains = {
  resolve: () => undefined,
  assetsOn: () => [],
  defaultNetworkFor: () => undefined,
  listAssets: () => [],
};
