import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadPolicyDirectory, POLICY_IDS, POLICY_THREATS } from '../../policies/index.ts'
import { PlaceGuardError } from '../../shared/errors.ts'

const shipped = join(import.meta.dirname, '..', '..', 'policies')
const dir = mkdtempSync(join(tmpdir(), 'placeguard-policies-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function errorFor (files: Record<string, string>): PlaceGuardError {
  const sub = mkdtempSync(join(dir, 'case-'))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(sub, name), text)
  try {
    loadPolicyDirectory(sub)
  } catch (error) {
    expect(error).toBeInstanceOf(PlaceGuardError)
    expect((error as PlaceGuardError).code).toBe('PG_ERR_POLICY_INVALID')
    return error as PlaceGuardError
  }
  throw new Error('expected the directory to be refused')
}

describe('policy files', () => {
  it('ship a default for every policy id, each with its threat', () => {
    const loaded = loadPolicyDirectory(shipped)
    expect(loaded.map((l) => l.policy.id).sort()).toEqual([...POLICY_IDS].sort())
    for (const id of POLICY_IDS) expect(POLICY_THREATS[id].summary.length).toBeGreaterThan(10)
    const expiry = loaded.find((l) => l.policy.id === 'cert-expiry')!.policy
    expect(expiry).toMatchObject({ enabled: true, params: { warnDays: 30, criticalDays: 7 } })
    const skew = loaded.find((l) => l.policy.id === 'clock-skew')!.policy
    expect(skew.params).toEqual({ maxSkew: 300_000 })
  })

  it('fill in default parameters and leave responses off unless configured', () => {
    const sub = mkdtempSync(join(dir, 'defaults-'))
    writeFileSync(join(sub, 'a.yaml'), 'policies:\n  - { id: replay, severity: high }\n  - { id: connection-flapping, severity: low, response: { quarantine: { duration: 15m } } }\n')
    const [replay, flapping] = loadPolicyDirectory(sub).map((l) => l.policy)
    expect(replay).toMatchObject({ id: 'replay', enabled: true, params: {} })
    expect(replay!.response).toBeUndefined()
    expect(flapping).toMatchObject({ params: { connects: 5, window: 300_000 }, response: { quarantine: { duration: 900_000 } } })
  })

  it.each([
    ['an unknown policy id', { 'a.yaml': 'policies:\n  - id: teleport\n    severity: high\n' }, /a\.yaml:2: policies\.0\.id: Invalid discriminator value/],
    ['a bad severity', { 'a.yaml': 'policies:\n  - id: replay\n    severity: urgent\n' }, /a\.yaml:3: policies\.0\.severity/],
    ['a bad version', { 'a.yaml': 'policies:\n  - id: firmware-outdated\n    severity: low\n    params:\n      minimum: { flood: three }\n' }, /a\.yaml:5: policies\.0\.params\.minimum\.flood: must be a semantic version/],
    ['a bad semver range', { 'a.yaml': 'policies:\n  - id: firmware-vulnerable\n    severity: low\n    params:\n      denylist: [{ range: "<<1", advisory: X }]\n' }, /policies\.0\.params\.denylist\.0\.range: must be a semver range/],
    ['a misspelt parameter', { 'a.yaml': 'policies:\n  - id: cert-expiry\n    severity: low\n    params: { warnDay: 3 }\n' }, /policies\.0\.params/],
    ['not YAML', { 'a.yaml': 'policies: [\n' }, /a\.yaml:\d+: is not valid YAML/],
    ['the same id in two files', { 'a.yaml': 'policies:\n  - { id: replay, severity: high }\n', 'b.yaml': 'policies:\n  - { id: replay, severity: low }\n' }, /b\.yaml: policies\.0\.id: "replay" is already configured in .*a\.yaml/],
  ])('refuse %s, naming the file, line and field', (_what, files, message) => {
    expect(errorFor(files).message).toMatch(message)
  })
})
