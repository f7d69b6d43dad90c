import fs from 'node:fs';
import { z } from 'zod';

/**
 * Chains and tokens are configuration, not code. Each entry names a chain,
 * the network codes the APIs use for it (`ERC20`, `BEP20`, `137`…), its RPC,
 * its native coin and tokens, its confirmation policy, and where deposit
 * addresses come from.
 */

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 0x-prefixed 20-byte address');
const symbol = z.string().regex(/^[A-Z0-9]{2,10}$/, 'expected an upper-case symbol such as USDT');

const evmChainSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a lower-case slug such as ethereum-sepolia'),
    family: z.literal('evm'),
    chain_id: z.number().int().positive(),
    networks: z.array(z.string().regex(/^[A-Za-z0-9-]{2,40}$/)).min(1).meta({ description: 'Network codes the APIs use for this chain; the first is shown' }),
    rpc_url: z.string().regex(/^https?:\/\//, 'expected an http(s) URL'),
    ws_url: z.string().regex(/^wss?:\/\//, 'expected a ws(s) URL').optional(),
    native: z.object({ symbol, decimals: z.number().int().min(0).max(36) }).strict(),
    tokens: z.array(z.object({ symbol, contract: address, decimals: z.number().int().min(0).max(36) }).strict()).default([]),
    confirmations: z.number().int().min(1).max(10_000).default(12),
    reorg_window: z.number().int().min(1).max(10_000).default(64),
    poll_interval_ms: z.number().int().min(50).max(600_000).default(1_000),
    payment_window_minutes: z.number().int().min(1).max(7 * 24 * 60).default(60),
    start_block: z.union([z.number().int().min(0), z.literal('latest')]).default('latest'),
    addresses: z.union([
      z.object({ xpub: z.string().regex(/^[xt]pub[1-9A-HJ-NP-Za-km-z]{100,112}$/, 'expected an account-level extended public key (xpub…)') }).strict(),
      z.object({ mnemonic_env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'expected the name of an environment variable') }).strict(),
    ]),
  })
  .strict()
  .refine((chain) => chain.reorg_window >= chain.confirmations, { message: 'reorg_window must be at least confirmations', path: ['reorg_window'] });

export type EvmChainConfig = z.output<typeof evmChainSchema>;
export type ChainConfig = EvmChainConfig;

const chainsSchema = z.array(evmChainSchema).superRefine((chains, ctx) => {
  const names = new Set<string>();
  const networks = new Set<string>();
  chains.forEach((chain, index) => {
    if (names.has(chain.name)) ctx.addIssue({ code: 'custom', message: `duplicate chain name ${chain.name}`, path: [index, 'name'] });
    names.add(chain.name);
    for (const network of chain.networks) {
      if (networks.has(network)) ctx.addIssue({ code: 'custom', message: `network ${network} is claimed by two chains`, path: [index, 'networks'] });
      networks.add(network);
    }
    const symbols = [chain.native.symbol, ...chain.tokens.map((token) => token.symbol)];
    if (new Set(symbols).size !== symbols.length) ctx.addIssue({ code: 'custom', message: 'a symbol appears twice on one chain', path: [index, 'tokens'] });
  });
});

export class ChainConfigError extends Error {
  override name = 'ChainConfigError';
}

/** Parses chain configuration from JSON text; errors name the chain and field. */
export function parseChainConfig(text: string, source: string): ChainConfig[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ChainConfigError(`Invalid chain configuration in ${source}: not JSON (${(error as Error).message})`);
  }
  const parsed = chainsSchema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      // Note: the entry's index alone is hard to find in a long list; its name, when it has one, is not.
      const entry = typeof issue.path[0] === 'number' && Array.isArray(json) ? (json[issue.path[0]] as { name?: unknown } | undefined) : undefined;
      const chain = typeof entry?.name === 'string' ? ` (chain ${entry.name})` : '';
      return `  ${source}[${issue.path.join('.')}]${chain}: ${issue.message}`;
    });
    throw new ChainConfigError(`Invalid chain configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

/** Reads chains from `PAYCRYPT_CHAINS` (JSON) or the file named by `PAYCRYPT_CHAINS_FILE`; none when neither is set. */
export function loadChainConfig(env: Record<string, string | undefined>): ChainConfig[] {
  if (env.PAYCRYPT_CHAINS) return parseChainConfig(env.PAYCRYPT_CHAINS, 'PAYCRYPT_CHAINS');
  const file = env.PAYCRYPT_CHAINS_FILE;
  if (!file) return [];
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ChainConfigError(`PAYCRYPT_CHAINS_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  return parseChainConfig(text, file);
}

/** An asset a chain can receive: its native coin (`contract` null) or a token. */
export type ChainAsset = { chain: ChainConfig; symbol: string; decimals: number; contract: `0x${string}` | null };

/** Finds the chain serving `network` and the asset `symbol` on it. */
export function findChainAsset(chains: readonly ChainConfig[], network: string, symbol: string): ChainAsset | { chain: ChainConfig; missing: 'asset' } | undefined {
  const chain = chains.find((candidate) => candidate.networks.includes(network));
  if (!chain) return undefined;
  if (chain.native.symbol === symbol) return { chain, symbol, decimals: chain.native.decimals, contract: null };
  const token = chain.tokens.find((candidate) => candidate.symbol === symbol);
  if (!token) return { chain, missing: 'asset' };
  return { chain, symbol, decimals: token.decimals, contract: token.contract.toLowerCase() as `0x${string}` };
}
