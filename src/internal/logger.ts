import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs on stderr (stdout is kept for commands' output).
 * Credentials are redacted wherever they might appear.
 */
export function createLogger(options: { level: string; destination?: NodeJS.WritableStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'paycrypt' },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers["x-paycrypt-signature"]',
          'req.headers["x-api-key"]',
          '*.api_key',
          '*.api_secret',
          '*.secret',
          '*.password',
        ],
        censor: '[redacted]',
      },
    },
    (options.destination ?? pino.destination(2)) as pino.DestinationStream,
  );
}
