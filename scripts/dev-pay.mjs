#!/usr/bin/env node
// Pays a payment on the local chain of `paycrypt dev`: sends AMOUNT of TOKEN from
// the account of PRIVATE_KEY to the address TO, waits until it is mined and
// prints {"tx_hash", "block_number"} as one JSON line.
//
//   node scripts/dev-pay.mjs RPC_URL PRIVATE_KEY TOKEN TO AMOUNT
//
// TOKEN is an ERC-20 contract address (its decimals are read from the chain) or
// ETH for the chain's native coin. AMOUNT is a decimal in whole units (9.95),
// exactly as a payment's crypto_amount shows it; more decimals than the token
// has are refused rather than rounded.
import { createPublicClient, createWalletClient, defineChain, erc20Abi, http, isAddress, parseUnits } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

const usage = 'usage: node scripts/dev-pay.mjs RPC_URL PRIVATE_KEY TOKEN|ETH TO AMOUNT';

async function main(args) {
  if (args.length !== 5) throw new Error(usage);
  const [rpcUrl, privateKey, token, to, amount] = args;
  if (!/^https?:\/\//.test(rpcUrl)) throw new Error(`RPC_URL must be an http(s) URL, got ${rpcUrl}\n${usage}`);
  if (!/^0x[0-9a-fA-F]{64}$/.test(privateKey)) throw new Error(`PRIVATE_KEY must be 0x and 64 hex digits\n${usage}`);
  if (token !== 'ETH' && !isAddress(token, { strict: false })) throw new Error(`TOKEN must be a contract address or ETH, got ${token}\n${usage}`);
  if (!isAddress(to, { strict: false })) throw new Error(`TO must be an address, got ${to}\n${usage}`);
  if (!/^\d+(\.\d+)?$/.test(amount)) throw new Error(`AMOUNT must be a positive decimal such as 9.95, got ${amount}\n${usage}`);

  const transport = http(rpcUrl);
  const chainId = await createPublicClient({ transport }).getChainId();
  const chain = defineChain({ id: chainId, name: `chain ${chainId}`, nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [rpcUrl] } } });
  const reader = createPublicClient({ chain, transport, cacheTime: 0 });
  const wallet = createWalletClient({ chain, transport, account: privateKeyToAccount(privateKey) });

  const decimals = token === 'ETH' ? 18 : await reader.readContract({ address: token, abi: erc20Abi, functionName: 'decimals' });
  const fraction = amount.split('.')[1] ?? '';
  if (fraction.length > decimals) throw new Error(`AMOUNT ${amount} has more than the ${decimals} decimals of ${token}`);
  const value = parseUnits(amount, decimals);
  if (value === 0n) throw new Error('AMOUNT must be greater than zero');

  const hash =
    token === 'ETH'
      ? await wallet.sendTransaction({ to, value })
      : await wallet.writeContract({ address: token, abi: erc20Abi, functionName: 'transfer', args: [to, value] });
  const receipt = await reader.waitForTransactionReceipt({ hash });
  if (receipt.status !== 'success') throw new Error(`transaction ${hash} reverted`);
  process.stdout.write(`${JSON.stringify({ tx_hash: hash, block_number: Number(receipt.blockNumber) })}\n`);
}

main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`dev-pay: ${error.shortMessage ?? error.message}\n`);
  process.exitCode = 1;
});
