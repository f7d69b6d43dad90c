import type { ConfiguredAsset, DepositAsset, DepositChains } from '../core/deposits/deposit-chains.ts';
import { type AddressDeriver, createAddressDeriver } from './evm/address-derivation.ts';
import { type ChainConfig, ChainConfigError, findChainAsset } from './chain-config.ts';

/** A configured chain with its address deriver, and what its watcher last reported. */
export type ChainRuntime = { config: ChainConfig; deriver: AddressDeriver; status: ChainStatus };

export type ChainStatus = {
  /** `ok`: following the head; `standby`: another process leads; `degraded`: the node is unreachable or inconsistent. */
  state: 'starting' | 'ok' | 'standby' | 'degraded';
  head: number | null;
  processed: number | null;
  error: string | null;
  updatedAt: Date;
};

export type ChainRegistry = { chains: ChainRuntime[]; deposits: DepositChains };

/** Where each chain's addresses come from: an xpub (watch-only) or a mnemonic, by chain name. */
export type ChainWallets = Record<string, { xpub: string } | { mnemonic: string }>;

export function createChainRegistry(configs: readonly ChainConfig[], wallets: ChainWallets): ChainRegistry {
  const chains: ChainRuntime[] = configs.map((config) => {
    const source = wallets[config.name];
    if (!source) throw new ChainConfigError(`chain ${config.name}: no wallet configured`);
    let deriver: AddressDeriver;
    try {
      deriver = createAddressDeriver(source);
    } catch (error) {
      throw new ChainConfigError(`chain ${config.name}: ${(error as Error).message}`);
    }
    return { config, deriver, status: { state: 'starting', head: null, processed: null, error: null, updatedAt: new Date() } };
  });

  const assets: readonly ConfiguredAsset[] = configs.flatMap((config) => {
    const shown = { chain: config.name, network: config.networks[0]!, networks: config.networks };
    return [
      { ...shown, symbol: config.native.symbol, decimals: config.native.decimals, contract: null },
      ...config.tokens.map((token) => ({ ...shown, symbol: token.symbol, decimals: token.decimals, contract: token.contract.toLowerCase() })),
    ];
  });

  const deposits: DepositChains = {
    assets: () => assets,
    resolve(network, symbol) {
      const found = findChainAsset(configs, network, symbol);
      if (!found) return undefined;
      if ('missing' in found) return 'unknown_asset';
      const runtime = chains.find((chain) => chain.config === found.chain)!;
      const asset: DepositAsset = {
        chain: found.chain.name,
        network,
        symbol,
        decimals: found.decimals,
        contract: found.contract,
        chainId: found.chain.chain_id,
        confirmations: found.chain.confirmations,
        paymentWindowMs: found.chain.payment_window_minutes * 60_000,
        addressAt: (index) => runtime.deriver.addressAt(index),
      };
      return asset;
    },
    assetsOn(network) {
      const chain = configs.find((candidate) => candidate.networks.includes(network));
      return chain ? [chain.native.symbol, ...chain.tokens.map((token) => token.symbol)] : [];
    },
    defaultNetworkFor(symbol) {
      const chain = configs.find((candidate) => candidate.native.symbol === symbol || candidate.tokens.some((token) => token.symbol === symbol));
      return chain?.networks[0];
    },
  };
  return { chains, deposits };
}
