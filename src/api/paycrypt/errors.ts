import type { FastifyReply, FastifyRequest } from 'fastify';
import { toPayCryptError } from '../errors.ts';

/**
 * The PayCrypt v1 error envelope:
 * `{"error": {"code": "invalid_request", "message": "…", "details": {…}}}`.
 */
export function sendPayCryptError(error: unknown, request: FastifyRequest, reply: FastifyReply) {
  const failure = toPayCryptError(error, request.log);
  const details = renderDetails(failure.details, failure.message);
  return reply
    .code(failure.status)
    .type('application/json; charset=utf-8')
    .send({ error: { code: failure.code, message: failure.message, ...(details ? { details } : {}) } });
}

/**
 * The core names the one field a rule refused as `details.field`; this API
 * lists refused fields as `details.invalid_fields: [{field, message}]`,
 * whether a schema or a rule refused them, so clients read one shape.
 */
function renderDetails(details: Record<string, unknown> | undefined, message: string): Record<string, unknown> | undefined {
  if (!details || typeof details.field !== 'string') return details;
  const { field, ...rest } = details;
  return { ...rest, invalid_fields: [{ field, message }] };
}
