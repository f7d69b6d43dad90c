import pg from 'pg';

export const TIMESTAMPTZ_OID = 1184;

const defaultParser = pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (text: string) => Date | number | null;

/**
 * Reads a `timestamptz` as PostgreSQL prints it with `DateStyle` ISO, the
 * default (`2026-12-07 01:30:10.123456+00`, an offset of `+05:30` or
 * `+00:53:28` in some time zones), to the millisecond it names; anything else
 * (another DateStyle, `infinity`, a year before 100 or after 9999, BC) goes
 * to the `pg` driver's own parser.
 *
 * @dev `pg`'s parser runs three regular expressions and a `parseFloat` per
 * value. A settled block reads four timestamps for each of its thousands of
 * payments (20,000 for a block of 5,000): this parser takes about a third of
 * the time (2.6–3.3 against 9.3–10.7 ms for 20,000 in a warm loop here). It
 * gives the same instant as `pg`'s for every value (timestamps.test.ts
 * checks both against the server's own epoch in six time zones).
 */
export function parseTimestamptz(text: string): Date | number | null {
  const length = text.length;
  // Note: the shortest ISO form is `YYYY-MM-DD HH:MM:SS+HH`.
  if (length < 22 || text.charCodeAt(4) !== 45 || text.charCodeAt(7) !== 45 || text.charCodeAt(10) !== 32 || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58) {
    return defaultParser(text);
  }
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 2);
  const day = digits(text, 8, 2);
  const hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2);
  const second = digits(text, 17, 2);
  if (year < 100 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return defaultParser(text);

  let index = 19;
  let millisecond = 0;
  if (text.charCodeAt(index) === 46) {
    index += 1;
    const start = index;
    while (index < length && isDigit(text.charCodeAt(index))) index += 1;
    if (index === start) return defaultParser(text);
    // Note: the first three digits are the milliseconds; what follows them is below a Date's precision.
    for (let position = start; position < start + 3; position++) millisecond = millisecond * 10 + (position < index ? text.charCodeAt(position) - 48 : 0);
  }

  const sign = text.charCodeAt(index);
  if (sign !== 43 && sign !== 45) return defaultParser(text);
  // Note: the offset is `+HH`, `+HH:MM` or `+HH:MM:SS`.
  let offsetSeconds = 0;
  let position = index + 1;
  for (const unit of offsetUnits) {
    const value = digits(text, position, 2);
    if (value < 0) return defaultParser(text);
    offsetSeconds += value * unit;
    position += 2;
    if (position === length) break;
    if (text.charCodeAt(position) !== 58 || unit === 1) return defaultParser(text);
    position += 1;
  }
  if (position !== length) return defaultParser(text);
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, millisecond);
  return new Date(utc - (sign === 43 ? 1 : -1) * offsetSeconds * 1000);
}

/** Seconds in an offset's hours, minutes and seconds. */
const offsetUnits = [3600, 60, 1] as const;

/** The number written by `count` decimal digits at `start`; -1 when one of them is not a digit. */
function digits(text: string, start: number, count: number): number {
  let value = 0;
  for (let position = start; position < start + count; position++) {
    const code = text.charCodeAt(position);
    if (!isDigit(code)) return -1;
    value = value * 10 + (code - 48);
  }
  return value;
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}
