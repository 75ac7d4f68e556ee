/**
 * The broker runs with a small young generation (bin/placeguard.js): it
 * re-executes itself with the flag before loading anything — same pid, so
 * whoever started it still signals and waits on the right process — and an
 * operator's own choice in NODE_OPTIONS stands.
 */
import { readFileSync, rmSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { type BrokerProcess, startBrokerProcess } from '../helpers/broker-process.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

const argvOf = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
const semiSpaceFlags = (args: string[]): string[] => args.filter((arg) => arg.startsWith('--max-semi-space-size'))

describe('the broker process heap', () => {
  let fleet: TestFleet | undefined
  let broker: BrokerProcess | undefined
  afterEach(async () => {
    await broker?.stop()
    if (fleet) rmSync(fleet.dataDir, { recursive: true, force: true })
    broker = undefined
    fleet = undefined
  })

  it('re-executes itself in the same process with a 2 MiB semi-space', async () => {
    fleet = await createTestFleet()
    broker = await startBrokerProcess(fleet)
    const args = argvOf(broker.child.pid!)
    expect(semiSpaceFlags(args)).toEqual(['--max-semi-space-size=2'])
    // The rest of the command line survived the re-execution.
    expect(args).toContain('broker')
    expect(args).toContain('--expose-gc')
    // Still the process that was spawned: it answers the heap probe and stops on SIGTERM.
    const sample = await broker.memory()
    expect(sample.heapUsed).toBeGreaterThan(0)
    await broker.stop()
    expect(broker.exit()?.signal ?? broker.exit()?.code).not.toBeUndefined()
  })

  it('leaves the young generation alone when NODE_OPTIONS sets it', async () => {
    fleet = await createTestFleet()
    broker = await startBrokerProcess(fleet, {}, undefined, { ...process.env, NODE_OPTIONS: '--max-semi-space-size=16' })
    expect(semiSpaceFlags(argvOf(broker.child.pid!))).toEqual([])
    const sample = await broker.memory()
    expect(sample.heapUsed).toBeGreaterThan(0)
  })
})
