import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { type Address, createPublicClient, createWalletClient, erc20Abi, http, parseUnits } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { anvilChain, type Anvil, setIntervalMining, startAnvil } from '../chains/evm/anvil.ts';
import { deployTestToken, testTokenAbi } from '../chains/evm/test-token.ts';
import type { DevWallet } from '../api/context.ts';
import { createGateway, type Gateway } from '../gateway.ts';
import { loadConfig } from '../internal/config.ts';
import { createLogger } from '../internal/logger.ts';

/** What `paycrypt dev` prints on stdout, one JSON line. */
export type DevEnvironmentInfo = {
  api_url: string;
  merchant_id: number;
  api_key: string;
  api_secret: string;
  chains: Array<{ name: string; network: string; chain_id: number; rpc_url: string; tokens: Record<string, string> }>;
  payer: { address: string; private_key: string };
};

export type DevEnvironment = { info: DevEnvironmentInfo; gateway: Gateway; anvil: Anvil; stop(): Promise<void> };

/** Test tokens deployed on the dev chain, and how much of each the payer gets. */
const devTokens = [
  { symbol: 'USDT', name: 'Tether USD (dev)', decimals: 6, payerBalance: '1000000' },
  { symbol: 'USDC', name: 'USD Coin (dev)', decimals: 6, payerBalance: '1000000' },
] as const;

/**
 * A complete local setup: anvil on a free port mining a block a second, with
 * USDT and USDC test tokens, the gateway on embedded storage watching it as
 * network `ERC20` with fast confirmations, a demo merchant, and a funded payer
 * account, which the checkout offers as "pay with the dev wallet".
 *
 * @dev The gateway's wallet is a fresh random mnemonic that lives only in this
 * process; the payer is anvil's first dev account, which also deploys the
 * tokens and mints itself a balance.
 */
export async function startDevEnvironment(options: { dataDir?: string; port?: number; env?: Record<string, string | undefined> }): Promise<DevEnvironment> {
  const anvil = await startAnvil();
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-dev-'));
  const temporary = options.dataDir === undefined;
  try {
    const chain = anvilChain(anvil);
    const payerKey = anvil.accounts[0]!.privateKey;
    const payer = privateKeyToAccount(payerKey);
    const wallet = createWalletClient({ account: payer, chain, transport: http(anvil.rpcUrl) });
    const reader = createPublicClient({ chain, transport: http(anvil.rpcUrl), cacheTime: 0 });
    const tokens: Record<string, string> = {};
    for (const token of devTokens) {
      const contract = await deployTestToken(wallet, reader, token);
      const hash = await wallet.writeContract({ address: contract, abi: testTokenAbi, functionName: 'mint', args: [payer.address, parseUnits(token.payerBalance, token.decimals)] });
      await reader.waitForTransactionReceipt({ hash });
      tokens[token.symbol] = contract;
    }

    // Note: from here on a block every second, so payments gather their confirmations by themselves.
    await setIntervalMining(anvil.rpcUrl, 1);

    const chainConfig = {
      // Note: each run is a new chain from genesis, so it gets a name of its own. A data
      // directory kept with --data-dir holds the previous run's cursor and addresses under
      // the previous name; applied to this chain they would stall its watcher.
      name: `anvil-${Date.now().toString(36)}`,
      family: 'evm',
      chain_id: anvil.chainId,
      networks: ['ERC20', 'anvil', String(anvil.chainId)],
      rpc_url: anvil.rpcUrl,
      native: { symbol: 'ETH', decimals: 18 },
      tokens: devTokens.map((token) => ({ symbol: token.symbol, contract: tokens[token.symbol]!, decimals: token.decimals })),
      confirmations: 2,
      reorg_window: 16,
      poll_interval_ms: 250,
      start_block: 0,
      addresses: { mnemonic_env: 'PAYCRYPT_DEV_WALLET_MNEMONIC' },
    };
    const env = options.env ?? process.env;
    const config = loadConfig({
      ...env,
      DATABASE_URL: undefined,
      PAYCRYPT_DATA_DIR: dataDir,
      PORT: String(options.port ?? env.PORT ?? 8080),
      PAYCRYPT_CHAINS: JSON.stringify([chainConfig]),
      PAYCRYPT_CHAINS_FILE: undefined,
      PAYCRYPT_DEV_WALLET_MNEMONIC: generateMnemonic(wordlist),
    });
    const devWallet: DevWallet = {
      chains: [chainConfig.name],
      async pay({ contract, to, amount }) {
        const hash = contract
          ? await wallet.writeContract({ address: contract as Address, abi: erc20Abi, functionName: 'transfer', args: [to as Address, amount] })
          : await wallet.sendTransaction({ to: to as Address, value: amount });
        return { txHash: hash };
      },
    };
    const gateway = await createGateway({ config, logger: createLogger({ level: config.logLevel }), devWallet });
    const url = await gateway.listen();
    const merchant = await gateway.operator.createMerchant({ name: 'Demo merchant' });

    const info: DevEnvironmentInfo = {
      api_url: url,
      merchant_id: merchant.merchant_id,
      api_key: merchant.api_key,
      api_secret: merchant.api_secret,
      chains: [{ name: chainConfig.name, network: 'ERC20', chain_id: anvil.chainId, rpc_url: anvil.rpcUrl, tokens }],
      payer: { address: payer.address.toLowerCase(), private_key: payerKey },
    };
    return {
      info,
      gateway,
      anvil,
      async stop() {
        await gateway.close();
        await anvil.stop();
        if (temporary) fs.rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await anvil.stop();
    if (temporary) fs.rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}
