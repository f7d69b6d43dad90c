/**
 * One error type for the whole gateway, with a closed set of stable codes.
 *
 * The core throws `PayCryptError`; each API dialect renders it in its own
 * documented envelope. The HTTP status of every code lives here and nowhere
 * else, so a code always means the same status whatever the dialect.
 */
export const errorStatus = {
  invalid_request: 400,
  authentication_failed: 401,
  resource_not_found: 404,
  invalid_state_transition: 409,
  idempotency_conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limit_exceeded: 429,
  internal_error: 500,
  service_unavailable: 503,
} as const;

export type ErrorCode = keyof typeof errorStatus;

export type ErrorDetails = Record<string, unknown>;

export class PayCryptError extends Error {
  override name = 'PayCryptError';
  readonly code: ErrorCode;
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message: string, options: { details?: ErrorDetails; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }

  get status(): number {
    return errorStatus[this.code];
  }
}

export function isPayCryptError(error: unknown): error is PayCryptError {
  return error instanceof PayCryptError;
}
