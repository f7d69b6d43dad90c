import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  createPublicClient,
  createWalletClient,
  encodeFunctionData,
  getAbiItem,
  http,
  numberToHex,
  pad,
  parseEther,
  type Address,
  type Hex,
  type PublicClient,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { compileTestToken } from '../../../scripts/compile-contracts.mjs';
import {
  anvilChain,
  anvilReorg,
  anvilRpc,
  mine,
  revert,
  setAutomine,
  setIntervalMining,
  snapshot,
  startAnvil,
  type Anvil,
} from './anvil.ts';
import { deployTestToken, testTokenAbi, testTokenArtifact, testTokenBytecode } from './test-token.ts';
import { bloomMayContain } from './transfer-logs.ts';

const transferEvent = getAbiItem({ abi: testTokenAbi, name: 'Transfer' });

function clientsFor(node: Anvil, accountIndex = 0) {
  const chain = anvilChain(node);
  // Note: cacheTime 0, or viem answers getBlockNumber from a 4 s cache and misses reorgs.
  const publicClient = createPublicClient({ chain, transport: http(node.rpcUrl), pollingInterval: 50, cacheTime: 0 });
  const account = privateKeyToAccount(node.accounts[accountIndex]!.privateKey);
  const walletClient = createWalletClient({ chain, account, transport: http(node.rpcUrl), pollingInterval: 50, cacheTime: 0 });
  return { publicClient, walletClient };
}

/** 20-byte addresses 0x…0001, 0x…0002, …: fresh, distinct, easy to read in a failure. */
function numberedAddresses(count: number, offset = 0): Address[] {
  return Array.from({ length: count }, (_, i) => pad(numberToHex(offset + i + 1), { size: 20 }));
}

describe('anvil process', () => {
  it('starts on a free port with the standard dev accounts and stops for good', async () => {
    const node = await startAnvil({ chainId: 1337 });
    try {
      assert.equal(node.rpcUrl, `http://127.0.0.1:${node.port}`);
      assert.equal(node.wsUrl, `ws://127.0.0.1:${node.port}`);
      assert.equal(await anvilRpc(node.rpcUrl, 'eth_chainId', []), '0x539');
      assert.equal(node.mnemonic, 'test test test test test test test test test test test junk');
      assert.equal(node.accounts.length, 10);
      // The derived keys are the ones anvil funds.
      assert.deepEqual(await anvilRpc(node.rpcUrl, 'eth_accounts', []), node.accounts.map((a) => a.address));
      assert.equal(node.accounts[0]!.address, '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266');
      assert.equal(privateKeyToAccount(node.accounts[9]!.privateKey).address.toLowerCase(), node.accounts[9]!.address);
    } finally {
      await node.stop();
    }
    await assert.rejects(anvilRpc(node.rpcUrl, 'eth_chainId', []), 'the node no longer answers');
    await node.stop(); // a second stop is harmless
  });

  it('uses a given mnemonic and two nodes run side by side', async () => {
    const mnemonic = 'legal winner thank year wave sausage worth useful legal winner thank yellow';
    const [a, b] = await Promise.all([startAnvil({ mnemonic }), startAnvil()]);
    try {
      assert.notEqual(a.port, b.port);
      assert.deepEqual(await anvilRpc(a.rpcUrl, 'eth_accounts', []), a.accounts.map((x) => x.address));
      assert.notEqual(a.accounts[0]!.address, b.accounts[0]!.address);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('TestToken on anvil', () => {
  let node: Anvil;
  let publicClient: PublicClient;
  let owner: ReturnType<typeof clientsFor>['walletClient'];
  let holder: ReturnType<typeof clientsFor>['walletClient'];
  let token: Address;
  const alice = (): Address => node.accounts[1]!.address;
  const bob = (): Address => node.accounts[2]!.address;

  const balanceOf = (address: Address) => publicClient.readContract({ address: token, abi: testTokenAbi, functionName: 'balanceOf', args: [address] });
  const send = async (hash: Hex) => {
    const receipt = await publicClient.waitForTransactionReceipt({ hash });
    assert.equal(receipt.status, 'success');
    return receipt;
  };

  before(async () => {
    node = await startAnvil();
    ({ publicClient, walletClient: owner } = clientsFor(node, 0));
    ({ walletClient: holder } = clientsFor(node, 1));
    token = await deployTestToken(owner, publicClient, { name: 'Tether USD', symbol: 'USDT', decimals: 6 });
  });
  after(() => node?.stop());

  it('deploys with its name, symbol, 6 decimals and the deployer as owner', async () => {
    assert.match(token, /^0x[0-9a-f]{40}$/);
    const read = <F extends 'name' | 'symbol' | 'decimals' | 'owner' | 'totalSupply'>(functionName: F) =>
      publicClient.readContract({ address: token, abi: testTokenAbi, functionName });
    assert.equal(await read('name'), 'Tether USD');
    assert.equal(await read('symbol'), 'USDT');
    assert.equal(await read('decimals'), 6);
    assert.equal((await read('owner')).toLowerCase(), node.accounts[0]!.address);
    assert.equal(await read('totalSupply'), 0n);
  });

  it('mints (owner only) and transfers, with Transfer logs readable by getLogs', async () => {
    const minted = await send(await owner.writeContract({ address: token, abi: testTokenAbi, functionName: 'mint', args: [alice(), 1_000_000_000n] }));
    await assert.rejects(
      holder.writeContract({ address: token, abi: testTokenAbi, functionName: 'mint', args: [alice(), 1n] }),
      /NotOwner/,
    );
    const sent = await send(await holder.writeContract({ address: token, abi: testTokenAbi, functionName: 'transfer', args: [bob(), 250_500_000n] }));
    assert.equal(await balanceOf(alice()), 749_500_000n);
    assert.equal(await balanceOf(bob()), 250_500_000n);

    const logs = await publicClient.getLogs({ address: token, event: transferEvent, fromBlock: minted.blockNumber, toBlock: sent.blockNumber });
    assert.deepEqual(
      logs.map((log) => ({ from: log.args.from?.toLowerCase(), to: log.args.to?.toLowerCase(), value: log.args.value, tx: log.transactionHash })),
      [
        { from: '0x0000000000000000000000000000000000000000', to: alice(), value: 1_000_000_000n, tx: minted.transactionHash },
        { from: alice(), to: bob(), value: 250_500_000n, tx: sent.transactionHash },
      ],
    );
    await assert.rejects(
      holder.writeContract({ address: token, abi: testTokenAbi, functionName: 'transfer', args: [bob(), 10n ** 18n] }),
      /InsufficientBalance/,
    );
  });

  it('batchTransfer to 100 recipients: 100 Transfer logs in one block', async () => {
    const recipients = numberedAddresses(100);
    const amounts = recipients.map((_, i) => BigInt(i + 1) * 1_000n);
    // A holder that is not the owner spends its own balance.
    const receipt = await send(await holder.writeContract({ address: token, abi: testTokenAbi, functionName: 'batchTransfer', args: [recipients, amounts] }));
    const logs = await publicClient.getLogs({ address: token, event: transferEvent, blockHash: receipt.blockHash });
    assert.equal(logs.length, 100);
    assert.ok(logs.every((log) => log.blockNumber === receipt.blockNumber && log.transactionHash === receipt.transactionHash));
    assert.deepEqual(logs.map((log) => log.args.to?.toLowerCase()), recipients);
    assert.deepEqual(logs.map((log) => log.args.value), amounts);
    assert.equal(new Set(logs.map((log) => log.logIndex)).size, 100);
    assert.equal(await balanceOf(recipients[99]!), 100_000n);
    await assert.rejects(
      holder.writeContract({ address: token, abi: testTokenAbi, functionName: 'batchTransfer', args: [recipients.slice(0, 2), amounts.slice(0, 1)] }),
      /LengthMismatch/,
    );
  });

  it("has each block's bloom show its token logs' contract, and rule it out where the block has none", async () => {
    const minted = await send(await owner.writeContract({ address: token, abi: testTokenAbi, functionName: 'mint', args: [numberedAddresses(1, 900)[0]!, 1n] }));
    const withLog = await publicClient.getBlock({ blockNumber: minted.blockNumber });
    assert.equal(bloomMayContain(withLog.logsBloom, token), true);
    assert.equal(bloomMayContain(withLog.logsBloom, numberedAddresses(1)[0]!), false, 'a contract that logged nothing');
    await mine(node.rpcUrl);
    const empty = await publicClient.getBlock({ blockNumber: minted.blockNumber + 1n });
    assert.equal(bloomMayContain(empty.logsBloom, token), false);
  });

  it('snapshot/revert restores blocks and balances', async () => {
    const id = await snapshot(node.rpcUrl);
    const heightBefore = await publicClient.getBlockNumber();
    const bobBefore = await balanceOf(bob());
    await send(await holder.writeContract({ address: token, abi: testTokenAbi, functionName: 'transfer', args: [bob(), 5n] }));
    await mine(node.rpcUrl, 10);
    assert.equal(await publicClient.getBlockNumber(), heightBefore + 11n);
    assert.equal(await balanceOf(bob()), bobBefore + 5n);

    await revert(node.rpcUrl, id);
    assert.equal(await publicClient.getBlockNumber(), heightBefore);
    assert.equal(await balanceOf(bob()), bobBefore);
    await assert.rejects(revert(node.rpcUrl, id), /already spent/);
  });

  it('anvil_reorg replaces blocks at the same heights, drops their transfers, and can re-include one later', async () => {
    const bobBefore = await balanceOf(bob());
    const transfer = await send(await holder.writeContract({ address: token, abi: testTokenAbi, functionName: 'transfer', args: [bob(), 7n] }));
    await mine(node.rpcUrl, 2);
    const head = await publicClient.getBlockNumber();
    assert.equal(head, transfer.blockNumber + 2n);

    await anvilReorg(node.rpcUrl, 3);
    assert.equal(await publicClient.getBlockNumber(), head, 'the head keeps its height');
    const replaced = await publicClient.getBlock({ blockNumber: transfer.blockNumber });
    assert.notEqual(replaced.hash, transfer.blockHash);
    assert.equal(replaced.transactions.length, 0);
    await assert.rejects(publicClient.getTransactionReceipt({ hash: transfer.transactionHash }));
    assert.equal(await balanceOf(bob()), bobBefore);
    assert.deepEqual(await publicClient.getLogs({ address: token, event: transferEvent, fromBlock: transfer.blockNumber, toBlock: head }), []);

    // The same transfer, signed again, lands one block later on the new branch.
    const request = await holder.prepareTransactionRequest({
      to: token,
      data: encodeFunctionData({ abi: testTokenAbi, functionName: 'transfer', args: [bob(), 7n] }),
    });
    const rawTransaction = await holder.signTransaction(request);
    await anvilReorg(node.rpcUrl, 3, [{ rawTransaction, blockOffset: 1 }]);
    const logs = await publicClient.getLogs({ address: token, event: transferEvent, fromBlock: transfer.blockNumber, toBlock: head });
    assert.equal(logs.length, 1);
    assert.equal(logs[0]!.blockNumber, transfer.blockNumber + 1n);
    assert.equal(await balanceOf(bob()), bobBefore + 7n);
  });

  it('automine off keeps transactions pending until mined; interval mining produces blocks on its own', async () => {
    await setAutomine(node.rpcUrl, false);
    try {
      const height = await publicClient.getBlockNumber();
      const hash = await holder.writeContract({ address: token, abi: testTokenAbi, functionName: 'transfer', args: [bob(), 1n], gas: 100_000n });
      assert.equal(await publicClient.getBlockNumber(), height);
      await assert.rejects(publicClient.getTransactionReceipt({ hash }));
      await mine(node.rpcUrl, 1);
      assert.equal((await publicClient.getTransactionReceipt({ hash })).blockNumber, height + 1n);
    } finally {
      await setAutomine(node.rpcUrl, true);
    }

    const height = await publicClient.getBlockNumber();
    await setIntervalMining(node.rpcUrl, 1);
    try {
      const deadline = Date.now() + 5_000;
      while ((await publicClient.getBlockNumber()) === height && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.ok((await publicClient.getBlockNumber()) > height, 'a block was mined without a transaction');
    } finally {
      await setIntervalMining(node.rpcUrl, 0);
    }
  });
});

describe('TestToken artifact', () => {
  it('the ABI literal equals the committed JSON ABI', () => {
    assert.deepEqual(testTokenAbi, testTokenArtifact.abi);
  });

  it('contracts/TestToken.json is what contracts/TestToken.sol compiles to (else: npm run build:contracts)', () => {
    const compiled = compileTestToken();
    assert.equal(compiled.sourceSha256, testTokenArtifact.sourceSha256, 'TestToken.sol changed since the JSON was built');
    assert.equal(compiled.solcVersion, testTokenArtifact.solcVersion);
    assert.deepEqual(compiled.abi, testTokenArtifact.abi);
    assert.equal(compiled.bytecode, testTokenBytecode);
  });
});
