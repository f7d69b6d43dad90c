import { spawn } from 'node:child_process';
import { type Anvil, anvilBinaryPath, anvilDefaultMnemonic, anvilRpc, deriveDevAccounts } from '../src/chains/evm/anvil.ts';

/**
 * Anvil for the chain benchmark: the binary of the npm package, as
 * `startAnvil` runs it, on 127.0.0.1 and a port of its choosing, but with
 * the Cancun hardfork.
 *
 * @dev Under its default (Prague) hardfork, anvil 1.7 stores every block's
 * hash in the EIP-2935 history contract and rebuilds its state trie for each
 * block mined, so mining slows down as the chain grows: 10,000 blocks took
 * 80 s here, against about 7 s under Cancun. The watcher reads the same
 * blocks and logs either way; the benchmark would only have waited longer.
 */

export const hardfork = 'cancun';

const chainId = 31337;
const accountCount = 10;
const startTimeoutMs = 15_000;

export async function startBenchAnvil(): Promise<Anvil> {
  const args = ['--host', '127.0.0.1', '--port', '0', '--chain-id', String(chainId), '--mnemonic', anvilDefaultMnemonic, '--accounts', String(accountCount), '--color', 'never', '--hardfork', hardfork];
  const child = spawn(anvilBinaryPath(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // Note: a process that failed to spawn emits 'error' and never 'exit'.
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  // Note: an exception or process.exit() in the benchmark must not leave the node running.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  // Note: anvil logs every call; its output is drained for the node's whole life (a full pipe would block it), keeping a short tail for errors.
  let output = '';
  const port = new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-4000);
      const match = /Listening on [^\s:]+:(\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`anvil exited (code ${code}, signal ${signal}) before listening`)));
  });

  async function stop(): Promise<void> {
    process.off('exit', killOnExit);
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  try {
    const listening = await withTimeout(port, startTimeoutMs, 'anvil printed no "Listening on" line');
    const rpcUrl = `http://127.0.0.1:${listening}`;
    await waitForChainId(rpcUrl);
    return { rpcUrl, wsUrl: `ws://127.0.0.1:${listening}`, port: listening, chainId, mnemonic: anvilDefaultMnemonic, accounts: deriveDevAccounts(anvilDefaultMnemonic, accountCount), stop };
  } catch (error) {
    await stop();
    throw new Error(`anvil did not start: ${(error as Error).message}\n--- anvil output (tail) ---\n${output}`, { cause: error });
  }
}

async function waitForChainId(rpcUrl: string): Promise<void> {
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    try {
      const answered = Number(await anvilRpc(rpcUrl, 'eth_chainId', []));
      if (answered !== chainId) throw new Error(`eth_chainId answered ${answered}, expected ${chainId}`);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
