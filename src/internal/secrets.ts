import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Secrets at rest.
 *
 * @dev API keys are high-entropy random tokens, so a plain SHA-256 is the right
 * hash (it is looked up by equality on every request; a slow password hash
 * would add nothing against brute force of 120+ random bits). Secrets that must
 * be read back (HMAC secrets) are sealed with AES-256-GCM under the master key.
 */

export type MasterKey = { key: Buffer };

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/** Compares two strings in time independent of where they differ. */
export function safeEqual(a: string, b: string): boolean {
  const left = createHash('sha256').update(a).digest();
  const right = createHash('sha256').update(b).digest();
  return timingSafeEqual(left, right);
}

const sealVersion = 'v1';

/** Encrypts `plaintext` as `v1.<iv>.<tag>.<ciphertext>` (base64url parts). */
export function seal(master: MasterKey, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', master.key, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [sealVersion, iv.toString('base64url'), tag.toString('base64url'), ciphertext.toString('base64url')].join('.');
}

export function unseal(master: MasterKey, sealed: string): string {
  const [version, iv, tag, ciphertext] = sealed.split('.');
  if (version !== sealVersion || !iv || !tag || ciphertext === undefined) throw new Error('unknown sealed secret format');
  const decipher = createDecipheriv('aes-256-gcm', master.key, Buffer.from(iv, 'base64url'));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
}

/**
 * Reads a secret file from the data directory, creating it with `generate()`
 * (mode 0600) when missing. Used only outside production, where the operator
 * has not provided the value through the environment.
 */
export function readOrCreateSecretFile(dataDir: string, name: string, generate: () => string): string {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, name);
  try {
    fs.writeFileSync(file, `${generate()}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return fs.readFileSync(file, 'utf8').trim();
}

export function loadMasterKey(options: { masterKeyHex: string | undefined; dataDir: string }): MasterKey {
  const hex = options.masterKeyHex ?? readOrCreateSecretFile(options.dataDir, 'master.key', () => randomBytes(32).toString('hex'));
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new Error(`master key in ${options.dataDir}/master.key is not 64 hex characters`);
  return { key: Buffer.from(hex, 'hex') };
}
