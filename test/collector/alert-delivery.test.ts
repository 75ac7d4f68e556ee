import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { Webhook } from 'standardwebhooks'
import { describe, expect, it } from 'vitest'
import { createCollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { createLogger } from '../../shared/logger.ts'
import { connectClient, useFleetWithBroker, waitFor } from '../helpers/broker.ts'
import { startHttpReceiver } from '../helpers/http-receiver.ts'

const setup = useFleetWithBroker()

describe('alert delivery from the collector (real broker, real receiver)', () => {
  it('a device\'s alert reaches the SOC webhook signed, its acknowledgement follows, and a dead sink raises an alert about itself', async () => {
    const secret = `whsec_${randomBytes(32).toString('base64')}`
    const soc = await startHttpReceiver()
    const dead = await startHttpReceiver()
    await dead.stop() // nothing listens there: connection refused
    await setup.fleet.pki.issueMany([{ deviceId: 'energy-d1', kind: 'energy', site: 'harbour' }])
    const config = loadConfig({
      env: { PLACEGUARD_WEBHOOK_URL: soc.url, PLACEGUARD_WEBHOOK_SECRET: secret },
      flags: { dataDir: setup.fleet.dataDir, delivery: { deadLetterAfterMs: 1_000, sinks: [{ type: 'slack', name: 'ops-chat', url: dead.url }] } },
    })
    const logs: string[] = []
    const service = createCollectorService(config, setup.broker.url, createLogger({ level: 'debug', destination: { write: (line: string) => { logs.push(line) } } as never }))
    await service.start()
    try {
      const device = await connectClient(setup.broker.url, setup.fleet, setup.fleet.device('energy-d1'), 'energy-d1')
      device.publish('places/harbour/energy/energy-d2/telemetry', '{}', { qos: 1 })
      device.on('error', () => {})
      const webhook = new Webhook(secret)
      const alerts = () => soc.requests.map((r) => webhook.verify(r.body, r.headers as Record<string, string>) as { id: string, policy: string, deviceId: string, status: string, site: string, kind: string, evidence: object })
      await waitFor(() => alerts().some((a) => a.policy === 'acl-violation'), 10_000, 'the ACL alert at the SOC')
      device.end(true)
      const delivered = alerts().find((a) => a.policy === 'acl-violation')!
      expect(delivered).toMatchObject({ deviceId: 'energy-d1', site: 'harbour', kind: 'energy', status: 'open', evidence: { topic: 'places/harbour/energy/energy-d2/telemetry' } })

      await service.detection.acknowledge(delivered.id, 'alice')
      await waitFor(() => alerts().some((a) => a.id === delivered.id && a.status === 'acknowledged'), 10_000, 'the acknowledgement at the SOC')

      // The chat sink never answered: past deadLetterAfterMs its deliveries are dead letters and PlaceGuard says so, through the sink that works.
      await waitFor(() => alerts().some((a) => a.policy === 'delivery-failing'), 20_000, 'the delivery-failing alert at the SOC')
      expect(alerts().find((a) => a.policy === 'delivery-failing')).toMatchObject({ deviceId: 'sink:ops-chat', status: 'open' })
      expect((await service.outbox.deadLetters('ops-chat')).map((d) => d.change === 'audit' ? d.audit.action : d.alert.policy)).toContain('acl-violation')
      // Every chat delivery dead, the acknowledgement's too: while a newer change of an alert is still pending, requeue
      // drops its older dead letters as superseded, and there may be nothing left to re-queue.
      await waitFor(async () => (await service.outbox.metrics()).find((m) => m.sink === 'ops-chat')!.pending === 0, 10_000, 'every chat delivery dead-lettered')
      // Operators see and re-queue dead letters from the command line while the collector runs.
      const cli = (...args: string[]) => new Promise<string>((resolve, reject) => execFile(process.execPath, ['bin/placeguard.js', '--data-dir', setup.fleet.dataDir, 'outbox', ...args], (error, stdout) => error ? reject(error) : resolve(stdout)))
      const letters = JSON.parse(await cli('dead-letters', '--json', '--sink', 'ops-chat')) as Array<{ sink: string, alert: { policy: string } }>
      expect(letters.map((l) => `${l.sink} ${l.alert.policy}`)).toContain('ops-chat acl-violation')
      expect(await cli('requeue', '--sink', 'ops-chat')).toMatch(/^[1-9]\d* deliveries re-queued\n$/)
      await waitFor(async () => (await service.outbox.metrics()).find((m) => m.sink === 'ops-chat')!.pending > 0, 5_000, 'the re-queued deliveries pending again')
      // Secrets never reach the logs: neither the signing secret nor the sinks' URLs (a Slack URL is a credential).
      expect(logs.join('\n')).toMatch(/alert delivery failed; will retry/)
      for (const secretText of [secret, secret.slice(6), soc.url, dead.url]) expect(logs.join('\n')).not.toContain(secretText)
    } finally {
      await service.stop()
      await soc.stop()
    }
  }, 40_000)
})
