/**
 * A supplier's command lands in the operator audit trail (issue 17): a
 * mosquitto client with a supplier certificate commands a device through
 * the real broker; the collector service hears the broker's
 * `supplier-command` event and appends `supplier.command` by
 * `supplier:<id>` to `<data-dir>/audit.db` — size and SHA-256, never the
 * payload — and the chain still verifies. The same event given to the
 * collector again (as the broker redelivers it at QoS 1 after a collector
 * restart) is still one entry.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createCollectorService, loadConfig } from '../../app/index.ts'
import { SqliteAuditStore } from '../../audit/index.ts'
import { aedesOf } from '../../broker/broker.ts'
import { securityEventPacket } from '../../broker/event-reporter.ts'
import { createLogger } from '../../shared/logger.ts'
import { type RunningBroker, startBroker, waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { mosquittoPub } from '../helpers/mosquitto-clients.ts'

const COMMAND = '{"action":"open-valve","pct":40}'
const TOPIC = 'places/riverside/flood/flood-1/cmd'

let fleet: TestFleet
let running: RunningBroker
beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'flood-1', kind: 'flood', site: 'riverside' }])
  const now = Date.now()
  await fleet.pki.issueSupplier({
    supplierId: 'acme-pumps', kinds: ['flood'], sites: ['riverside'],
    windows: [{ from: new Date(now - 3_600_000).toISOString(), until: new Date(now + 3_600_000).toISOString() }],
  })
  running = await startBroker(fleet, {}, { supplierGrant: (id) => fleet.pki.supplierGrant(id) })
})
afterAll(async () => {
  await running?.close()
  fleet?.cleanup()
})

describe('the collector and suppliers\' commands', () => {
  it('records each command in the audit trail: supplier, device, topic, size and SHA-256, not the payload', async () => {
    const config = loadConfig({ flags: { dataDir: fleet.dataDir } })
    const service = createCollectorService(config, running.url, createLogger({ level: 'silent' }))
    await service.start()
    const trail = new SqliteAuditStore({ path: join(fleet.dataDir, 'audit.db') })
    try {
      await waitFor(() => running.broker.connectionsByRole().collector === 1, 10_000, 'the collector connected')
      const published = await mosquittoPub(running.port, { cafile: fleet.paths.caCert, ...fleet.device('acme-pumps') }, 'acme-pumps', TOPIC, COMMAND)
      expect(published.code, published.stderr).toBe(0)
      await waitFor(() => trail.page({ order: 'oldest' }, 10).items.some((e) => e.action === 'supplier.command'), 10_000, 'the audit entry')
      const [entry] = trail.page({ order: 'oldest' }, 10).items.filter((e) => e.action === 'supplier.command')
      expect(entry).toMatchObject({
        actor: 'supplier:acme-pumps', subject: 'flood-1', from: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        detail: { topic: TOPIC, site: 'riverside', kind: 'flood', payloadBytes: Buffer.byteLength(COMMAND), payloadSha256: createHash('sha256').update(COMMAND).digest('hex') },
      })
      expect(JSON.stringify(entry)).not.toContain('open-valve')
      expect(trail.verify()).toMatchObject({ intact: true })

      // The event once more, as a QoS 1 redelivery reaches the collector; then another command, which the collector hears after it.
      const sent = running.events.find((e) => e.type === 'supplier-command')!
      expect(entry!.detail.commandId).toBe(sent.details?.commandId)
      await new Promise<void>((resolve, reject) => aedesOf(running.broker).publish(securityEventPacket(sent), (error) => error ? reject(error) : resolve()))
      const again = await mosquittoPub(running.port, { cafile: fleet.paths.caCert, ...fleet.device('acme-pumps') }, 'acme-pumps', TOPIC, COMMAND)
      expect(again.code, again.stderr).toBe(0)
      const commands = () => trail.page({ order: 'oldest' }, 10).items.filter((e) => e.action === 'supplier.command')
      await waitFor(() => commands().length >= 2, 10_000, 'the second command\'s entry')
      expect(commands().map((e) => e.detail.commandId)).toEqual(running.events.filter((e) => e.type === 'supplier-command').map((e) => e.details?.commandId))
      expect(trail.verify()).toMatchObject({ intact: true, entries: commands().length })
    } finally {
      trail.close()
      await service.stop()
    }
  }, 60_000)
})
