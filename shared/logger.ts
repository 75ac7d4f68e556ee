import { pino, type Logger } from 'pino'

export type { Logger }

/**
 * The process logger: JSON lines (pino). Libraries in broker/ and collector/
 * take a logger and never print. Secrets are redacted by key wherever they
 * appear; device-supplied strings go inside a nested object (`event`,
 * `reported`), never as top-level keys.
 */
export function createLogger (options: { level?: string, name?: string, destination?: pino.DestinationStream, pretty?: boolean } = {}): Logger {
  // pino-pretty for a person at a terminal; JSON lines for everything else (log shippers, tests).
  const destination = options.destination ?? (options.pretty
    ? pino.transport({ target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' } }) as pino.DestinationStream
    : undefined)
  return pino({
    name: options.name ?? 'placeguard',
    level: options.level ?? 'info',
    redact: {
      paths: [
        'password', 'token', 'secret', 'secrets', 'routingKey', 'privateKey',
        '*.password', '*.token', '*.secret', '*.secrets', '*.routingKey', '*.privateKey', '*.authorization', 'headers.authorization',
        // A Slack or Teams webhook URL is itself a credential.
        'url', '*.url', 'delivery.sinks[*].url', 'delivery.sinks[*].secrets', 'delivery.sinks[*].routingKey',
      ],
      censor: '[redacted]',
    },
  }, destination)
}
