/**
 * A broker given only the PKI's public part (docker-compose's pki-public
 * volume: no CA key, no inventory) learns suppliers' grants from the
 * `supplier-grants.json` the PKI publishes beside the CRL. Real
 * `placeguard broker` process, Debian's mosquitto clients.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SUPPLIER_GRANTS_FILE, SupplierGrantsFile } from '../../pki/index.ts'
import { waitFor } from '../helpers/broker.ts'
import { createTestFleet, type TestFleet } from '../helpers/fleet.ts'
import { freePort } from '../helpers/free-port.ts'
import { mosquittoPub, mosquittoSub, type Subscriber } from '../helpers/mosquitto-clients.ts'

const HOUR_MS = 3_600_000
const CMD = 'places/riverside/flood/flood-1/cmd'
const PUBLIC = ['ca.crt', 'server.crt', 'server.key', 'crl.pem', SUPPLIER_GRANTS_FILE]

let fleet: TestFleet
let publicDir: string
let broker: ChildProcess | undefined
let port: number
let device: Subscriber | undefined

function window (): Array<{ from: string, until: string }> {
  return [{ from: new Date(Date.now() - HOUR_MS).toISOString(), until: new Date(Date.now() + HOUR_MS).toISOString() }]
}

/** What pki-crl copies to the broker's volume. */
function publish (): void {
  for (const file of PUBLIC) copyFileSync(join(fleet.paths.caCert, '..', file), join(publicDir, 'pki', file))
}

function files (id: string): { cafile: string, cert: string, key: string } {
  return { cafile: fleet.paths.caCert, ...fleet.device(id) }
}

beforeAll(async () => {
  fleet = await createTestFleet([{ deviceId: 'flood-1', kind: 'flood', site: 'riverside' }])
  await fleet.pki.issueSupplier({ supplierId: 'acme-pumps', kinds: ['flood'], sites: ['riverside'], windows: window() })
  publicDir = mkdtempSync(join(tmpdir(), 'placeguard-public-'))
  mkdirSync(join(publicDir, 'pki'))
  publish()
  port = await freePort()
  broker = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'placeguard.js'), '--data-dir', publicDir, 'broker', '--mqtt-port', String(port), '--mqtt-host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  broker.stdout!.on('data', (chunk) => { output += chunk })
  broker.stderr!.on('data', (chunk) => { output += chunk })
  await waitFor(() => output.includes('broker listening') || broker!.exitCode !== null, 20_000, 'the broker to listen')
  if (broker.exitCode !== null) throw new Error(`broker exited: ${output}`)
  device = mosquittoSub(port, files('flood-1'), 'flood-1', [CMD])
  await device.ready
})

afterAll(() => {
  device?.stop()
  broker?.kill('SIGKILL')
  fleet?.cleanup()
  if (publicDir) rmSync(publicDir, { recursive: true, force: true })
})

describe('a broker with only the public PKI', () => {
  it('lets a supplier in by the published grants, and a supplier issued later once its grant is published', async () => {
    const sent = await mosquittoPub(port, files('acme-pumps'), 'acme-pumps', CMD, 'from-acme')
    expect(sent.code, sent.stderr).toBe(0)
    await waitFor(() => device!.lines.includes(`${CMD} from-acme`), 10_000, 'acme-pumps\' command at flood-1')

    // Issued at the PKI, not yet published: the broker knows no grant for it.
    await fleet.pki.issueSupplier({ supplierId: 'river-care', kinds: ['flood'], sites: ['riverside'], windows: window() })
    const early = await mosquittoPub(port, files('river-care'), 'river-care', CMD, 'too-early')
    expect(early.code).not.toBe(0)

    publish()
    await waitFor(async () => (await mosquittoPub(port, files('river-care'), 'river-care', CMD, 'published')).code === 0, 15_000, 'river-care let in once its grant is published')
    await waitFor(() => device!.lines.includes(`${CMD} published`), 10_000, 'river-care\'s command at flood-1')
    expect(device!.lines).not.toContain(`${CMD} too-early`)
    // The broker never made an inventory of its own in the public directory.
    expect(existsSync(join(publicDir, 'pki', 'inventory.db'))).toBe(false)
  }, 60_000)
})

describe('SupplierGrantsFile', () => {
  it('keeps the grants read last when the file turns malformed, and follows it when it is fixed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'placeguard-grants-'))
    try {
      let now = 0
      const warnings: string[] = []
      const file = new SupplierGrantsFile(dir, { now: () => now, warn: (message) => warnings.push(message) })
      expect(file.grant('acme-pumps')).toBeUndefined() // no file: no grant
      copyFileSync(join(fleet.paths.caCert, '..', SUPPLIER_GRANTS_FILE), join(dir, SUPPLIER_GRANTS_FILE))
      now += 2_000
      expect(file.grant('acme-pumps')?.kinds).toEqual(['flood'])
      writeFileSync(join(dir, SUPPLIER_GRANTS_FILE), '{"format":"placeguard-supplier-grants/1","grants":[{"supplierId":"acme-pumps","kinds":["not-a-kind"],"sites":["x"],"windows":[]}]}')
      now += 2_000
      expect(file.grant('acme-pumps')?.kinds).toEqual(['flood'])
      expect(warnings.join('\n')).toContain('the grants read last stay in force')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
