import type { Logger } from 'pino';
import { createPublicClient, type Hex, http, numberToHex, type PublicClient, webSocket } from 'viem';
import {
  confirmTransfers,
  firstDepositAddressAt,
  initCursor,
  loadCursor,
  type ObservedBlock,
  type ObservedTransfer,
  recordBlocks,
  rewindTo,
  storedBlockHash,
  watchedAddresses,
} from '../../core/deposits/chain-ledger.ts';
import type { Storage } from '../../storage/database.ts';
import type { EvmChainConfig } from '../chain-config.ts';
import type { ChainRuntime } from '../registry.ts';
import { bloomMayContain, type RpcLog, tokenTransferFromLog, transferTopic } from './transfer-logs.ts';

/** How far before its first deposit address a chain's first watch starts, for clocks that disagree. */
const clockMarginSeconds = 300;

/** How many blocks past the one being processed are read while the watcher is behind. */
const readAheadBlocks = 4;

/** The most blocks without transfers committed in one transaction. */
const blocksPerCommit = 100;

/** The node answered something that cannot be true (logs of another block, a missing block below its head…). */
export class InconsistentChainDataError extends Error {
  override name = 'InconsistentChainDataError';
}

export type EvmWatcher = { stop(): Promise<void> };

/**
 * Follows one EVM chain: processes every block from the last one recorded to
 * the head, in order, one transaction per block; records native and ERC-20
 * transfers to deposit addresses; counts confirmations; rewinds on a reorg.
 *
 * @dev One process at a time watches a chain (a leadership lock in the
 * database); the others stand by and take over when the leader's connection
 * goes. Any RPC failure or inconsistent answer aborts the current step
 * without writing, and the watcher retries with backoff: nothing is ever
 * credited from data that did not check out.
 */
export function startEvmWatcher(options: { runtime: ChainRuntime; storage: Storage; logger: Logger; client?: PublicClient; maxBlocksPerStep?: number }): EvmWatcher {
  const { runtime, storage } = options;
  const config = runtime.config as EvmChainConfig;
  const logger = options.logger.child({ chain: config.name });
  const db = storage.db;
  const client =
    options.client ??
    (createPublicClient({
      // Note: no client-side cache: a cached head number would hide a reorg or a new block.
      cacheTime: 0,
      pollingInterval: config.poll_interval_ms,
      transport: config.ws_url ? webSocket(config.ws_url, { retryCount: 0 }) : http(config.rpc_url, { timeout: 10_000, retryCount: 0, batch: false }),
    }) as PublicClient);
  const tokens = new Map(config.tokens.map((token) => [token.contract.toLowerCase(), token.symbol]));
  const tokenContracts = [...tokens.keys()] as Hex[];
  const maxBlocksPerStep = options.maxBlocksPerStep ?? 500;
  let stopped = false;
  let wake: (() => void) | undefined;
  // Note: with a WebSocket the node pushes each new head (eth_subscribe
  // newHeads) and the watcher wakes at once; polling stays as the fallback.
  const unwatchHeads = config.ws_url
    ? client.watchBlockNumber({ emitOnBegin: false, onBlockNumber: () => interruptSleep(), onError: () => {} })
    : undefined;

  const report = (state: ChainRuntime['status']['state'], fields: Partial<ChainRuntime['status']> = {}) => {
    runtime.status = { ...runtime.status, state, ...fields, updatedAt: new Date() };
  };

  async function checkNode(): Promise<void> {
    const chainId = await client.getChainId();
    if (chainId !== config.chain_id) throw new InconsistentChainDataError(`the node at ${config.rpc_url} serves chain id ${chainId}, configured ${config.chain_id}`);
  }

  async function ensureCursor(): Promise<{ number: number; hash: string }> {
    const existing = await loadCursor(db, config.name);
    if (existing) return existing;
    const head = await client.getBlockNumber();
    let start = config.start_block === 'latest' ? head : BigInt(Math.max(0, config.start_block - 1));
    const firstAddress = config.start_block === 'latest' ? await firstDepositAddressAt(db, config.name) : undefined;
    if (firstAddress) {
      // Note: payments got addresses on this chain before its watch could start
      // (the node was down): start from before the first of them, or a transfer
      // made meanwhile would be in a block the watch never reads.
      start = await lastBlockBefore(BigInt(Math.floor(firstAddress.getTime() / 1000) - clockMarginSeconds), head);
    }
    const block = await client.getBlock({ blockNumber: start });
    await initCursor(db, config.name, { number: Number(block.number), hash: block.hash.toLowerCase(), parentHash: block.parentHash.toLowerCase() });
    logger.info({ block: Number(block.number) }, 'chain watch starts');
    return (await loadCursor(db, config.name))!;
  }

  /** The newest block mined before `time` (unix seconds), by binary search over block timestamps; 0 when none is. */
  async function lastBlockBefore(time: bigint, head: bigint): Promise<bigint> {
    let low = 0n;
    let high = head;
    while (low < high) {
      const middle = (low + high + 1n) / 2n;
      if ((await client.getBlock({ blockNumber: middle })).timestamp < time) low = middle;
      else high = middle - 1n;
    }
    return low;
  }

  /** Token `Transfer` logs at `where`: a block's height, or its hash. */
  function transferLogs(where: { blockHash: Hex } | { fromBlock: Hex; toBlock: Hex }): Promise<RpcLog[]> {
    return client.request({ method: 'eth_getLogs', params: [{ ...where, address: tokenContracts, topics: [transferTopic] }] }) as Promise<RpcLog[]>;
  }

  /** Reads one block and the transfers in it to watched addresses, checking every answer against the block. */
  async function readBlock(number: number): Promise<ObservedBlock> {
    // Note: the block and its logs are asked for at once, the logs by height. If the chain moved
    // between the two answers, the logs may be another block's. Logs that all name this block are
    // all of its logs; none is its answer when its bloom shows no log of the tokens (a bloom has no
    // false negatives). Otherwise they are asked again by the block's hash.
    const height = numberToHex(number);
    const [block, logsAtHeight] = await Promise.all([
      client.getBlock({ blockNumber: BigInt(number), includeTransactions: true }),
      tokens.size === 0 ? [] : transferLogs({ fromBlock: height, toBlock: height }),
    ]);
    if (!block || block.number === null || block.hash === null) throw new InconsistentChainDataError(`block ${number} is missing below the head`);
    const blockHash = block.hash.toLowerCase();
    const logsAreThisBlocks =
      logsAtHeight.length > 0
        ? logsAtHeight.every((log) => log.blockHash?.toLowerCase() === blockHash)
        : tokenContracts.every((contract) => !bloomMayContain(block.logsBloom, contract));
    const logs = logsAreThisBlocks ? logsAtHeight : await transferLogs({ blockHash: block.hash });
    const transfers: ObservedTransfer[] = [];
    const natives: ObservedTransfer[] = [];
    for (const tx of block.transactions) {
      if (typeof tx === 'string' || !tx.to || tx.value === 0n) continue;
      natives.push({ txHash: tx.hash.toLowerCase(), logIndex: -1, from: tx.from.toLowerCase(), to: tx.to.toLowerCase(), asset: config.native.symbol, amount: tx.value });
    }
    // Note: a reverted transaction moves no value; only a successful receipt in this very block
    // counts. Receipts are asked for the watched recipients' transactions only.
    const watched = natives.length === 0 ? new Map() : await watchedAddresses(db, config.name, [...new Set(natives.map((native) => native.to))]);
    for (const native of natives) {
      if (!watched.has(native.to)) continue;
      const receipt = await client.getTransactionReceipt({ hash: native.txHash as `0x${string}` });
      if (receipt.blockHash.toLowerCase() !== blockHash) throw new InconsistentChainDataError(`receipt of ${native.txHash} is in another block`);
      if (receipt.status === 'success') transfers.push(native);
    }
    // Note: token transfers go to `recordBlocks` whatever their recipient; it keeps those to watched addresses.
    for (const log of logs) {
      if (log.blockHash?.toLowerCase() !== blockHash || Number(log.blockNumber) !== number) {
        throw new InconsistentChainDataError(`logs for block ${number} carry block ${log.blockNumber === null ? null : Number(log.blockNumber)} ${log.blockHash}`);
      }
      const transfer = tokenTransferFromLog(log);
      if (!transfer || transfer.amount === 0n) continue;
      const asset = tokens.get(transfer.contract);
      // Note: the node filters by contract; a log of another contract is an answer to another question.
      if (asset === undefined) throw new InconsistentChainDataError(`logs for block ${number} include one of contract ${log.address}, which was not asked for`);
      transfers.push({ txHash: transfer.txHash, logIndex: transfer.logIndex, from: transfer.from, to: transfer.to, asset, amount: transfer.amount });
    }
    return { number, hash: blockHash, parentHash: block.parentHash.toLowerCase(), transfers };
  }

  /** Finds the newest block both we and the node agree on, walking back at most the reorg window. */
  async function findFork(from: number): Promise<{ number: number; hash: string }> {
    for (let number = from; number >= Math.max(0, from - config.reorg_window); number--) {
      const stored = await storedBlockHash(db, config.name, number);
      if (!stored) break;
      // Note: a failed lookup fails the step (to be retried); taken as a mismatch, it would
      // rewind below the real fork and undo transfers that are still on the chain.
      const canonical = await client.getBlock({ blockNumber: BigInt(number) });
      if (canonical.hash?.toLowerCase() === stored) return { number, hash: stored };
    }
    throw new InconsistentChainDataError(`reorg deeper than the reorg window of ${config.reorg_window} blocks below ${from}; refusing to continue`);
  }

  async function step(): Promise<void> {
    await checkNode();
    let cursor = await ensureCursor();
    const head = Number(await client.getBlockNumber());
    if (head < cursor.number) {
      // Note: a node behind our cursor (restarted, resyncing, or a new chain) is
      // checked block by block: if its block at our height differs, rewind.
      const hashThere = (await client.getBlock({ blockNumber: BigInt(head) }).catch(() => undefined))?.hash?.toLowerCase();
      const ours = await storedBlockHash(db, config.name, head);
      if (ours && hashThere && ours !== hashThere) {
        const fork = await findFork(head);
        await rewindTo(db, { chain: config.name, fork });
        logger.warn({ fork: fork.number }, 'node is behind and on another branch; rewound');
        report('ok', { head, processed: fork.number, error: null });
      } else {
        // Note: not following the chain is not "ok", even when nothing is wrong with what was recorded.
        logger.warn({ head, processed: cursor.number }, 'node is behind the last processed block; waiting');
        report('degraded', { head, processed: cursor.number, error: `the node's head ${head} is behind the last processed block ${cursor.number}; waiting for it` });
      }
      return;
    }
    // Note: the state stays what it was until the step shows otherwise: a failure
    // that recurs every step must not flash "ok" between attempts.
    runtime.status = { ...runtime.status, head, processed: cursor.number, updatedAt: new Date() };
    // Note: blocks are committed in runs, up to blocksPerCommit at a time and at the end
    // of the step. At the head a step is a block or two, so a block's payments are settled
    // as soon as it is read; while catching up, a run's transfers are matched and settled
    // together (on a busy chain nearly every block has token transfers, mostly to
    // addresses nobody here watches).
    let run: ObservedBlock[] = [];
    const commitRun = async () => {
      if (run.length === 0) return;
      const blocks = run;
      run = [];
      const affected = await recordBlocks(db, { chain: config.name, blocks, reorgWindow: config.reorg_window });
      const last = blocks.at(-1)!;
      if (affected.length > 0) logger.info({ from: blocks[0]!.number, to: last.number, payments: affected.length }, 'transfers recorded');
      report('ok', { processed: last.number, error: null });
    };
    // Note: while behind, the next blocks are read while the current one is processed.
    // Each read checks its own answers; its place on the chain (the parent hash) is
    // checked when its turn comes, and reads of a branch a reorg left are dropped.
    const lastToRead = Math.min(head, cursor.number + maxBlocksPerStep);
    const reads = new Map<number, Promise<ObservedBlock>>();
    const read = (number: number): Promise<ObservedBlock> => {
      for (let ahead = number; ahead <= Math.min(lastToRead, number + readAheadBlocks); ahead++) {
        if (reads.has(ahead)) continue;
        const reading = readBlock(ahead);
        // Note: a failed read fails the step when its turn comes; one dropped unread fails nothing.
        reading.catch(() => {});
        reads.set(ahead, reading);
      }
      const reading = reads.get(number)!;
      reads.delete(number);
      return reading;
    };
    for (let processed = 0; cursor.number < head && processed < maxBlocksPerStep && !stopped; processed++) {
      const next = await read(cursor.number + 1);
      if (next.parentHash !== cursor.hash) {
        // Note: the fork is looked for among committed blocks, so the run read so far is committed first.
        await commitRun();
        reads.clear();
        const fork = await findFork(cursor.number);
        const affected = await rewindTo(db, { chain: config.name, fork });
        logger.warn({ from: cursor.number, fork: fork.number, payments: affected.length }, 'chain reorganization; rewound');
        cursor = fork;
        continue;
      }
      run.push(next);
      cursor = { number: next.number, hash: next.hash };
      if (run.length >= blocksPerCommit) await commitRun();
    }
    await commitRun();
    // Note: confirmations count up to the last block checked against its parent, not the
    // node's head: a block we have not processed yet may still turn out to be on another branch.
    await confirmTransfers(db, { chain: config.name, head: cursor.number, defaultConfirmations: config.confirmations });
    report('ok', { error: null });
    // Note: more blocks behind than one step takes: go on without sleeping.
    if (cursor.number < head && !stopped) wake?.();
  }

  const loop = (async () => {
    let backoffMs = 0;
    while (!stopped) {
      const lock = await storage.tryLock(`paycrypt.chain.${config.name}`).catch((error: unknown) => {
        report('degraded', { error: `database: ${(error as Error).message}` });
        return undefined;
      });
      if (!lock) {
        if (runtime.status.state !== 'degraded') report('standby');
        await sleep(config.poll_interval_ms * 5);
        continue;
      }
      let lost = false;
      void lock.lost.then(() => {
        lost = true;
        interruptSleep();
      });
      logger.info('leading the watch of this chain');
      while (!stopped && !lost) {
        try {
          let again = false;
          wake = () => (again = true);
          await step();
          backoffMs = 0;
          if (!again) await sleep(config.poll_interval_ms);
        } catch (error) {
          backoffMs = Math.min(30_000, Math.max(500, backoffMs * 2));
          report('degraded', { error: (error as Error).message });
          logger.warn({ err: error, retry_in_ms: backoffMs }, 'chain step failed; retrying');
          await sleep(backoffMs);
        }
      }
      await lock.release();
      if (lost && !stopped) logger.warn('lost the chain lock; standing by');
    }
  })();

  let sleeper: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      sleeper = { timer: setTimeout(resolve, ms), resolve };
    });
  }
  function interruptSleep() {
    if (!sleeper) return;
    clearTimeout(sleeper.timer);
    sleeper.resolve();
    sleeper = undefined;
  }

  return {
    async stop() {
      stopped = true;
      unwatchHeads?.();
      interruptSleep();
      await loop;
    },
  };
}
