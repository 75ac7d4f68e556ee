import { join } from 'node:path'

/** Where the fleet PKI lives inside a data directory (docs/product.md, `pki init`). */
export interface PkiPaths {
  dir: string
  caCert: string
  caKey: string
  serverCert: string
  serverKey: string
  collectorCert: string
  collectorKey: string
  crl: string
  inventory: string
  devicesDir: string
}

export function pkiPaths (dataDir: string): PkiPaths {
  const dir = join(dataDir, 'pki')
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    collectorCert: join(dir, 'collector.crt'),
    collectorKey: join(dir, 'collector.key'),
    crl: join(dir, 'crl.pem'),
    inventory: join(dir, 'inventory.db'),
    devicesDir: join(dir, 'devices'),
  }
}

export function deviceFiles (dir: string, deviceId: string): { cert: string, key: string } {
  return { cert: join(dir, `${deviceId}.crt`), key: join(dir, `${deviceId}.key`) }
}
