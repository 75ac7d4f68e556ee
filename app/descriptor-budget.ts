/**
 * The broker's connection table sized to the file descriptors the process
 * may open. Every connection, MQTT or HTTP, is a descriptor, and so is every
 * file the stores open: with `broker.maxConnections` at its default of
 * 20,000 and an open-file limit of 20,000 (this machine's), unauthenticated
 * peers could fill the table past what the process can hold, and then the
 * broker's own accept fails (EMFILE) before the TLS gate ever evicts one of
 * them: devices locked out by peers that never authenticated. Sized here,
 * the gate's limit is reached first and its eviction does its work.
 */
import { readFileSync } from 'node:fs'
import type { Logger } from '../shared/logger.ts'

/** Descriptors kept for everything but connections: the SQLite files and their WALs, logs, outbound sockets to stores and SOC sinks. */
export const DESCRIPTORS_FOR_FILES = 256

/** This process's soft limit on open files (RLIMIT_NOFILE), from /proc; undefined where there is none to read, or no limit. */
export function openFileLimit (limitsFile = '/proc/self/limits'): number | undefined {
  let text: string
  try {
    text = readFileSync(limitsFile, 'utf8')
  } catch {
    return undefined
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1]
  const value = soft === undefined ? NaN : Number(soft)
  return Number.isInteger(value) && value > 0 ? value : undefined
}

export interface ConnectionTable { maxConnections: number, reservedConnections: number }

/**
 * The broker's table, shrunk if it does not fit the descriptors left once
 * the HTTP API's connections (`httpConnections`) and the files are counted;
 * as configured otherwise. The reserve for authenticated sessions shrinks
 * with it, to half the table at most. `limit`: openFileLimit(), or none.
 */
export function fitToDescriptors<T extends ConnectionTable> (table: T, httpConnections: number, logger: Logger, limit: number | undefined): T {
  if (limit === undefined) return table
  const budget = limit - httpConnections - DESCRIPTORS_FOR_FILES
  if (table.maxConnections <= budget) return table
  const maxConnections = Math.max(budget, 64)
  const reservedConnections = Math.min(table.reservedConnections, Math.floor(maxConnections / 2))
  logger.warn({ openFileLimit: limit, configured: { maxConnections: table.maxConnections, reservedConnections: table.reservedConnections }, maxConnections, reservedConnections, httpMaxConnections: httpConnections },
    'broker.maxConnections lowered to fit the open-file limit (past it the broker could not accept, and unauthenticated peers would lock devices out); to keep it, raise the limit (ulimit -n, systemd LimitNOFILE, docker --ulimit nofile)')
  return { ...table, maxConnections, reservedConnections }
}
