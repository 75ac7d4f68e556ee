import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { DEFAULT_MIX, loadScenario, planFleet, planInjections } from '../../agent-sim/index.ts'
import { PlaceGuardError } from '../../shared/errors.ts'

const dir = mkdtempSync(join(tmpdir(), 'placeguard-scenario-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function scenarioFile (name: string, text: string): string {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

function errorOf (work: () => unknown): PlaceGuardError {
  try {
    work()
  } catch (error) {
    expect(error).toBeInstanceOf(PlaceGuardError)
    return error as PlaceGuardError
  }
  throw new Error('expected an error')
}

describe('scenario files', () => {
  it('load the shipped examples', () => {
    const attack = loadScenario(join(import.meta.dirname, '..', '..', 'agent-sim', 'scenarios', 'attack-mix.yaml'))
    expect(new Set(attack.incidents.map((i) => i.policy)).size).toBe(15)
    expect(loadScenario(join(import.meta.dirname, '..', '..', 'agent-sim', 'scenarios', 'clean.yaml')).incidents).toEqual([])
  })

  it.each([
    ['unknown policy', 'name: x\nincidents:\n  - policy: teleport\n    select: { count: 1 }\n', /incidents\.0\.policy/, 3],
    ['bad duration', 'name: x\nincidents:\n  - policy: rate-burst\n    select: { count: 1 }\n    duration: soon\n', /incidents\.0\.duration: "soon" is not a duration/, 5],
    ['bad version', 'name: x\nincidents:\n  - policy: firmware-outdated\n    select: { count: 1 }\n    fw: old\n', /incidents\.0\.fw: must be a version/, 5],
    ['no selection', 'name: x\nincidents:\n  - policy: replay\n    select: {}\n', /incidents\.0\.select: give ids, count or fraction/, 4],
    ['unknown key', 'name: x\nincidents:\n  - policy: replay\n    select: { count: 1 }\n    cuont: 2\n', /incidents\.0/, 3],
    ['missing name', 'incidents: []\n', /name: Invalid input/, 1],
    ['not YAML', 'name: [unclosed\n', /is not valid YAML/, 2],
  ])('rejects %s, naming the file, line and field', (_what, text, message, line) => {
    const file = scenarioFile(`${_what.replace(/ /g, '-')}.yaml`, text)
    const error = errorOf(() => loadScenario(file))
    expect(error.code).toBe('PG_ERR_SCENARIO_INVALID')
    expect(error.message).toContain(`scenario ${file}${line ? `:${line}` : ''}: `)
    expect(error.message).toMatch(message)
  })

  it('rejects a missing file', () => {
    expect(errorOf(() => loadScenario(join(dir, 'nope.yaml'))).message).toMatch(/cannot be read/)
  })
})

describe('planInjections', () => {
  const fleet = planFleet(30, DEFAULT_MIX, ['a', 'b'], 5)
  const scenario = loadScenario(scenarioFile('plan.yaml', [
    'name: plan',
    'incidents:',
    '  - { policy: replay, select: { kind: flood, count: 3 } }',
    '  - { policy: clock-skew, select: { kind: flood, fraction: 0.5 } }',
    '  - { policy: device-silent, select: { ids: [energy-00002] }, at: 5s }',
  ].join('\n')))

  it('gives each device at most one incident, deterministically for a seed', () => {
    const plan = planInjections(scenario, fleet, 11)
    expect(plan).toEqual(planInjections(scenario, fleet, 11))
    const ids = plan.map((i) => i.deviceId)
    expect(new Set(ids).size).toBe(ids.length)
    expect(plan.filter((i) => i.policy === 'replay')).toHaveLength(3)
    // half of the 9 flood devices still free after the replays
    expect(plan.filter((i) => i.policy === 'clock-skew')).toHaveLength(5)
    expect(plan.find((i) => i.policy === 'device-silent')).toMatchObject({ deviceId: 'energy-00002', at: 5000 })
    expect(plan.filter((i) => i.policy !== 'device-silent').every((i) => i.deviceId.startsWith('flood-'))).toBe(true)
  })

  it('refuses ids not in the fleet and selections larger than the fleet', () => {
    const unknown = loadScenario(scenarioFile('unknown.yaml', 'name: u\nincidents:\n  - { policy: replay, select: { ids: [flood-99999] } }\n'))
    expect(errorOf(() => planInjections(unknown, fleet, 1)).message).toMatch(/incidents\.0\.select\.ids: "flood-99999" is not in this fleet/)
    const greedy = loadScenario(scenarioFile('greedy.yaml', 'name: g\nincidents:\n  - { policy: replay, select: { kind: energy, count: 50 } }\n'))
    expect(errorOf(() => planInjections(greedy, fleet, 1)).message).toMatch(/wants 50 devices, only 9 free ones match/)
  })
})
