import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { createId } from './ids.ts';

describe('createId', () => {
  it('is the prefix and 20 lower-case base-36 characters, or as many as asked for', () => {
    assert.match(createId('evt'), /^evt_[0-9a-z]{20}$/);
    assert.match(createId('key', 16), /^key_[0-9a-z]{16}$/);
  });

  it('sorts an id made later after one made earlier, so new keys go to the end of their index', async () => {
    const earlier = createId('evt');
    await sleep(5);
    const later = createId('evt');
    assert.ok(earlier < later, `${earlier} should sort before ${later}`);
  });

  it('never repeats within a burst made in the same milliseconds', () => {
    const ids = Array.from({ length: 20_000 }, () => createId('evt'));
    assert.equal(new Set(ids).size, ids.length);
  });
});
