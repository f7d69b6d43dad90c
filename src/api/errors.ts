import type { FastifyBaseLogger } from 'fastify';
import { PayCryptError, isPayCryptError } from '../internal/errors.ts';

/** Connection-level failures that mean the database is out of reach, not that the request was wrong. */
const unavailableErrnos = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);
/** PostgreSQL SQLSTATE classes 08 (connection), 57P (shutdown) and 53 (resources). */
const unavailableSqlState = /^(08|57P|53)/;
/** What `pg`, PGlite and Kysely say when the connection or the storage is gone (closed storage: shutting down). */
const unavailableMessages = ['Connection terminated', 'is not queryable', 'PGlite is closed', 'driver has already been destroyed'];

/**
 * Turns anything thrown while serving a request into a PayCryptError: the
 * framework's own errors keep their meaning, the database being down is a 503,
 * and everything else is an `internal_error` whose cause is logged, not shown.
 */
export function toPayCryptError(error: unknown, log?: FastifyBaseLogger): PayCryptError {
  if (isPayCryptError(error)) return error;
  const candidate = error as { code?: string; statusCode?: number; message?: string } | undefined;
  switch (candidate?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PayCryptError('payload_too_large', 'Request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new PayCryptError('unsupported_media_type', 'Content-Type must be application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new PayCryptError('invalid_request', 'Request body must be a JSON object');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new PayCryptError('invalid_request', 'Content-Length does not match the body');
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_ASYNC_CONSTRAINT':
      return new PayCryptError('invalid_request', 'Malformed request URL');
  }
  if (candidate instanceof SyntaxError) return new PayCryptError('invalid_request', `Malformed JSON: ${candidate.message}`);
  if (candidate?.code && (unavailableErrnos.has(candidate.code) || unavailableSqlState.test(candidate.code))) {
    log?.error({ err: error }, 'database unavailable');
    return new PayCryptError('service_unavailable', 'The service is temporarily unavailable; retry later', { cause: error });
  }
  // Note: a transaction whose connection died fails on its rollback with
  // "Client has encountered a connection error and is not queryable".
  if (unavailableMessages.some((text) => candidate?.message?.includes(text))) {
    log?.error({ err: error }, 'database unavailable');
    return new PayCryptError('service_unavailable', 'The service is temporarily unavailable; retry later', { cause: error });
  }
  log?.error({ err: error }, 'unhandled error');
  return new PayCryptError('internal_error', 'Internal server error', { cause: error });
}
