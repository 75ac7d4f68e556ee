/**
 * Defect 3: an attacker who is refused at the TLS handshake picks the CN of
 * the certificate it presents. Keyed on that claim, every handshake opened
 * its own high alert at every SOC sink. Through a real broker, a real
 * collector and a real webhook receiver: one source address, one alert.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as connectTcp } from 'node:net'
import { connect } from 'node:tls'
import { describe, expect, it } from 'vitest'
import { createCollectorService } from '../../app/collector-service.ts'
import { createUntrustedIdentity } from '../../pki/index.ts'
import { loadConfig } from '../../app/config.ts'
import { createLogger } from '../../shared/logger.ts'
import { useFleetWithBroker, waitFor } from '../helpers/broker.ts'
import { read } from '../helpers/fleet.ts'
import { startHttpReceiver } from '../helpers/http-receiver.ts'
import { mosquittoPub } from '../helpers/mosquitto-clients.ts'

const setup = useFleetWithBroker()

/** One refused handshake from `localAddress`, with a fresh self-signed certificate claiming `claim`. */
async function handshake (port: number, caFile: string, claim: string, localAddress: string): Promise<void> {
  const identity = await createUntrustedIdentity(claim, 'flood', 'riverside', 'self-signed')
  await new Promise<void>((resolve) => {
    const socket = connect({ socket: connectTcp({ host: '127.0.0.1', port, localAddress }), ca: read(caFile), cert: identity.certificatePem, key: identity.privateKeyPem, servername: 'localhost' })
    socket.on('error', () => resolve())
    socket.on('close', () => resolve())
    socket.on('secureConnect', () => socket.write(Buffer.from([0x10, 0x00]))) // TLS 1.3: the refusal arrives after our Finished
  })
}

describe('cert-rejected under a flood of self-signed claims (real broker, collector, webhook)', () => {
  it('5 handshakes claiming 5 ids, then 500 from another address: one alert per address, one delivery each', async () => {
    const receiver = await startHttpReceiver()
    const config = loadConfig({ env: { PLACEGUARD_WEBHOOK_URL: receiver.url, PLACEGUARD_WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 7).toString('base64')}` }, flags: { dataDir: setup.fleet.dataDir } })
    const service = createCollectorService(config, setup.broker.url, createLogger({ level: 'silent' }))
    await service.start()
    const alertsFor = async () => (await service.detection.alerts.list({ policy: 'cert-rejected' }))
    try {
      // mosquitto_pub: a client PlaceGuard did not write.
      for (let i = 0; i < 5; i++) {
        const identity = await createUntrustedIdentity(`flood-${i}\u202Eexe.gnp`, 'flood', 'riverside', 'self-signed')
        const cert = join(setup.fleet.dataDir, `attacker-${i}.crt`)
        const key = join(setup.fleet.dataDir, `attacker-${i}.key`)
        writeFileSync(cert, identity.certificatePem)
        writeFileSync(key, identity.privateKeyPem)
        expect((await mosquittoPub(setup.broker.port, { cafile: setup.fleet.paths.caCert, cert, key }, `attacker-${i}`, 'places/riverside/flood/x/telemetry', '{}')).code).not.toBe(0)
      }
      await waitFor(async () => (await alertsFor())[0]?.occurrences === 5, 20_000, 'five refusals folded into the alert')
      expect((await alertsFor()).map((a) => a.deviceId)).toEqual(['address:127.0.0.1'])
      expect((await alertsFor())[0]!.summary).not.toMatch(/flood-|\u202E/)

      for (let i = 0; i < 500; i += 10) {
        await Promise.all(Array.from({ length: 10 }, (_, j) => handshake(setup.broker.port, setup.fleet.paths.caCert, `claim-${i + j}`, '127.0.0.2')))
      }
      await waitFor(async () => (await alertsFor()).find((a) => a.deviceId === 'address:127.0.0.2')?.occurrences === 500, 60_000, '500 refusals folded into one alert')
      expect((await alertsFor()).map((a) => a.deviceId).sort()).toEqual(['address:127.0.0.1', 'address:127.0.0.2'])

      await waitFor(async () => (await service.outbox.metrics()).every((m) => m.pending === 0), 20_000, 'outbox drained')
      const delivered = receiver.requests.map((r) => JSON.parse(r.body) as { policy: string, deviceId: string })
        .filter((alert) => alert.policy === 'cert-rejected')
      expect(delivered.map((alert) => alert.deviceId).sort()).toEqual(['address:127.0.0.1', 'address:127.0.0.2'])
    } finally {
      await service.stop()
      await receiver.stop()
    }
  }, 180_000)
})
