import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { isOpen, MAINTENANCE_POLICIES, quietWindowFor } from '../../policies/quiet-windows.ts'
import { loadPolicySet, PolicyEngine, type QuietWindow } from '../../policies/index.ts'

const dir = mkdtempSync(join(tmpdir(), 'placeguard-quiet-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function load (yaml: string): QuietWindow[] {
  const sub = mkdtempSync(join(dir, 'case-'))
  writeFileSync(join(sub, 'windows.yaml'), yaml)
  return loadPolicySet(sub).windows
}

function refusal (yaml: string): string {
  try {
    load(yaml)
  } catch (error) {
    return (error as Error).message
  }
  throw new Error('expected the file to be refused')
}

const weekly = (start: string, duration: string, days = '[tue]', zone = 'Europe/London') =>
  load(`maintenance:\n  - reason: firmware push\n    sites: [northgate]\n    weekly: { days: ${days}, start: "${start}", duration: ${duration}, timeZone: ${zone} }\n`)[0]!

describe('maintenance windows', () => {
  it('weekly: open at local wall-clock time, across daylight saving', () => {
    const window = weekly('02:00', '2h')
    // Tuesday 2026-07-07, BST (UTC+1): 02:00 local is 01:00 UTC.
    expect(isOpen(window, Date.parse('2026-07-07T00:59:00Z'))).toBe(false)
    expect(isOpen(window, Date.parse('2026-07-07T01:00:00Z'))).toBe(true)
    expect(isOpen(window, Date.parse('2026-07-07T02:59:00Z'))).toBe(true)
    expect(isOpen(window, Date.parse('2026-07-07T03:00:00Z'))).toBe(false)
    // Tuesday 2026-12-01, GMT: 02:00 local is 02:00 UTC.
    expect(isOpen(window, Date.parse('2026-12-01T01:30:00Z'))).toBe(false)
    expect(isOpen(window, Date.parse('2026-12-01T02:00:00Z'))).toBe(true)
    // Wednesday at the same hour: not a maintenance day.
    expect(isOpen(window, Date.parse('2026-12-02T02:30:00Z'))).toBe(false)
  })

  it('weekly: runs on past midnight, and from Sunday into Monday', () => {
    const window = weekly('23:00', '3h', '[sun]', 'UTC')
    expect(isOpen(window, Date.parse('2026-11-22T23:30:00Z'))).toBe(true) // Sunday
    expect(isOpen(window, Date.parse('2026-11-23T01:59:00Z'))).toBe(true) // Monday
    expect(isOpen(window, Date.parse('2026-11-23T02:00:00Z'))).toBe(false)
    expect(isOpen(window, Date.parse('2026-11-21T23:30:00Z'))).toBe(false) // Saturday
  })

  it('quiets the noise maintenance makes, in its scope only; security findings still alert', () => {
    const [window] = load('maintenance:\n  - { reason: pump works, sites: [riverside], from: "2026-12-01T08:00:00Z", until: "2026-12-01T17:00:00Z" }\n')
    const at = Date.parse('2026-12-01T12:00:00Z')
    expect(window!.policies).toEqual(MAINTENANCE_POLICIES)
    const subject = (policy: 'device-silent' | 'identity-clone', site = 'riverside') => ({ policy, deviceId: 'flood-1', site, kind: 'flood' })
    expect(quietWindowFor([window!], subject('device-silent'), at)).toBe(window)
    expect(quietWindowFor([window!], subject('identity-clone'), at)).toBeUndefined()
    expect(quietWindowFor([window!], subject('device-silent', 'harbour'), at)).toBeUndefined()
    expect(quietWindowFor([window!], subject('device-silent'), Date.parse('2026-12-01T17:00:00Z'))).toBeUndefined()
    expect(quietWindowFor([window!], subject('device-silent'), Date.parse('2026-12-01T07:59:59Z'))).toBeUndefined()
  })
})

describe('suppressions', () => {
  it('quiet the named policies for the named devices until they expire', () => {
    const [window] = load('suppressions:\n  - { reason: "gauge awaiting replacement, ticket 4411", devices: [flood-7], policies: [value-implausible], until: "2027-01-01T00:00:00Z" }\n')
    const now = Date.parse('2026-12-24T00:00:00Z')
    expect(quietWindowFor([window!], { policy: 'value-implausible', deviceId: 'flood-7' }, now)).toBe(window)
    expect(quietWindowFor([window!], { policy: 'value-implausible', deviceId: 'flood-8' }, now)).toBeUndefined()
    expect(quietWindowFor([window!], { policy: 'device-silent', deviceId: 'flood-7' }, now)).toBeUndefined()
    expect(quietWindowFor([window!], { policy: 'value-implausible', deviceId: 'flood-7' }, Date.parse('2027-01-01T00:00:00Z'))).toBeUndefined()
  })

  it('in the engine: quieted findings are set aside, not lost, and clears still pass', () => {
    const windows = load('suppressions:\n  - { reason: known skew, devices: [flood-1], policies: [clock-skew], until: "2099-01-01T00:00:00Z" }\n')
    const engine = new PolicyEngine([{ id: 'clock-skew', enabled: true, severity: 'low', params: { maxSkew: 60_000 } }], { now: () => 0 }, windows)
    const skewed = (deviceId: string) => engine.onTelemetry({ deviceId, kind: 'flood', site: 'a', ts: 3_600_000, seq: 1, fw: '1.0.0', readings: {}, receivedAtMs: 0 })
    const quieted = skewed('flood-1')
    expect(quieted.findings).toEqual([])
    expect(quieted.quieted).toEqual([expect.objectContaining({ finding: expect.objectContaining({ policy: 'clock-skew', deviceId: 'flood-1' }), window: windows[0] })])
    expect(skewed('flood-2').findings.map((f) => f.policy)).toEqual(['clock-skew'])
  })
})

describe('window files', () => {
  it.each([
    ['a suppression that never ends', 'suppressions:\n  - { reason: x, devices: [flood-1], policies: [replay] }\n', /windows\.yaml:2: suppressions\.0\.until/],
    ['a suppression with no scope', 'suppressions:\n  - { reason: x, policies: [replay], until: "2027-01-01T00:00:00Z" }\n', /suppressions\.0: give sites, kinds or devices/],
    ['a fleet-wide maintenance window', 'maintenance:\n  - { reason: x, from: "2027-01-01T00:00:00Z", until: "2027-01-02T00:00:00Z" }\n', /maintenance\.0: give sites, kinds or devices/],
    ['maintenance with neither dates nor weekly', 'maintenance:\n  - { reason: x, sites: [a] }\n', /give either from and until, or weekly/],
    ['an end before the start', 'maintenance:\n  - { reason: x, sites: [a], from: "2027-01-02T00:00:00Z", until: "2027-01-01T00:00:00Z" }\n', /maintenance\.0\.until: from must be before until/],
    ['a bad time zone', 'maintenance:\n  - { reason: x, sites: [a], weekly: { days: [mon], start: "02:00", duration: 1h, timeZone: Mars/Olympus } }\n', /weekly\.timeZone: must be an IANA time zone/],
    ['a bad time of day', 'maintenance:\n  - { reason: x, sites: [a], weekly: { days: [mon], start: "25:00", duration: 1h } }\n', /weekly\.start: must be a time of day/],
    ['an unknown policy', 'suppressions:\n  - { reason: x, sites: [a], policies: [teleport], until: "2027-01-01T00:00:00Z" }\n', /suppressions\.0\.policies\.0/],
    ['no reason', 'suppressions:\n  - { sites: [a], policies: [replay], until: "2027-01-01T00:00:00Z" }\n', /suppressions\.0\.reason/],
  ])('refuse %s, naming file, line and field', (_case, yaml, message) => {
    expect(refusal(yaml)).toMatch(message)
  })
})
