#!/usr/bin/env node
// Runs every `*.test.ts` beside the code with Node's test runner (through tsx).
// Extra arguments are passed to the runner, e.g. `npm test -- --test-name-pattern=idempotency`.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const files = readdirSync(path.join(root, 'src'), { recursive: true, withFileTypes: true })
  .filter((entry) => entry.isFile() && entry.name.endsWith('.test.ts'))
  .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)))
  .sort();

const args = ['--import', 'tsx', '--test', '--test-concurrency=2', ...process.argv.slice(2), ...files];
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
