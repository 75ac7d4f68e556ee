import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../app/config.ts'

const dir = mkdtempSync(join(tmpdir(), 'placeguard-config-gate-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('loadConfig: the broker TLS gate limits', () => {
  it('takes the reserve and the per-address caps from the file, and names a bad one', () => {
    const file = join(dir, 'gate.yaml')
    writeFileSync(file, 'broker:\n  reservedConnections: 0\n  maxConnectionsPerAddress: 50\n  maxHandshakesPerAddress: 4\n')
    expect(loadConfig({ file, env: {} }).broker).toMatchObject({ reservedConnections: 0, maxConnectionsPerAddress: 50, maxHandshakesPerAddress: 4 })
    writeFileSync(file, 'broker:\n  maxHandshakesPerAddress: 0\n')
    expect(() => loadConfig({ file, env: {} })).toThrow(/^broker\.maxHandshakesPerAddress: /)
  })
})
