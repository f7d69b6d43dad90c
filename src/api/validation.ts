import { z } from 'zod';
import { type Decimal, parseDecimal } from '../internal/decimal.ts';
import { PayCryptError } from '../internal/errors.ts';
import { type JsonNumber, isJsonNumber } from '../internal/json.ts';

/**
 * Schema pieces shared by the dialects, and the one place that turns a
 * schema failure into `invalid_request` with the fields named.
 */

/** A JSON number (never a string), kept as its exact text and returned as a Decimal. */
export function jsonDecimal(description: string) {
  return z
    .custom<JsonNumber>((value) => isJsonNumber(value), { message: 'expected a number' })
    .transform((value, ctx): Decimal => {
      const decimal = parseDecimal(value.toString());
      if (!decimal) {
        ctx.addIssue({ code: 'custom', message: 'expected a finite decimal number' });
        return z.NEVER;
      }
      return decimal;
    })
    .meta({ type: 'number', description });
}

/**
 * A date filter in ISO 8601: a calendar date (`2025-11-21`) or a date-time
 * (`2025-11-21T12:00:00Z`; UTC when it has no offset). It names a period as
 * long as its precision: `start` is its first instant, `end` the first
 * instant after it, so `to_date=2025-11-21` covers that whole day and
 * `to_date=2025-11-21T12:00:00Z` that whole second.
 */
export const isoDateFilter = z
  .string()
  .regex(
    /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/,
    'expected an ISO 8601 date such as 2025-11-21 or 2025-11-21T12:00:00Z',
  )
  .transform((text, ctx) => {
    const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
    const calendar = new Date(Date.UTC(year, month - 1, day));
    const time = text.slice(11).replace(/(?:Z|[+-]\d{2}:?\d{2})$/, '');
    const hasZone = time.length !== text.slice(11).length;
    const start = text.length === 10 ? calendar : new Date(hasZone ? text.replace(' ', 'T') : `${text.replace(' ', 'T')}Z`);
    // Note: `Date` rolls 2025-02-30 over to March 2; comparing the parts catches it.
    if (calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day || Number.isNaN(start.getTime())) {
      ctx.addIssue({ code: 'custom', message: 'expected a valid calendar date and time' });
      return z.NEVER;
    }
    const periodMs = text.length === 10 ? 86_400_000 : time.length === 5 ? 60_000 : time.length === 8 ? 1_000 : 1;
    return { start, end: new Date(start.getTime() + periodMs) };
  })
  .meta({ type: 'string', format: 'date-time' });

/** A whole number in a query string. */
export function queryInteger(min: number, max: number) {
  return z
    .string()
    .regex(/^\d{1,9}$/, `expected a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `expected a whole number from ${min} to ${max}`).max(max, `expected a whole number from ${min} to ${max}`))
    .meta({ type: 'integer', minimum: min, maximum: max });
}

/**
 * Parses `input` with `schema`, or throws `invalid_request` whose message
 * names the first problem and whose details list every missing field
 * (`missing_fields`, as the PayCrypt docs show) and every invalid one. A path
 * parameter that does not parse is `resource_not_found` instead.
 */
export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown, where: 'body' | 'query' | 'path'): z.output<T> {
  const result = schema.safeParse(input, { error: jsonTypeError });
  if (result.success) return result.data;

  // Note: a path names a resource; a path parameter that cannot name one names
  // nothing, so it is not found (as an id of another merchant's payment is).
  if (where === 'path') {
    const issue = result.error.issues[0];
    throw new PayCryptError('resource_not_found', `Not found: invalid ${issue?.path.join('.') || 'path'} (${issue?.message})`);
  }
  if (where === 'body' && (input === null || typeof input !== 'object' || Array.isArray(input) || isJsonNumber(input))) {
    throw new PayCryptError('invalid_request', 'Request body must be a JSON object');
  }
  const missing: string[] = [];
  const invalid: Array<{ field: string; message: string }> = [];
  for (const issue of result.error.issues) {
    const field = issue.path.join('.');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) invalid.push({ field: [...issue.path, key].join('.'), message: 'unknown field' });
    } else if (valueAt(input, issue.path) === undefined) {
      missing.push(field);
    } else {
      invalid.push({ field, message: issue.message });
    }
  }
  const message =
    missing.length > 0
      ? `Missing required field${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`
      : `Invalid ${where === 'query' ? 'parameter' : 'field'} ${invalid[0]?.field}: ${invalid[0]?.message}`;
  throw new PayCryptError('invalid_request', message, {
    details: {
      ...(missing.length > 0 ? { missing_fields: missing } : {}),
      ...(invalid.length > 0 ? { invalid_fields: invalid } : {}),
    },
  });
}

/** Note: a JSON number arrives as a `JsonNumber` object; a type error names it `number`, as the client sent it. */
function jsonTypeError(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code === 'invalid_type' && isJsonNumber(issue.input)) return `Invalid input: expected ${issue.expected}, received number`;
  return undefined;
}

function valueAt(input: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = Object.hasOwn(value, key) ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  }
  return value;
}

/** A JSON integer (never a string) within bounds. */
export function jsonInteger(min: number, max: number, description: string) {
  return z
    .custom<JsonNumber>((value) => isJsonNumber(value), { message: 'expected a number' })
    .transform((value, ctx): number => {
      const text = value.toString();
      const number = Number(text);
      if (!/^-?\d+$/.test(text) || number < min || number > max) {
        ctx.addIssue({ code: 'custom', message: `expected a whole number from ${min} to ${max}` });
        return z.NEVER;
      }
      return number;
    })
    .meta({ type: 'integer', minimum: min, maximum: max, description });
}
