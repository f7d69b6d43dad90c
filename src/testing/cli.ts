import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Running the real `./bin/paycrypt` from tests, as a user would. */

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const paycrypt = path.join(repoRoot, 'bin', 'paycrypt');

export type CliResult = { code: number | null; stdout: string; stderr: string };

/** The environment of a shell with none of PayCrypt's settings, plus `settings`. */
export function cliEnv(settings: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('PAYCRYPT_') || name.startsWith('NODE_TEST') || ['DATABASE_URL', 'NODE_ENV', 'PORT', 'HOST'].includes(name)) continue;
    env[name] = value;
  }
  return { ...env, ...settings };
}

/** Runs `./bin/paycrypt args…` to completion. */
export function cli(args: string[], settings: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(paycrypt, args, { cwd: repoRoot, env: cliEnv(settings), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a command that must succeed with `--json` and returns its one JSON value. */
export async function cliJson(args: string[], settings: Record<string, string>): Promise<any> {
  const result = await cli([...args, '--json'], settings);
  assert.equal(result.code, 0, `paycrypt ${args.join(' ')} failed:\n${result.stderr}`);
  const lines = result.stdout.split('\n').filter((line) => line !== '');
  assert.equal(lines.length, 1, `expected one line of JSON from paycrypt ${args.join(' ')}:\n${result.stdout}`);
  return JSON.parse(lines[0]!);
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}
