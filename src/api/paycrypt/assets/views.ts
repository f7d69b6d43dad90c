import { z } from 'zod';
import type { ConfiguredAsset } from '../../../core/deposits/deposit-chains.ts';

/** An asset of a configured chain as the APIs show it. */
export function renderAsset(asset: ConfiguredAsset) {
  return {
    network: asset.network,
    symbol: asset.symbol,
    chain: asset.chain,
    networks: [...asset.networks],
    decimals: asset.decimals,
    contract: asset.contract,
  };
}

export const assetSchema = z
  .object({
    network: z.string().meta({ description: 'The network code to use in crypto_network (the chain\'s first)', example: 'ERC20' }),
    symbol: z.string().meta({ description: 'The code to use in crypto_currency', example: 'USDT' }),
    chain: z.string().meta({ description: 'The configured chain\'s name', example: 'ethereum' }),
    networks: z.array(z.string()).meta({ description: 'Every network code that names this chain', example: ['ERC20', '1'] }),
    decimals: z.number().int().meta({ example: 6 }),
    contract: z.string().nullable().meta({ description: 'The token contract; null for the chain\'s native coin' }),
  })
  .meta({ id: 'Asset' });
