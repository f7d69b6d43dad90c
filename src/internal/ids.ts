import { randomFillSync } from 'node:crypto';

/** Prefixes of the public ids, so an id says what it names (`pay_…`, `evt_…`). */
export type IdPrefix = 'pay' | 'evt' | 'key' | 'req' | 'whe' | 'whd' | 'ps';

const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';

// Note: random bytes are drawn from the CSPRNG 4 KiB at a time and each is
// used once; one call per id would cost more than the rest of making it.
const randomPool = Buffer.alloc(4096);
let randomPoolUsed = randomPool.length;

function randomByte(): number {
  if (randomPoolUsed === randomPool.length) {
    randomFillSync(randomPool);
    randomPoolUsed = 0;
  }
  return randomPool[randomPoolUsed++]!;
}

/** Random lowercase base-36 text with `length` characters (about 5.17 bits each). */
export function randomToken(length: number): string {
  let out = '';
  while (out.length < length) {
    // Note: rejection sampling keeps the distribution uniform (252 = 7 × 36).
    const byte = randomByte();
    if (byte < 252) out += alphabet[byte % 36];
  }
  return out;
}

/**
 * A new id: the prefix, then `length` base-36 characters, the first nine the
 * time in milliseconds and the rest random (11 by default, about 57 bits).
 *
 * @dev Time first, so ids made one after the other sort together: a new row's
 * key goes next to the last one's at the right edge of its index instead of
 * onto a random page of it. With random keys, every insert into a large
 * table's primary key reads and dirties a page of its own (and writes it whole
 * to the WAL after each checkpoint). Nine characters of base 36 count
 * milliseconds until the year 5188.
 */
export function createId(prefix: IdPrefix, length = 20): string {
  return `${prefix}_${Date.now().toString(36).padStart(9, '0')}${randomToken(length - 9)}`;
}
