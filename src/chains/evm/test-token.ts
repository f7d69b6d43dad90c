import { readFileSync } from 'node:fs';
import type { Account, Address, Chain, Hex, PublicClient, Transport, WalletClient } from 'viem';

/**
 * The test ERC-20 (`contracts/TestToken.sol`) as the gateway uses it: its ABI and
 * the committed bytecode of `contracts/TestToken.json`, so deploying it never needs
 * solc. Rebuild the JSON with `npm run build:contracts` after editing the contract;
 * a test checks the two agree.
 */
export type TestTokenArtifact = {
  contractName: string;
  abi: unknown[];
  bytecode: Hex;
  solcVersion: string;
  sourceSha256: string;
};

export const testTokenArtifactUrl = new URL('../../../contracts/TestToken.json', import.meta.url);

export const testTokenArtifact: TestTokenArtifact = JSON.parse(readFileSync(testTokenArtifactUrl, 'utf8'));

if (!/^0x(?:[0-9a-f]{2})+$/.test(testTokenArtifact.bytecode)) {
  throw new Error(`${testTokenArtifactUrl.pathname} holds no bytecode; run npm run build:contracts`);
}

export const testTokenBytecode: Hex = testTokenArtifact.bytecode;

/**
 * The ABI as a literal, so viem infers argument and return types from it.
 * @dev Must equal the JSON artifact's ABI (in solc's order); a test checks it.
 */
export const testTokenAbi = [
  { inputs: [{ internalType: 'string', name: 'name_', type: 'string' }, { internalType: 'string', name: 'symbol_', type: 'string' }, { internalType: 'uint8', name: 'decimals_', type: 'uint8' }], stateMutability: 'nonpayable', type: 'constructor' },
  { inputs: [{ internalType: 'address', name: 'spender', type: 'address' }, { internalType: 'uint256', name: 'allowance', type: 'uint256' }, { internalType: 'uint256', name: 'needed', type: 'uint256' }], name: 'InsufficientAllowance', type: 'error' },
  { inputs: [{ internalType: 'address', name: 'from', type: 'address' }, { internalType: 'uint256', name: 'balance', type: 'uint256' }, { internalType: 'uint256', name: 'needed', type: 'uint256' }], name: 'InsufficientBalance', type: 'error' },
  { inputs: [{ internalType: 'address', name: 'to', type: 'address' }], name: 'InvalidReceiver', type: 'error' },
  { inputs: [{ internalType: 'uint256', name: 'recipients', type: 'uint256' }, { internalType: 'uint256', name: 'amounts', type: 'uint256' }], name: 'LengthMismatch', type: 'error' },
  { inputs: [], name: 'NotOwner', type: 'error' },
  { anonymous: false, inputs: [{ indexed: true, internalType: 'address', name: 'owner', type: 'address' }, { indexed: true, internalType: 'address', name: 'spender', type: 'address' }, { indexed: false, internalType: 'uint256', name: 'value', type: 'uint256' }], name: 'Approval', type: 'event' },
  { anonymous: false, inputs: [{ indexed: true, internalType: 'address', name: 'from', type: 'address' }, { indexed: true, internalType: 'address', name: 'to', type: 'address' }, { indexed: false, internalType: 'uint256', name: 'value', type: 'uint256' }], name: 'Transfer', type: 'event' },
  { inputs: [{ internalType: 'address', name: '', type: 'address' }, { internalType: 'address', name: '', type: 'address' }], name: 'allowance', outputs: [{ internalType: 'uint256', name: '', type: 'uint256' }], stateMutability: 'view', type: 'function' },
  { inputs: [{ internalType: 'address', name: 'spender', type: 'address' }, { internalType: 'uint256', name: 'amount', type: 'uint256' }], name: 'approve', outputs: [{ internalType: 'bool', name: '', type: 'bool' }], stateMutability: 'nonpayable', type: 'function' },
  { inputs: [{ internalType: 'address', name: '', type: 'address' }], name: 'balanceOf', outputs: [{ internalType: 'uint256', name: '', type: 'uint256' }], stateMutability: 'view', type: 'function' },
  { inputs: [{ internalType: 'address[]', name: 'to', type: 'address[]' }, { internalType: 'uint256[]', name: 'amounts', type: 'uint256[]' }], name: 'batchTransfer', outputs: [{ internalType: 'bool', name: '', type: 'bool' }], stateMutability: 'nonpayable', type: 'function' },
  { inputs: [], name: 'decimals', outputs: [{ internalType: 'uint8', name: '', type: 'uint8' }], stateMutability: 'view', type: 'function' },
  { inputs: [{ internalType: 'address', name: 'to', type: 'address' }, { internalType: 'uint256', name: 'amount', type: 'uint256' }], name: 'mint', outputs: [], stateMutability: 'nonpayable', type: 'function' },
  { inputs: [], name: 'name', outputs: [{ internalType: 'string', name: '', type: 'string' }], stateMutability: 'view', type: 'function' },
  { inputs: [], name: 'owner', outputs: [{ internalType: 'address', name: '', type: 'address' }], stateMutability: 'view', type: 'function' },
  { inputs: [], name: 'symbol', outputs: [{ internalType: 'string', name: '', type: 'string' }], stateMutability: 'view', type: 'function' },
  { inputs: [], name: 'totalSupply', outputs: [{ internalType: 'uint256', name: '', type: 'uint256' }], stateMutability: 'view', type: 'function' },
  { inputs: [{ internalType: 'address', name: 'to', type: 'address' }, { internalType: 'uint256', name: 'amount', type: 'uint256' }], name: 'transfer', outputs: [{ internalType: 'bool', name: '', type: 'bool' }], stateMutability: 'nonpayable', type: 'function' },
  { inputs: [{ internalType: 'address', name: 'from', type: 'address' }, { internalType: 'address', name: 'to', type: 'address' }, { internalType: 'uint256', name: 'amount', type: 'uint256' }], name: 'transferFrom', outputs: [{ internalType: 'bool', name: '', type: 'bool' }], stateMutability: 'nonpayable', type: 'function' },
] as const;

export type DeployTestTokenOptions = { name: string; symbol: string; decimals: number };

/**
 * Deploys a TestToken from the wallet's account, which becomes its owner (the only
 * minter), and waits for the deployment to be mined.
 * @returns the contract address, lower case as the gateway stores addresses.
 */
export async function deployTestToken(
  walletClient: WalletClient<Transport, Chain | undefined, Account>,
  publicClient: PublicClient,
  { name, symbol, decimals }: DeployTestTokenOptions,
): Promise<Address> {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > 255) throw new Error(`decimals must fit a uint8, got ${decimals}`);
  const hash = await walletClient.deployContract({
    abi: testTokenAbi,
    bytecode: testTokenBytecode,
    args: [name, symbol, decimals],
    chain: walletClient.chain ?? null,
  });
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  if (receipt.status !== 'success' || !receipt.contractAddress) throw new Error(`TestToken deployment ${hash} failed (status ${receipt.status})`);
  return receipt.contractAddress.toLowerCase() as Address;
}
