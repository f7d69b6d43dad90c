import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { profilingEnv } from './profiling.ts';
import type { CapturedRequest } from './webhook-receiver.ts';

/** Parent side of bench/webhook-baseline-sender.ts: a warmed-up child process that sends when told to. */
export type PlainSender = {
  pid: number;
  /** Starts sending; resolves when the child has had every answer, with the number of failed requests. */
  go(): Promise<number>;
  stop(): Promise<void>;
};

const readyTimeoutMs = 60_000;

export async function startPlainSender(input: {
  receiverUrl: string;
  requests: readonly CapturedRequest[];
  concurrency: number;
  warmUp: number;
  client: 'node:http' | 'undici';
  /** A directory for the requests file (the child reads it rather than receiving 10,000 bodies over IPC). */
  workDir: string;
}): Promise<PlainSender> {
  const requestsFile = path.join(input.workDir, 'baseline-requests.json');
  fs.writeFileSync(requestsFile, JSON.stringify(input.requests));
  const child = fork(fileURLToPath(new URL('webhook-baseline-sender.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: {
      PATH: process.env.PATH ?? '',
      BENCH_RECEIVER_URL: input.receiverUrl,
      BENCH_REQUESTS_FILE: requestsFile,
      BENCH_CONCURRENCY: String(input.concurrency),
      BENCH_WARM_UP: String(input.warmUp),
      BENCH_CLIENT: input.client,
      ...profilingEnv(),
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    await nextMessage(child, 'ready', readyTimeoutMs);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    pid: child.pid!,
    async go() {
      const done = nextMessage(child, 'done', 10 * 60_000);
      child.send('go');
      return ((await done) as { failures: number }).failures;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function nextMessage(child: ChildProcess, type: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the baseline sender sent no '${type}' within ${timeoutMs / 1000} s`)), timeoutMs);
    const onMessage = (message: { type?: string }) => {
      if (message?.type !== type) return;
      finish();
      resolve(message);
    };
    const onExit = (code: number | null, signal: string | null) => {
      finish();
      reject(new Error(`the baseline sender exited before '${type}' (${signal ?? `exit code ${code}`})`));
    };
    function finish() {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    }
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}
