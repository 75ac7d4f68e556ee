import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, describe, expect, it } from 'vitest'
import { DESCRIPTORS_FOR_FILES, fitToDescriptors, openFileLimit } from '../../app/descriptor-budget.ts'
import { createLogger } from '../../shared/logger.ts'

const dir = mkdtempSync(join(tmpdir(), 'pg-limits-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function limitsFile (soft: string): string {
  const path = join(dir, `limits-${soft}`)
  writeFileSync(path, [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max cpu time              unlimited            unlimited            seconds   ',
    `Max open files            ${soft.padEnd(20)} 1048576              files     `,
    'Max locked memory         8388608              8388608              bytes     ',
  ].join('\n'))
  return path
}

function capture (): { logger: ReturnType<typeof createLogger>, lines: string[] } {
  const lines: string[] = []
  return { lines, logger: createLogger({ level: 'info', destination: new Writable({ write (chunk, _e, done) { lines.push(String(chunk)); done() } }) }) }
}

describe('the open-file limit', () => {
  it('is read from this process on Linux', () => {
    expect(openFileLimit()).toBeGreaterThan(0)
  })

  it('is the soft limit of the file; none when unlimited, unreadable or absent', () => {
    expect(openFileLimit(limitsFile('20000'))).toBe(20_000)
    expect(openFileLimit(limitsFile('unlimited'))).toBeUndefined()
    expect(openFileLimit(join(dir, 'no-such-file'))).toBeUndefined()
  })
})

describe('the broker\'s connection table fitted to the descriptors', () => {
  const table = { maxConnections: 20_000, reservedConnections: 1_000, other: 'kept' }

  it('is left as configured when it fits, or when there is no limit to read, and says nothing', () => {
    const { logger, lines } = capture()
    expect(fitToDescriptors(table, 1_024, logger, 1_048_576)).toBe(table)
    expect(fitToDescriptors(table, 1_024, logger, undefined)).toBe(table)
    expect(fitToDescriptors(table, 1_024, logger, 20_000 + 1_024 + DESCRIPTORS_FOR_FILES)).toBe(table)
    expect(lines).toEqual([])
  })

  it('shrinks to what the HTTP connections and the files leave, the reserve to half of it at most, and says why', () => {
    const { logger, lines } = capture()
    expect(fitToDescriptors(table, 1_024, logger, 20_000)).toEqual({ maxConnections: 20_000 - 1_024 - DESCRIPTORS_FOR_FILES, reservedConnections: 1_000, other: 'kept' })
    expect(fitToDescriptors(table, 100, logger, 1_400)).toEqual({ maxConnections: 1_044, reservedConnections: 522, other: 'kept' })
    expect(lines).toHaveLength(2)
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, openFileLimit: 20_000, maxConnections: 18_720, configured: { maxConnections: 20_000 } })
    expect(lines[0]).toContain('ulimit -n')
  })

  it('keeps a table of 64 however low the limit: a broker that accepts nobody protects nothing', () => {
    const { logger } = capture()
    expect(fitToDescriptors(table, 1_024, logger, 1_024)).toEqual({ maxConnections: 64, reservedConnections: 32, other: 'kept' })
  })
})
