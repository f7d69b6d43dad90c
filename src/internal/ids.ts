import { randomBytes } from 'node:crypto';

/** Prefixes of the public ids, so an id says what it names (`pay_…`, `evt_…`). */
export type IdPrefix = 'pay' | 'evt' | 'key' | 'req' | 'whe' | 'whd' | 'ps';

const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';

/** Random lowercase base-36 text with `length` characters (about 5.17 bits each). */
export function randomToken(length: number): string {
  const bytes = randomBytes(length * 2);
  let out = '';
  for (let i = 0; out.length < length; i++) {
    // Note: rejection sampling keeps the distribution uniform (252 = 7 × 36).
    const byte = bytes[i % bytes.length]!;
    if (byte < 252) out += alphabet[byte % 36];
    if (i >= bytes.length - 1 && out.length < length) return out + randomToken(length - out.length);
  }
  return out;
}

export function createId(prefix: IdPrefix, length = 20): string {
  return `${prefix}_${randomToken(length)}`;
}
