import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isoSeconds, isoSecondsOfText } from './render.ts';

describe('isoSecondsOfText: a stored time as the PayCrypt docs print it', () => {
  it('cuts the milliseconds of toISOString text', () => {
    assert.equal(isoSecondsOfText('2026-12-03T13:05:01.999Z'), '2026-12-03T13:05:01Z');
  });

  it('gives what isoSeconds gives for the same instant in any other form', () => {
    for (const text of ['2026-12-03T15:05:01.5+02:00', '2026-12-03T13:05:01Z', '2026-12-03T13:05:01.123456Z']) {
      assert.equal(isoSecondsOfText(text), isoSeconds(new Date(text)), text);
      assert.equal(isoSecondsOfText(text), '2026-12-03T13:05:01Z', text);
    }
  });
});
