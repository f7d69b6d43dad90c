import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { mnemonicToAccount } from 'viem/accounts';
import { bytesToHex, defineChain, numberToHex, type Address, type Chain, type Hex } from 'viem';

/**
 * A local EVM node for `paycrypt dev` and for tests: anvil, run from the binary
 * that the npm package `@foundry-rs/anvil` installs for this platform.
 *
 * @dev Nothing is downloaded at run time. The binary ships in a per-platform
 * npm package (`@foundry-rs/anvil-<os>-<arch>`), resolved here the same way the
 * package's own `bin.mjs` does.
 */
export type Anvil = {
  /** `http://127.0.0.1:<port>` */
  rpcUrl: string;
  /** `ws://127.0.0.1:<port>`: anvil serves both on one port. */
  wsUrl: string;
  port: number;
  chainId: number;
  mnemonic: string;
  /** The dev accounts anvil funds at genesis (10 000 ETH each), lower-case addresses. */
  accounts: AnvilAccount[];
  /** Stops the node and resolves once its process has exited; safe to call twice. */
  stop(): Promise<void>;
};

export type AnvilAccount = { address: Address; privateKey: Hex };

export type StartAnvilOptions = {
  /** Port to listen on; by default anvil binds port 0 and reports the one it got. */
  port?: number;
  /** Seconds between blocks (interval mining); by default a block is mined per transaction. */
  blockTime?: number;
  /** Default 31337, anvil's own. */
  chainId?: number;
  /** Default `anvilDefaultMnemonic`. */
  mnemonic?: string;
  /** How long to wait for the node to answer `eth_chainId`; default 15 s. */
  startTimeoutMs?: number;
};

/** Anvil's (and Hardhat's) well-known dev mnemonic. Never hold real funds with it. */
export const anvilDefaultMnemonic = 'test test test test test test test test test test test junk';

const anvilDefaultChainId = 31337;
const devAccountCount = 10;

/**
 * The anvil executable for this platform, from the npm package
 * `@foundry-rs/anvil-<platform>-<arch>` that `@foundry-rs/anvil` pulls in as an
 * optional dependency.
 */
export function anvilBinaryPath(): string {
  const arch: string | undefined = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch];
  const supported = ['linux-amd64', 'linux-arm64', 'darwin-amd64', 'darwin-arm64', 'win32-amd64'];
  const target = `${process.platform}-${arch}`;
  if (!arch || !supported.includes(target)) {
    throw new Error(`anvil has no npm binary for ${process.platform}/${process.arch}; supported: ${supported.join(', ')}`);
  }
  const packageName = `@foundry-rs/anvil-${target}`;
  let packageJson: string;
  try {
    packageJson = createRequire(import.meta.url).resolve(`${packageName}/package.json`);
  } catch (cause) {
    throw new Error(`${packageName} is not installed; run npm install (it is an optional dependency of @foundry-rs/anvil)`, { cause });
  }
  const binary = path.join(path.dirname(packageJson), 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
  if (!existsSync(binary)) throw new Error(`${packageName} is installed but has no binary at ${binary}`);
  return binary;
}

/** Starts anvil on 127.0.0.1 and resolves once it answers JSON-RPC. */
export async function startAnvil(options: StartAnvilOptions = {}): Promise<Anvil> {
  const mnemonic = options.mnemonic ?? anvilDefaultMnemonic;
  const chainId = options.chainId ?? anvilDefaultChainId;
  const args = ['--host', '127.0.0.1', '--port', String(options.port ?? 0), '--chain-id', String(chainId), '--mnemonic', mnemonic, '--accounts', String(devAccountCount), '--color', 'never'];
  if (options.blockTime !== undefined) args.push('--block-time', String(options.blockTime));

  const child = spawn(anvilBinaryPath(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  trackUntilExit(child);
  // Note: a process that failed to spawn emits 'error' and never 'exit'.
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  // Note: a test that forgets stop() must not keep its process alive; the exit hook below kills the node.
  child.unref();

  // Note: anvil logs every RPC call to stdout; the pipe is drained for the node's whole life
  // (or anvil would block on a full pipe) and only a short tail is kept for error messages.
  let outputTail = '';
  const onOutput = (chunk: Buffer) => {
    outputTail = (outputTail + chunk.toString('utf8')).slice(-4000);
  };
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.on('data', onOutput);
    (stream as unknown as { unref?: () => void }).unref?.();
  }

  const stop = async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
  };

  try {
    const port = await waitForListeningPort(child, () => outputTail, options.startTimeoutMs ?? 15_000);
    const rpcUrl = `http://127.0.0.1:${port}`;
    await waitForChainId(rpcUrl, chainId, child, options.startTimeoutMs ?? 15_000);
    return {
      rpcUrl,
      wsUrl: `ws://127.0.0.1:${port}`,
      port,
      chainId,
      mnemonic,
      accounts: deriveDevAccounts(mnemonic, devAccountCount),
      stop,
    };
  } catch (error) {
    await stop();
    throw new Error(`anvil did not start: ${(error as Error).message}\n--- anvil output (tail) ---\n${outputTail}`, { cause: error });
  }
}

/** The first `count` accounts of `m/44'/60'/0'/0/<i>`, the ones anvil funds. */
export function deriveDevAccounts(mnemonic: string, count = devAccountCount): AnvilAccount[] {
  return Array.from({ length: count }, (_, addressIndex) => {
    const account = mnemonicToAccount(mnemonic, { addressIndex });
    return { address: account.address.toLowerCase() as Address, privateKey: bytesToHex(account.getHdKey().privateKey!) };
  });
}

/** A viem chain for a running node (viem's `foundry` chain assumes port 8545 and id 31337). */
export function anvilChain(node: Pick<Anvil, 'chainId' | 'rpcUrl' | 'wsUrl'>): Chain {
  return defineChain({
    id: node.chainId,
    name: 'Anvil',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [node.rpcUrl], webSocket: [node.wsUrl] } },
  });
}

// ---------------------------------------------------------------------------
// Chain control for tests. Each takes the node's HTTP URL so it works on any
// anvil, also one started elsewhere.

/** Mines `blocks` empty-or-pending blocks at once (`anvil_mine`). */
export async function mine(rpcUrl: string, blocks = 1): Promise<void> {
  await anvilRpc(rpcUrl, 'anvil_mine', [numberToHex(blocks)]);
}

/** Saves the whole chain state; returns an id for `revert`. */
export async function snapshot(rpcUrl: string): Promise<Hex> {
  return (await anvilRpc(rpcUrl, 'evm_snapshot', [])) as Hex;
}

/**
 * Restores the chain (blocks, balances, nonces) to a `snapshot`.
 * @dev An id is spent by reverting to it (and so are later ids); take a new snapshot to revert again.
 */
export async function revert(rpcUrl: string, snapshotId: Hex): Promise<void> {
  const reverted = await anvilRpc(rpcUrl, 'evm_revert', [snapshotId]);
  if (reverted !== true) throw new Error(`evm_revert(${snapshotId}) failed: unknown or already spent snapshot id`);
}

/**
 * Replaces the last `depth` blocks with new ones at the same heights (`anvil_reorg`), so
 * the head keeps its number and every replaced block gets a new hash.
 *
 * @dev The transactions of the replaced blocks are dropped, not re-mined: a transfer in
 * them disappears from the chain. `replacements` puts signed raw transactions into the new
 * blocks, each at `blockOffset` (0 = the first replaced height) — e.g. the same transfer
 * landing a block later.
 */
export async function anvilReorg(rpcUrl: string, depth: number, replacements: { rawTransaction: Hex; blockOffset: number }[] = []): Promise<void> {
  if (!Number.isSafeInteger(depth) || depth < 1) throw new Error(`reorg depth must be a positive integer, got ${depth}`);
  await anvilRpc(rpcUrl, 'anvil_reorg', [depth, replacements.map((r) => [r.rawTransaction, r.blockOffset])]);
}

/** Automine on: every transaction gets its own block at once. Off: transactions wait for `mine` or interval mining. */
export async function setAutomine(rpcUrl: string, on: boolean): Promise<void> {
  await anvilRpc(rpcUrl, 'evm_setAutomine', [on]);
}

/** Mines a block every `seconds` (0 turns interval mining off). */
export async function setIntervalMining(rpcUrl: string, seconds: number): Promise<void> {
  await anvilRpc(rpcUrl, 'evm_setIntervalMining', [seconds]);
}

/** One JSON-RPC call; a JSON-RPC error becomes a thrown Error with the node's message. */
export async function anvilRpc(rpcUrl: string, method: string, params: unknown[]): Promise<unknown> {
  const response = await fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  if (!response.ok) throw new Error(`${method}: HTTP ${response.status} from ${rpcUrl}`);
  const body = (await response.json()) as { result?: unknown; error?: { code: number; message: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message} (JSON-RPC ${body.error.code})`);
  return body.result;
}

// ---------------------------------------------------------------------------
// Start-up and clean-up.

function waitForListeningPort(child: ChildProcess, output: () => string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onData = () => {
      const match = /Listening on [^\s:]+:(\d+)/.exec(output());
      if (match) finish(() => resolve(Number(match[1])));
    };
    const onExit = (code: number | null, signal: string | null) => finish(() => reject(new Error(`anvil exited (code ${code}, signal ${signal}) before listening`)));
    const onError = (error: Error) => finish(() => reject(error));
    const timer = setTimeout(() => finish(() => reject(new Error(`anvil printed no "Listening on" line within ${timeoutMs} ms`))), timeoutMs);
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      settle();
    };
    // Note: registered after the tail collector in startAnvil, so output() already holds this chunk.
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

async function waitForChainId(rpcUrl: string, expected: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`anvil exited (code ${child.exitCode}, signal ${child.signalCode})`);
    try {
      const answered = Number(await anvilRpc(rpcUrl, 'eth_chainId', []));
      if (answered !== expected) throw new Error(`eth_chainId answered ${answered}, expected ${expected}: is another node on this port?`);
      return;
    } catch (error) {
      if ((error as Error).message.startsWith('eth_chainId answered')) throw error;
      if (Date.now() > deadline) throw new Error(`eth_chainId did not answer at ${rpcUrl} within ${timeoutMs} ms`, { cause: error });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Every anvil this process started and that still runs. A crashed test, an uncaught
 * exception or a process.exit() must not leave a node behind: the 'exit' hook kills
 * them (synchronously, which is all an 'exit' listener may do).
 */
const runningNodes = new Set<ChildProcess>();
let exitHooksInstalled = false;

function trackUntilExit(child: ChildProcess): void {
  runningNodes.add(child);
  child.once('exit', () => runningNodes.delete(child));
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', killRunningNodes);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      // Note: if the application handles this signal itself, it owns the shutdown and the
      // 'exit' hook cleans up after it. Alone, we do what Node would have done: die by the signal.
      if (process.listenerCount(signal) > 1) return;
      killRunningNodes();
      process.off(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

function killRunningNodes(): void {
  for (const child of runningNodes) child.kill('SIGKILL');
  runningNodes.clear();
}
