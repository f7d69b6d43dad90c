import type { FastifyReply, FastifyRequest } from 'fastify';
import { toPayCryptError } from '../errors.ts';

/**
 * The PayCrypt v1 error envelope:
 * `{"error": {"code": "invalid_request", "message": "…", "details": {…}}}`.
 */
export function sendPayCryptError(error: unknown, request: FastifyRequest, reply: FastifyReply) {
  const failure = toPayCryptError(error, request.log);
  return reply
    .code(failure.status)
    .type('application/json; charset=utf-8')
    .send({ error: { code: failure.code, message: failure.message, ...(failure.details ? { details: failure.details } : {}) } });
}
