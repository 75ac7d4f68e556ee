import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { FleetState } from '../../fleet/fleet-state.ts'
import type { DeviceUpdate, FleetStore } from '../../fleet/fleet-store.ts'
import { SqliteFleetStore } from '../../fleet/sqlite-fleet-store.ts'
import type { StoredPoint } from '../../shared/stored-point.ts'

const clock = { now: () => Date.parse('2026-03-01T10:00:00.000Z') }

function reading (device: string, seq: number, fw = '1.2.0'): StoredPoint {
  return { measurement: 'flood', tags: { device, site: 'riverside' }, fields: { seq, fw, level_cm: 40, battery_v: 3.6 }, timestampMs: clock.now() + seq }
}

/** A store in memory that records what it was asked to save, and refuses once when told to. */
function recordingStore (): FleetStore & { saves: DeviceUpdate[][], failNext: boolean } {
  const inner = new SqliteFleetStore({ path: ':memory:' })
  const store = {
    saves: [] as DeviceUpdate[][],
    failNext: false,
    load: () => inner.load(),
    loadChangedSince: (position: string) => inner.loadChangedSince(position),
    save: (devices: DeviceUpdate[]) => {
      if (store.failNext) {
        store.failNext = false
        throw new Error('disk I/O error')
      }
      store.saves.push(devices)
      inner.save(devices)
    },
    close: () => inner.close(),
  }
  return store
}

describe('FleetState over a FleetStore', () => {
  const dirs: string[] = []
  afterEach(() => { for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true }) })

  it('remembers across a restart when each device was last seen, with which firmware and how many messages (SQLite at `path`)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-fleet-'))
    dirs.push(dir)
    const first = new FleetState({ path: join(dir, 'fleet.db'), clock })
    first.onTelemetry(reading('flood-001', 1), clock.now() - 5_000)
    first.onTelemetry(reading('flood-001', 2, '1.3.0'), clock.now() - 1_000)
    await first.close()
    const second = new FleetState({ path: join(dir, 'fleet.db'), clock })
    expect(second.summaryOf('flood-001')).toMatchObject({ kind: 'flood', site: 'riverside', firmware: '1.3.0', lastSeenAt: new Date(clock.now() - 1_000).toISOString(), messages: 2, health: 'healthy' })
    expect(second.telemetryOf('flood-001')).toEqual([]) // the ring is live only
    await second.close()
  })

  it('saves only the devices that changed since the last flush, with the messages counted since, and skips stored kinds it does not know', async () => {
    const store = recordingStore()
    store.save([{ id: 'lighthouse-1', kind: 'lighthouse', site: 'coast', firmware: null, lastSeenMs: null, newMessages: 0 }, { id: 'flood-009', kind: 'flood', site: 'riverside', firmware: '1.0.0', lastSeenMs: 1, newMessages: 1 }])
    store.saves.length = 0
    const fleet = new FleetState({ store, clock })
    expect(fleet.size).toBe(1)
    await fleet.flush()
    expect(store.saves).toEqual([])
    fleet.onTelemetry(reading('flood-001', 1))
    fleet.onTelemetry(reading('flood-002', 1))
    await fleet.flush()
    fleet.onTelemetry(reading('flood-002', 2))
    await fleet.flush()
    await fleet.flush()
    expect(store.saves.map((batch) => batch.map((d) => `${d.id}:+${d.newMessages}`))).toEqual([['flood-001:+1', 'flood-002:+1'], ['flood-002:+1']])
    expect(store.saves[0]![0]).toEqual({ id: 'flood-001', kind: 'flood', site: 'riverside', firmware: '1.2.0', lastSeenMs: clock.now(), newMessages: 1 })
    expect(fleet.summaryOf('flood-002')?.messages).toBe(2)
    expect(store.load().devices.find((d) => d.id === 'flood-002')?.messages).toBe(2)
    await fleet.close()
  })

  it('a save that fails leaves its devices, and their messages, to the next flush', async () => {
    const store = recordingStore()
    const fleet = new FleetState({ store, clock })
    fleet.onTelemetry(reading('flood-001', 1))
    store.failNext = true
    expect(() => fleet.flush()).toThrow(/disk I\/O error/)
    fleet.onTelemetry(reading('flood-001', 2))
    await fleet.flush()
    expect(store.saves.map((batch) => batch.map((d) => `${d.id}:+${d.newMessages}`))).toEqual([['flood-001:+2']])
    await fleet.close()
  })

  it('needs a store or a path', () => {
    expect(() => new FleetState({ clock })).toThrow(/store or a path/)
  })
})
