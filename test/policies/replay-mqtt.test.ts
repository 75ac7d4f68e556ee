/**
 * Issue 5: the broker resends QoS 1 messages after a lost PUBACK or a
 * collector crash. Real messages from mosquitto_pub through the real broker
 * into the collector: the same message twice raises nothing; an old seq
 * with new content still raises `replay`.
 */
import { describe, expect, it } from 'vitest'
import { createCollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { createLogger } from '../../shared/logger.ts'
import { useFleetWithBroker, waitFor } from '../helpers/broker.ts'
import { mosquittoPub } from '../helpers/mosquitto-clients.ts'

const setup = useFleetWithBroker()

describe('replay over real MQTT', () => {
  it('a resent message is not a replay; an old seq with new content is', async () => {
    await setup.fleet.pki.issueMany([{ deviceId: 'flood-r1', kind: 'flood', site: 'riverside' }])
    const config = loadConfig({ env: {}, flags: { dataDir: setup.fleet.dataDir } })
    const service = createCollectorService(config, setup.broker.url, createLogger({ level: 'silent' }))
    await service.start()
    const tls = { cafile: setup.fleet.paths.caCert, ...setup.fleet.device('flood-r1') }
    const start = Date.now()
    const payload = (seq: number, level = 80 + seq) => JSON.stringify({ ts: start + seq * 1_000, seq, fw: '3.2.1', level_cm: level, battery_v: 3.6 })
    const publish = async (body: string) => expect((await mosquittoPub(setup.broker.port, tls, 'flood-r1', 'places/riverside/flood/flood-r1/telemetry', body)).code).toBe(0)
    const processed = () => service.detection.rateOf('flood-r1')?.messages ?? 0
    try {
      for (let seq = 1; seq <= 4; seq++) await publish(payload(seq))
      await waitFor(() => processed() === 4, 20_000, 'four messages through detection')
      // What the broker sends again after a lost PUBACK: the same bytes, in order.
      for (const seq of [3, 4]) await publish(payload(seq))
      await publish(payload(5))
      await waitFor(() => processed() + service.detection.redeliveries >= 7, 20_000, 'seven messages through detection')
      expect(processed()).toBe(5) // counted once in the rate
      // (mosquitto_pub connects once per message: connection-flapping is the one alert that may be earned here.)
      expect((await service.detection.alerts.list({ deviceId: 'flood-r1' })).map((a) => a.policy).filter((p) => p !== 'connection-flapping')).toEqual([])

      await publish(payload(3, 10)) // seq 3 again, other content: a replayed or forged message
      await waitFor(async () => (await service.detection.alerts.list({ policy: 'replay', deviceId: 'flood-r1' })).length === 1, 20_000, 'replay alert')
    } finally {
      await service.stop()
    }
  }, 120_000)
})
