import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { sessionSeedSection } from './seed-document.ts';

/**
 * The Payment Session document's Django webhook verification, run as written
 * (its `YOUR_KEY` and `YOUR_SECRET` replaced by a merchant's key and secret)
 * in Django behind a real HTTP server. `answers` lists what the view said to
 * each webhook, in order.
 */
export type DjangoReceiver = {
  url: string;
  answers: Array<{ status: number; type: string | null; id: string | null }>;
  waitFor(predicate: (answers: DjangoReceiver['answers']) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
};

export async function startDjangoReceiver(credentials: { apiKey: string; apiSecret: string }): Promise<DjangoReceiver> {
  const view = sessionSeedSection('### Django webhook verification');
  if (!view.includes("key != 'YOUR_KEY'") || !view.includes("hmac.new(b'YOUR_SECRET'")) throw new Error('the document\'s Django example no longer has its placeholders');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paycrypt-django-'));
  const viewFile = path.join(dir, 'view.py');
  fs.writeFileSync(viewFile, view.replace("'YOUR_KEY'", `'${credentials.apiKey}'`).replace("b'YOUR_SECRET'", `b'${credentials.apiSecret}'`));
  const python = ['python3', '/usr/bin/python3'].find((candidate) => spawnSync(candidate, ['-c', 'import django'], { stdio: 'ignore', timeout: 20_000 }).status === 0);
  if (!python) throw new Error('Django is not installed for python3 (Debian package python3-django; .ci/run installs it)');
  const child: ChildProcess = spawn(python, [new URL('./django_webhook_receiver.py', import.meta.url).pathname, viewFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const answers: DjangoReceiver['answers'] = [];
  const lines = readline.createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the Django receiver did not start: ${stderr}`)), 20_000);
    child.once('exit', (code) => reject(new Error(`the Django receiver exited with ${code}: ${stderr}`)));
    lines.on('line', (line) => {
      const message = JSON.parse(line) as { port?: number; status?: number; type?: string | null; id?: string | null };
      if (message.port !== undefined) {
        clearTimeout(timer);
        resolve(message.port);
      } else answers.push({ status: message.status!, type: message.type ?? null, id: message.id ?? null });
    });
  });
  return {
    url: `http://127.0.0.1:${port}/api/paycrypt/webhook`,
    answers,
    async waitFor(predicate, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(answers)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for webhooks at the Django receiver; answered so far: ${JSON.stringify(answers)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async close() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
