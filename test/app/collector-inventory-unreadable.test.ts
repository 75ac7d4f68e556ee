import { mkdirSync, renameSync, rmSync } from 'node:fs'
import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createCollectorService } from '../../app/collector-service.ts'
import { loadConfig } from '../../app/config.ts'
import { createLogger } from '../../shared/logger.ts'
import { useFleetWithBroker } from '../helpers/broker.ts'

const setup = useFleetWithBroker()

describe('the collector\'s minute inventory read', () => {
  it('survives an inventory it cannot open (no file descriptor left, a damaged file): says so once, keeps the last reading, and reads it again once it can', async () => {
    await setup.fleet.pki.issueMany([{ deviceId: 'flood-inv-1', kind: 'flood', site: 'inv' }])
    const lines: string[] = []
    const destination = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
    const config = loadConfig({ env: {}, flags: { dataDir: setup.fleet.dataDir } })
    const service = createCollectorService(config, setup.broker.url, createLogger({ level: 'info', destination }))
    await service.start()
    const inventory = setup.fleet.paths.inventory
    try {
      expect(service.fleet.summaryOf('flood-inv-1')).toBeDefined()
      // A directory where the database was: SQLite cannot open it, as it cannot without a descriptor (EMFILE).
      renameSync(inventory, `${inventory}.away`)
      mkdirSync(inventory)
      expect(() => service.refreshInventory()).not.toThrow()
      expect(() => service.refreshInventory()).not.toThrow()
      const failures = lines.filter((line) => line.includes('inventory not read'))
      expect(failures).toHaveLength(1)
      expect(JSON.parse(failures[0]!)).toMatchObject({ level: 50, err: expect.stringContaining('unable to open database file') })
      // What it read last is kept.
      expect(service.fleet.summaryOf('flood-inv-1')).toBeDefined()
      rmSync(inventory, { recursive: true })
      renameSync(`${inventory}.away`, inventory)
      service.refreshInventory()
      expect(lines.filter((line) => line.includes('inventory read again'))).toHaveLength(1)
    } finally {
      await service.stop()
    }
  })
})
