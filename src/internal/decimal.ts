/**
 * Exact decimal arithmetic on bigint base units.
 *
 * @dev No float ever touches money: amounts arrive as decimal text (a JSON
 * number's own characters, or a string), become bigint base units here, and
 * leave as decimal text again.
 */

const decimalPattern = /^(-)?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/** A decimal number as an exact fraction: `units / 10^scale`. */
export type Decimal = { units: bigint; scale: number };

/** Parses decimal text (`"100"`, `"99.50"`, `"1e2"`) exactly. Returns undefined when it is not a finite decimal. */
export function parseDecimal(text: string): Decimal | undefined {
  const match = decimalPattern.exec(text.trim());
  if (!match) return undefined;
  const [, sign, whole, fraction = '', exponentText = '0'] = match;
  const exponent = Number(exponentText);
  // Note: an exponent this large is never a real amount; refusing it keeps
  // `10n ** scale` from allocating a huge number on hostile input.
  if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > 100) return undefined;
  let units = BigInt(`${whole}${fraction}`);
  let scale = fraction.length - exponent;
  if (scale < 0) {
    units *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { units: sign ? -units : units, scale };
}

/** Drops trailing zeros of the fraction: `{units: 9950n, scale: 2}` becomes `{995n, 1}`. */
export function normalizeDecimal(value: Decimal): Decimal {
  let { units, scale } = value;
  while (scale > 0 && units % 10n === 0n) {
    units /= 10n;
    scale -= 1;
  }
  return { units, scale };
}

export type ToBaseUnitsResult =
  | { ok: true; units: bigint }
  | { ok: false; reason: 'too_precise' };

/** Converts a decimal to base units with `decimals` places, refusing values that need more places. */
export function toBaseUnits(value: Decimal, decimals: number): ToBaseUnitsResult {
  const normalized = normalizeDecimal(value);
  if (normalized.scale > decimals) return { ok: false, reason: 'too_precise' };
  return { ok: true, units: normalized.units * 10n ** BigInt(decimals - normalized.scale) };
}

/**
 * Renders base units as decimal text.
 * `minFractionDigits` pads (fiat `100.00`); beyond it trailing zeros are trimmed (crypto `99.5`).
 */
export function formatUnits(units: bigint, decimals: number, minFractionDigits = 0): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(decimals + 1, '0');
  const whole = digits.slice(0, digits.length - decimals);
  let fraction = digits.slice(digits.length - decimals);
  let end = fraction.length;
  while (end > minFractionDigits && fraction[end - 1] === '0') end -= 1;
  fraction = fraction.slice(0, end);
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** Renders a decimal as plain text without exponent, trailing zeros trimmed. */
export function formatDecimal(value: Decimal): string {
  const normalized = normalizeDecimal(value);
  return formatUnits(normalized.units, normalized.scale);
}

/** Integer division rounding toward negative infinity (bigint `/` truncates toward zero). */
export function floorDiv(numerator: bigint, denominator: bigint): bigint {
  const quotient = numerator / denominator;
  const remainder = numerator % denominator;
  return remainder !== 0n && (remainder < 0n) !== (denominator < 0n) ? quotient - 1n : quotient;
}
