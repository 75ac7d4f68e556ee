import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FleetPki, type IssueRequest, type PkiPaths } from '../../pki/index.ts'

export interface TestFleet {
  dataDir: string
  pki: FleetPki
  paths: PkiPaths
  /** Paths of a device's certificate and key. */
  device: (id: string) => { cert: string, key: string }
  cleanup: () => void
}

/** A real fleet PKI in a temporary data directory. */
export async function createTestFleet (devices: IssueRequest[] = []): Promise<TestFleet> {
  const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-test-'))
  const pki = new FleetPki(dataDir)
  await pki.init()
  if (devices.length > 0) await pki.issueMany(devices)
  return {
    dataDir,
    pki,
    paths: pki.paths,
    device: (id) => ({ cert: join(pki.paths.devicesDir, `${id}.crt`), key: join(pki.paths.devicesDir, `${id}.key`) }),
    cleanup: () => {
      pki.close()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

export function read (path: string): Buffer {
  return readFileSync(path)
}
