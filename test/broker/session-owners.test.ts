import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { SessionOwners } from '../../broker/session-owners.ts'

let dir: string | undefined
afterEach(() => { if (dir) rmSync(dir, { recursive: true, force: true }) })

function file (): string {
  dir = mkdtempSync(join(tmpdir(), 'placeguard-owners-'))
  return join(dir, 'session-owners.jsonl')
}

describe('SessionOwners', () => {
  it('keeps claims and releases across a reload, last change winning', () => {
    const path = file()
    const owners = new SessionOwners(path)
    owners.claim('collector', 'urn:placeguard:collector:main')
    owners.claim('flood-001', 'urn:placeguard:device:riverside:flood:flood-001')
    owners.claim('flood-001', 'urn:placeguard:device:harbour:flood:flood-001')
    owners.claim('flood-002', 'urn:placeguard:device:riverside:flood:flood-002')
    owners.release('flood-002')
    const reloaded = new SessionOwners(path)
    expect(reloaded.ownerOf('collector')).toBe('urn:placeguard:collector:main')
    expect(reloaded.ownerOf('flood-001')).toBe('urn:placeguard:device:harbour:flood:flood-001')
    expect(reloaded.ownerOf('flood-002')).toBeUndefined()
    expect(reloaded.size).toBe(2)
  })

  it('skips a line cut short by a crash and compacts the log when loaded', () => {
    const path = file()
    new SessionOwners(path).claim('collector', 'urn:placeguard:collector:main')
    appendFileSync(path, '{"id":"flood-001","own')
    const reloaded = new SessionOwners(path)
    expect(reloaded.ownerOf('collector')).toBe('urn:placeguard:collector:main')
    expect(reloaded.ownerOf('flood-001')).toBeUndefined()
    expect(readFileSync(path, 'utf8')).toBe('{"id":"collector","owner":"urn:placeguard:collector:main"}\n')
  })

  it('does not grow without bound when owners keep changing', () => {
    const path = file()
    const owners = new SessionOwners(path)
    for (let i = 0; i < 5_000; i++) owners.claim('flood-001', `urn:placeguard:device:site-${i % 2}:flood:flood-001`)
    expect(readFileSync(path, 'utf8').split('\n').length).toBeLessThan(1_100)
    expect(new SessionOwners(path).ownerOf('flood-001')).toBe('urn:placeguard:device:site-1:flood:flood-001')
  })
})
