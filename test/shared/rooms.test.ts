/**
 * Imports run one way between the top-level folders, entering a folder
 * through its index.ts, and shared/ imports nothing of ours: the lint
 * (eslint.config.js, ROOMS) refuses an upward or side-door import.
 */
import { rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ESLint } from 'eslint'
import { describe, expect, it } from 'vitest'

const ROOT = join(import.meta.dirname, '..', '..')
const eslint = new ESLint({ cwd: ROOT })

/** Lints a probe file placed in a room (type-aware lint needs a real file the project includes), then removes it. */
async function importErrors (file: string, code: string): Promise<string[]> {
  const path = join(ROOT, dirname(file), `__rooms_probe_${process.pid}__.ts`)
  writeFileSync(path, code)
  try {
    const [result] = await eslint.lintFiles([path])
    const fatal = result!.messages.filter((m) => m.fatal)
    if (fatal.length > 0) throw new Error(fatal.map((m) => m.message).join('; '))
    return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message)
  } finally {
    rmSync(path, { force: true })
  }
}

describe('one-way rooms', () => {
  it('refuses an import of any room from shared/', async () => {
    expect(await importErrors('shared/probe.ts', "export { POLICY_IDS } from '../policies/index.ts'\n"))
      .toEqual([expect.stringMatching(/shared\/ may not import policies\//)])
  })

  it('refuses an upward or sideways import (policies/ into broker/, broker/ into collector/, collector/ into detection/, dashboards/ into app/)', async () => {
    expect(await importErrors('policies/probe.ts', "export type { PlaceGuardBroker } from '../broker/index.ts'\n")).toHaveLength(1)
    expect(await importErrors('broker/probe.ts', "export type { Collector } from '../collector/index.ts'\n")).toHaveLength(1)
    expect(await importErrors('collector/probe.ts', "export type { Detection } from '../detection/index.ts'\n")).toHaveLength(1)
    expect(await importErrors('dashboards/api/probe.ts', "export type { CollectorService } from '../../app/index.ts'\n")).toHaveLength(1)
    // cli/ parses flags; it reaches the collector, detection and the API only through app/.
    expect(await importErrors('cli/probe.ts', "export type { Collector } from '../collector/index.ts'\n")).toHaveLength(1)
    expect(await importErrors('cli/probe.ts', "export type { CollectorService } from '../app/index.ts'\n")).toEqual([])
  })

  it('refuses a side door into another room, and lets the front door through', async () => {
    expect(await importErrors('dashboards/api/probe.ts', "export { FleetState } from '../../fleet/fleet-state.ts'\n"))
      .toEqual([expect.stringMatching(/enter fleet\/ through its index.ts/)])
    expect(await importErrors('dashboards/api/probe.ts', "export type { FleetView } from '../../fleet/index.ts'\n")).toEqual([])
    expect(await importErrors('collector/probe.ts', "export { ID_PATTERN } from './ids.ts'\n")).toEqual([])
  })

  it('lets the light doors through (a room\'s config.ts, app/broker-process.ts, app/audit-admin.ts) and nothing else beside index.ts', async () => {
    expect(await importErrors('app/probe.ts', "export { collectorConfigSchema } from '../collector/config.ts'\n")).toEqual([])
    expect(await importErrors('cli/probe.ts', "export { startBrokerProcess } from '../app/broker-process.ts'\n")).toEqual([])
    expect(await importErrors('cli/probe.ts', "export { auditedCliAction } from '../app/audit-admin.ts'\n")).toEqual([])
    expect(await importErrors('cli/probe.ts', "export { startUp } from '../app/up-process.ts'\n"))
      .toEqual([expect.stringMatching(/enter app\/ through its index.ts \(or a light door: config.ts, broker-process.ts, audit-admin.ts\)/)])
    // Any other file of a room is still a side door.
    expect(await importErrors('app/probe.ts', "export { Collector } from '../collector/collector.ts'\n")).toHaveLength(1)
  })
})
