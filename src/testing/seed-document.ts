import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './cli.ts';

/**
 * The PayCrypt v1 API document, kept in the repository (`docs/api/`) so that
 * a checkout anywhere runs its examples.
 */
export const seedPath = path.resolve(repoRoot, 'docs', 'api', 'paycrypt-v1-payments.txt');
/** The PayCrypt Payment Session document. */
export const sessionSeedPath = path.resolve(repoRoot, 'docs', 'api', 'paycrypt-payment-sessions.txt');

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

/**
 * The text under the line `heading` in the Payment Session document, up to
 * the next heading: that document shows its examples as plain text.
 */
export function sessionSeedSection(heading: string): string {
  if (!fs.existsSync(sessionSeedPath)) assert.fail(`The Payment Session document is missing: expected it at ${sessionSeedPath}`);
  const lines = fs.readFileSync(sessionSeedPath, 'utf8').split('\n');
  const start = lines.findIndex((line) => line.trim() === heading);
  assert.notEqual(start, -1, `no section "${heading}" in ${sessionSeedPath}`);
  const end = lines.findIndex((line, index) => index > start && /^#{1,6} /.test(line));
  return lines.slice(start + 1, end === -1 ? undefined : end).join('\n').trim();
}
