import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { floorDiv, formatUnits, parseDecimal, toBaseUnits } from './decimal.ts';

describe('decimal', () => {
  it('parses decimal text exactly, including forms a float would round', () => {
    assert.deepEqual(parseDecimal('100.00'), { units: 10000n, scale: 2 });
    assert.deepEqual(parseDecimal('0.1'), { units: 1n, scale: 1 });
    assert.deepEqual(parseDecimal('1e2'), { units: 100n, scale: 0 });
    assert.deepEqual(parseDecimal('1.5E-3'), { units: 15n, scale: 4 });
    assert.deepEqual(parseDecimal('-2.5'), { units: -25n, scale: 1 });
    const big = parseDecimal('123456789012345678901234567890.123456789')!;
    assert.equal(formatUnits(big.units, big.scale), '123456789012345678901234567890.123456789');
  });

  it('refuses text that is not a finite decimal', () => {
    for (const text of ['', 'abc', '1.', '.5', 'NaN', 'Infinity', '1e999', '0x10', '1,5', '--1']) {
      assert.equal(parseDecimal(text), undefined, text);
    }
  });

  it('converts to base units and refuses over-precise values', () => {
    assert.deepEqual(toBaseUnits(parseDecimal('100.5')!, 2), { ok: true, units: 10050n });
    assert.deepEqual(toBaseUnits(parseDecimal('100.500000')!, 2), { ok: true, units: 10050n });
    assert.deepEqual(toBaseUnits(parseDecimal('100.001')!, 2), { ok: false, reason: 'too_precise' });
    assert.deepEqual(toBaseUnits(parseDecimal('1e-8')!, 8), { ok: true, units: 1n });
  });

  it('formats base units with padding for fiat and trimming for crypto', () => {
    assert.equal(formatUnits(10000n, 2, 2), '100.00');
    assert.equal(formatUnits(99_500000n, 6), '99.5');
    assert.equal(formatUnits(5n, 8), '0.00000005');
    assert.equal(formatUnits(0n, 6), '0');
    assert.equal(formatUnits(-150n, 2, 2), '-1.50');
  });

  it('floors division toward negative infinity', () => {
    assert.equal(floorDiv(7n, 2n), 3n);
    assert.equal(floorDiv(-7n, 2n), -4n);
    assert.equal(floorDiv(6n, 3n), 2n);
  });
});
