import type { FastifyRequest } from 'fastify';
import { PayCryptError } from '../../internal/errors.ts';
import type { ApiContext } from '../context.ts';

/**
 * `Authorization: Bearer <api_key>`: finds the key's merchant or refuses.
 * Unknown, malformed and revoked keys get the same answer, so the response
 * tells an attacker nothing about which keys exist.
 */
export async function authenticateBearer(context: ApiContext, request: FastifyRequest): Promise<void> {
  const header = request.headers.authorization;
  if (!header) throw new PayCryptError('authentication_failed', 'Missing API key: send the header Authorization: Bearer YOUR_API_KEY');
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new PayCryptError('authentication_failed', 'Malformed Authorization header: expected Bearer YOUR_API_KEY');
  const owner = await context.authenticator.authenticate(match[1]!);
  if (!owner) throw new PayCryptError('authentication_failed', 'Invalid API key');
  request.auth = owner;
}
