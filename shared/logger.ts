import { pino, type Logger } from 'pino'

export type { Logger }

/** Log bytes held for stdout while it is slow; beyond it, lines are dropped and counted. */
export const LOG_BUFFER_BYTES = 4 * 1024 * 1024
/** Longest the exit-time flush waits on a stdout nobody reads. */
const EXIT_FLUSH_MS = 1_000

let dropped = 0
/** Bytes handed to stdout and not yet taken by it, and since when stdout has taken nothing while some wait. */
let waitingBytes = 0
let stuckSinceMs: number | undefined

/** Log lines dropped because stdout could not keep up (`placeguard_log_dropped_total`). */
export function logLinesDropped (): number {
  return dropped
}

/** How long stdout has taken none of the log lines waiting for it (0 when it keeps up). */
export function logOutputStalledMs (nowMs = Date.now()): number {
  return waitingBytes > 0 && stuckSinceMs !== undefined ? nowMs - stuckSinceMs : 0
}

/**
 * stdout, written asynchronously through a bounded buffer. Logging must
 * never stop the pipeline: pino's default synchronous destination spins on
 * EAGAIN when stdout is a pipe nobody drains (a stuck log shipper), which
 * stops the event loop and makes every device look silent. Here a slow
 * stdout costs log lines — counted — never time (STYLE.md habit 5).
 */
function boundedStdout (): pino.DestinationStream {
  let flushDeadline = 0
  const stream = pino.destination({
    dest: 1, sync: false, minLength: 0, maxLength: LOG_BUFFER_BYTES,
    // Asynchronous retries wait on a timer; only the exit-time flush is synchronous, and it gives up in time.
    retryEAGAIN: () => flushDeadline === 0 || Date.now() < flushDeadline,
  })
  stream.on('drop', () => { dropped++ })
  const write = stream.write.bind(stream)
  stream.write = (line: string) => {
    const bytes = Buffer.byteLength(line)
    const before = dropped
    const result = write(line)
    if (dropped === before) {
      if (waitingBytes === 0) stuckSinceMs = Date.now()
      waitingBytes += bytes
    }
    return result
  }
  stream.on('write', (bytes: number) => {
    waitingBytes = Math.max(0, waitingBytes - bytes)
    stuckSinceMs = Date.now() // progress: stuck, if at all, only from now
  })
  const flushSync = stream.flushSync.bind(stream)
  stream.flushSync = () => {
    flushDeadline = Date.now() + EXIT_FLUSH_MS
    try {
      flushSync()
    } catch {
      dropped++ // at least one line, of those still buffered, never left
    } finally {
      flushDeadline = 0
    }
  }
  return stream
}

/**
 * The process logger: JSON lines (pino). Libraries in broker/ and collector/
 * take a logger and never print. Secrets are redacted by key wherever they
 * appear; device-supplied strings go inside a nested object (`event`,
 * `reported`), never as top-level keys.
 */
export function createLogger (options: { level?: string, name?: string, destination?: pino.DestinationStream, pretty?: boolean, file?: string } = {}): Logger {
  // pino-pretty for a person at a terminal; JSON lines for everything else (log shippers, tests);
  // JSON lines to a file when the terminal shows something else (`up`'s live view).
  const level = options.level ?? 'info'
  const destination = options.destination ?? (options.file ? pino.destination({ dest: options.file, sync: false, mkdir: true }) : options.pretty
    ? pino.transport({ target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' } }) as pino.DestinationStream
    : level === 'silent' ? undefined : boundedStdout())
  return pino({
    name: options.name ?? 'placeguard',
    level,
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
