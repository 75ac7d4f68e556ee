import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSqlitePersistence, PlaceGuardBroker } from '../../broker/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { connectClient } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'

let fleet: TestFleet

beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'life-1', kind: 'flood', site: 'riverside' }])
})

afterAll(() => fleet?.cleanup())

describe('the broker owns the persistence it is given', () => {
  it('close() resolves once the persistence is destroyed, after its clients are closed', async () => {
    const persistence = createSqlitePersistence({ path: join(fleet.dataDir, 'broker.db') })
    const broker = new PlaceGuardBroker({
      tls: { caCert: fleet.paths.caCert, serverCert: fleet.paths.serverCert, serverKey: fleet.paths.serverKey, crl: fleet.paths.crl },
      host: '127.0.0.1', port: 0, logger: createLogger({ level: 'silent' }), aedes: { persistence },
    })
    const { port } = await broker.listen()
    const device = await connectClient(`mqtts://127.0.0.1:${port}`, fleet, fleet.device('life-1'), 'life-1', { clean: false })
    const closedByBroker = new Promise<void>((resolve) => device.once('close', () => resolve()))
    await broker.close()
    await closedByBroker
    await expect(persistence.storeRetained({ topic: 'places/x', payload: Buffer.from('x') })).rejects.toThrow('persistence destroyed')
    device.end(true)
  })
})
