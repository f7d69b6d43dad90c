import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './cli.ts';

/** The PayCrypt v1 API document, in `shared/seeds/` beside the checkout. */
export const seedPath = path.resolve(repoRoot, '..', 'shared', 'seeds', '000_a0260b31264e061e.txt');

/** The first fenced `language` block after the line `heading` in the PayCrypt v1 document. */
export function seedExample(heading: string, language: string): string {
  if (!fs.existsSync(seedPath)) assert.fail(`The PayCrypt v1 API document is missing: expected it at ${seedPath}`);
  const document = fs.readFileSync(seedPath, 'utf8');
  const start = document.search(new RegExp(`^${heading.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  assert.notEqual(start, -1, `no section "${heading}" in ${seedPath}`);
  const block = new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\\n\`\`\``).exec(document.slice(start));
  assert.ok(block, `no \`\`\`${language} block under "${heading}" in ${seedPath}`);
  return block[1]!;
}
