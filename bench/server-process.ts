import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/**
 * The servers under test run in child processes of their own, the gateway and
 * the baseline alike, so neither shares its event loop with the load
 * generator and both are measured in the same arrangement.
 *
 * A server process announces itself with one `ready` message over the IPC
 * channel and stops when told to or when the channel closes, so it never
 * outlives the benchmark.
 */

export type ReadyMessage = { type: 'ready'; url: string } & Record<string, unknown>;

export type ServerProcess<Extra = {}> = {
  ready: ReadyMessage & Extra;
  pid: number;
  stop(): Promise<void>;
};

const startTimeoutMs = 60_000;
const stopTimeoutMs = 5_000;

/** Parent side: starts `bench/<file>` under tsx with exactly `env` (plus PATH) and waits for it to be ready. */
export async function startServerProcess<Extra = {}>(file: string, env: Record<string, string>): Promise<ServerProcess<Extra>> {
  const child = fork(fileURLToPath(new URL(file, import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    // Note: a clean environment, so settings in the caller's shell (a
    // PAYCRYPT_RATES, a log level) cannot change what is measured.
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = (await waitForReady(child, file)) as ReadyMessage & Extra;
  return { ready, pid: child.pid!, stop: () => stopChild(child) };
}

function waitForReady(child: ChildProcess, file: string): Promise<ReadyMessage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} was not ready within ${startTimeoutMs / 1000} s`));
    }, startTimeoutMs);
    child.on('message', (message: ReadyMessage) => {
      if (message?.type !== 'ready') return;
      clearTimeout(timer);
      resolve(message);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${file} exited before it was ready (${signal ?? `exit code ${code}`})`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.send?.('stop');
  const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
  await exited;
  clearTimeout(timer);
}

/** Child side: reports `ready` to the parent and closes the server when told to stop or when the parent goes away. */
export function serveUntilStopped(ready: ReadyMessage, close: () => Promise<void>): void {
  if (!process.send) throw new Error('this server is meant to be started by bench/api.bench.ts');
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    close()
      .catch((error: unknown) => console.error(error))
      .finally(() => process.exit(0));
  };
  process.on('message', (message) => message === 'stop' && stop());
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.send(ready);
}
