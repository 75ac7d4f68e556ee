import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runSimulation } from '../../agent-sim/index.ts'
import { EmbeddedStore } from '../../collector/embedded-store.ts'
import { createCollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { createLogger } from '../../shared/logger.ts'
import { useFleetWithBroker, waitFor } from '../helpers/broker.ts'

const setup = useFleetWithBroker()

describe('the embedded default (no InfluxDB configured)', () => {
  it('stores every acknowledged message in the data directory and serves recent telemetry per device', async () => {
    const config = loadConfig({ env: {}, flags: { dataDir: setup.fleet.dataDir } })
    expect(config.influx).toBeUndefined()
    const service = createCollectorService(config, setup.broker.url, createLogger({ level: 'silent' }))
    await service.start()
    const summary = await runSimulation({ dataDir: setup.fleet.dataDir, brokerUrl: setup.broker.url, devices: 12, intervalMs: 250, durationMs: 3_000, seed: 8 })
    expect(summary.failed).toBe(0)
    const telemetryCount = (): Promise<number> => Promise.resolve(['flood', 'energy', 'housing'].reduce((sum, kind) => sum + service.embedded!.count(kind), 0))
    let stored = 0
    await waitFor(() => { void telemetryCount().then((n) => { stored = n }); return stored === summary.acked }, 15_000, `${summary.acked} points in the embedded store`)
    // The broker reports the devices' disconnects after their last telemetry: wait for them too, or stopping races them.
    await waitFor(() => service.embedded!.count('security_event') >= 24, 15_000, 'a connect and a disconnect per device stored')
    await service.stop()

    // A fresh handle on the file: what the dashboard reads after a restart.
    const store = new EmbeddedStore({ path: join(setup.fleet.dataDir, 'telemetry.db') })
    try {
      const recent = store.recent({ deviceId: 'energy-00000', measurement: 'energy', limit: 3 })
      expect(recent).toHaveLength(3)
      expect(recent[0]).toMatchObject({ measurement: 'energy', tags: { device: 'energy-00000' } })
      expect(Object.keys(recent[0]!.fields).sort()).toEqual(['energy_kwh', 'fw', 'power_kw', 'seq', 'voltage_v'])
      expect(recent[0]!.timestampMs).toBeGreaterThan(recent[1]!.timestampMs)
      expect(store.count('security_event')).toBeGreaterThanOrEqual(24) // a connect and a disconnect per device
    } finally {
      await store.close()
    }
  })
})
