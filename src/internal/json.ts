import { isLosslessNumber, LosslessNumber, parse, stringify } from 'lossless-json';

/**
 * JSON at the API edges, without floats.
 *
 * @dev Request bodies are parsed with every number kept as its own text
 * (`LosslessNumber`), so `100.10` reaches the money code as "100.10", never as
 * a binary float. Responses render `JsonNumber` values as their exact text.
 */
export { LosslessNumber as JsonNumber, isLosslessNumber as isJsonNumber };

/** A JSON number whose text is exactly `text` (a decimal string). */
export function jsonNumber(text: string): LosslessNumber {
  return new LosslessNumber(text);
}

export function parseJson(text: string): unknown {
  return parse(text);
}

export function stringifyJson(value: unknown): string {
  // Note: lossless-json renders bigint and LosslessNumber as bare numbers.
  const text = stringify(value);
  if (text === undefined) throw new TypeError('value is not serializable to JSON');
  return text;
}
