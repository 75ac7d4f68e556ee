/**
 * The fleet view of a collector group over PostgreSQL: fleet states on one
 * database, each with a pool of its own (two collectors), each fed the
 * devices of the partitions it holds. After a refresh each lists the whole
 * fleet with every device's latest facts; a device's own collector is
 * right about it; a partition move loses no message; and a flush while
 * PostgreSQL is down keeps its devices for the next one.
 */
import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { FleetState } from '../../fleet/fleet-state.ts'
import { PgFleetStore } from '../../fleet/pg-fleet-store.ts'
import { createLogger } from '../../shared/logger.ts'
import type { StoredPoint } from '../../shared/stored-point.ts'
import { waitFor } from '../helpers/broker.ts'
import { pgPlaces } from '../helpers/pg-place.ts'

const pg = pgPlaces('fleet_group')
const silent = createLogger({ level: 'silent' })
const T = Date.parse('2026-03-01T10:00:00.000Z')

/** A collector's clock the test moves. */
function testClock (): { now: () => number, ms: number } {
  const clock = { ms: T, now: () => clock.ms }
  return clock
}

function reading (device: string, fw: string, measurement: 'flood' | 'energy' = 'flood'): StoredPoint {
  const fields: Record<string, number> = measurement === 'flood' ? { level_cm: 40, battery_v: 3.6 } : { power_kw: 2, voltage_v: 231, energy_kwh: 1000 }
  return { measurement, tags: { device, site: 'riverside' }, fields: { ...fields, seq: 1, fw }, timestampMs: T }
}

async function collector (name: string, options: { logger?: ReturnType<typeof createLogger> } = {}) {
  const clock = testClock()
  const fleet = await FleetState.open({ asyncStore: new PgFleetStore({ pool: pg.pool(name) }), clock, logger: options.logger ?? silent })
  return { fleet, clock }
}

const view = (fleet: FleetState) => fleet.list({}).items.map(({ id, firmware, lastSeenAt, messages }) => ({ id, firmware, lastSeenAt, messages }))
const at = (ms: number) => new Date(ms).toISOString()

describe('the fleet view of a collector group on PostgreSQL', () => {
  it('each collector lists every device, with the latest facts of whichever collector receives it', async () => {
    const a = await collector('collector-a')
    const b = await collector('collector-b')
    for (let i = 0; i < 3; i++) a.fleet.onTelemetry(reading('flood-001', '1.2.0'), T + i)
    a.fleet.onTelemetry(reading('flood-002', '1.2.0'), T + 10)
    b.fleet.onTelemetry(reading('energy-001', '5.3.0', 'energy'), T + 20)
    b.fleet.onTelemetry(reading('energy-001', '5.4.0', 'energy'), T + 30)
    await Promise.all([a.fleet.sync(), b.fleet.sync()])
    // Each refreshed after its own flush: a second round lets each read what the other saved.
    await Promise.all([a.fleet.sync(), b.fleet.sync()])
    const whole = [
      { id: 'energy-001', firmware: '5.4.0', lastSeenAt: at(T + 30), messages: 2 },
      { id: 'flood-001', firmware: '1.2.0', lastSeenAt: at(T + 2), messages: 3 },
      { id: 'flood-002', firmware: '1.2.0', lastSeenAt: at(T + 10), messages: 1 },
    ]
    expect(view(a.fleet)).toEqual(whole)
    expect(view(b.fleet)).toEqual(whole)
    expect(b.fleet.summary()).toMatchObject({ devices: 3, byKind: { flood: { total: 2 }, energy: { total: 1 } } })
    // A collector started now loads the whole fleet.
    expect(view((await collector('collector-c')).fleet)).toEqual(whole)

    // New telemetry on one collector reaches the other's view at its next refresh.
    b.fleet.onTelemetry(reading('energy-001', '5.5.0', 'energy'), T + 5_000)
    await b.fleet.sync()
    await a.fleet.sync()
    expect(a.fleet.summaryOf('energy-001')).toMatchObject({ firmware: '5.5.0', lastSeenAt: at(T + 5_000), messages: 3 })
  })

  it('what a device\'s own collector received wins over what others saved of it, until its partition moves', async () => {
    const a = await collector('own-a')
    const b = await collector('own-b')
    a.fleet.onTelemetry(reading('flood-001', '1.2.0'), T)
    await a.fleet.sync()
    // b's clock runs ahead: the previous holder's last save carries a later time than a's first ones.
    b.fleet.onTelemetry(reading('flood-001', '1.1.0'), T + 3_000)
    await b.fleet.sync()
    await a.fleet.sync()
    expect(a.fleet.summaryOf('flood-001')).toMatchObject({ firmware: '1.2.0', lastSeenAt: at(T), messages: 2 })
    // The partition goes to b: from now on the newest sighting saved is a's view of the device.
    expect(a.fleet.release((id) => id === 'flood-001')).toBe(1)
    b.fleet.onTelemetry(reading('flood-001', '1.3.0'), T + 4_000)
    await b.fleet.sync()
    await a.fleet.sync()
    expect(a.fleet.summaryOf('flood-001')).toMatchObject({ firmware: '1.3.0', lastSeenAt: at(T + 4_000), messages: 3, connected: false })
  })

  it('around a partition move both holders\' messages count once each, and no count goes back', async () => {
    const a = await collector('move-a')
    const b = await collector('move-b')
    for (let i = 0; i < 5; i++) a.fleet.onTelemetry(reading('flood-001', '1.2.0'), T + i)
    await a.fleet.sync()
    await b.fleet.sync()
    expect(b.fleet.summaryOf('flood-001')?.messages).toBe(5)
    // a receives 3 more before it hands the partition over; b takes it and counts on from the 5 it knew.
    for (let i = 5; i < 8; i++) a.fleet.onTelemetry(reading('flood-001', '1.2.0'), T + i)
    a.fleet.release((id) => id === 'flood-001')
    for (let i = 0; i < 4; i++) b.fleet.onTelemetry(reading('flood-001', '1.2.0'), T + 100 + i)
    expect(b.fleet.summaryOf('flood-001')?.messages).toBe(9)
    // A read while they wait to be saved shows them on top of the group's count.
    await b.fleet.refresh()
    expect(b.fleet.summaryOf('flood-001')?.messages).toBe(9)
    // b saves first, then a's last flush lands: 5 + 3 + 4.
    await b.fleet.sync()
    await a.fleet.sync()
    await b.fleet.sync()
    expect(a.fleet.summaryOf('flood-001')?.messages).toBe(12)
    expect(b.fleet.summaryOf('flood-001')).toMatchObject({ messages: 12, lastSeenAt: at(T + 103) })
  })

  it('a refresh reads only the devices saved since the previous one, whatever their times and the clocks', async () => {
    const a = await collector('recent-a')
    const b = await collector('recent-b')
    b.fleet.onTelemetry(reading('flood-001', '1.0.0'), T)
    b.fleet.onTelemetry(reading('flood-002', '1.0.0'), T)
    await b.fleet.flush()
    expect(await a.fleet.refresh()).toBe(2)
    expect(await a.fleet.refresh()).toBe(0)
    // A save whose times are an hour old (b's clock is behind, or it retries after an outage) is read all the same.
    b.clock.ms = T - 3_600_000
    b.fleet.onTelemetry(reading('flood-003', '1.0.0'), b.clock.now())
    await b.fleet.flush()
    expect(await a.fleet.refresh()).toBe(1)
    expect(a.fleet.summaryOf('flood-003')).toMatchObject({ lastSeenAt: at(T - 3_600_000), messages: 1 })
  })

  it('a flush while PostgreSQL is down fails and keeps its devices, and the next one after the restart saves them', async () => {
    const logs: string[] = []
    const logger = createLogger({ level: 'info', destination: new Writable({ write (chunk, _encoding, done) { logs.push(String(chunk)); done() } }) })
    const a = await collector('outage-a', { logger })
    a.fleet.onTelemetry(reading('flood-001', '1.2.0'), T)
    await a.fleet.sync()
    await pg.server().shutdown()
    try {
      a.fleet.onTelemetry(reading('flood-001', '1.3.0'), T + 1_000)
      a.fleet.onTelemetry(reading('flood-002', '1.2.0'), T + 2_000)
      await expect(async () => { await a.fleet.flush() }).rejects.toThrow()
      // The timer's call does not reject; it says so in the log, once.
      await a.fleet.sync()
      await a.fleet.sync()
      await waitFor(() => logs.some((line) => line.includes('fleet state not saved')), 5_000, 'the failed flush in the log')
      expect(logs.filter((line) => line.includes('fleet state not saved'))).toHaveLength(1)
      a.fleet.onTelemetry(reading('flood-001', '1.3.0'), T + 3_000)
    } finally {
      await pg.server().restart()
    }
    await a.fleet.sync()
    const stored = await new PgFleetStore({ pool: pg.pool('outage-reader') }).load()
    expect(stored.devices.sort((x, y) => x.id < y.id ? -1 : 1)).toEqual([
      { id: 'flood-001', kind: 'flood', site: 'riverside', firmware: '1.3.0', lastSeenMs: T + 3_000, messages: 3 },
      { id: 'flood-002', kind: 'flood', site: 'riverside', firmware: '1.2.0', lastSeenMs: T + 2_000, messages: 1 },
    ])
    await waitFor(() => logs.some((line) => line.includes('fleet state saved again')), 5_000, 'the recovery in the log')
  }, 60_000)
})
