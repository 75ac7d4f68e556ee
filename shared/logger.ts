import { pino, type Logger } from 'pino'

export type { Logger }

/**
 * The process logger: JSON lines (pino). Libraries in broker/ and collector/
 * take a logger and never print. Secrets are redacted by key wherever they
 * appear; device-supplied strings go inside a nested object (`event`,
 * `reported`), never as top-level keys.
 */
export function createLogger (options: { level?: string, name?: string, destination?: pino.DestinationStream } = {}): Logger {
  return pino({
    name: options.name ?? 'placeguard',
    level: options.level ?? 'info',
    redact: {
      paths: ['password', 'token', 'secret', 'privateKey', '*.password', '*.token', '*.secret', '*.privateKey', '*.authorization', 'headers.authorization'],
      censor: '[redacted]',
    },
  }, options.destination)
}
