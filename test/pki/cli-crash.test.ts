/**
 * The bulk path as an operator runs it: `placeguard sim` provisions its
 * fleet through FleetPki.issueMany. Killed with SIGKILL mid-batch, it must
 * leave nothing in service without its files, and a re-run must say what
 * is in flight; after `pki reconcile` a re-run completes the fleet.
 */
import { spawn, spawnSync } from 'node:child_process'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { FleetPki, normalizeSerial } from '../../pki/index.ts'

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'placeguard.js')
const DEVICES = 2000
// Nothing listens there: the simulator provisions, then fails to connect, which is all this test needs of it.
const SIM = ['sim', '--devices', String(DEVICES), '--broker', 'mqtts://127.0.0.1:1', '--duration', '1s', '--seed', '7']
const dirs: string[] = []
afterAll(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }) })

function placeguard (dataDir: string, ...args: string[]): { status: number | null, output: string } {
  const result = spawnSync(process.execPath, [CLI, '--data-dir', dataDir, ...args], { encoding: 'utf8', timeout: 240_000 })
  return { status: result.status, output: result.stdout + result.stderr }
}

function certificatesIn (dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => name.endsWith('.crt')).map((name) => join(dir, name))
  } catch {
    return []
  }
}

/** Runs `placeguard sim` and SIGKILLs it once `atLeast` certificate files are on disk. */
function simKilledAt (dataDir: string, devicesDir: string, atLeast: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, '--data-dir', dataDir, ...SIM], { stdio: 'ignore' })
    const poll = setInterval(() => {
      if (certificatesIn(devicesDir).length >= atLeast) child.kill('SIGKILL')
    }, 10)
    child.once('exit', (code, signal) => {
      clearInterval(poll)
      if (signal === 'SIGKILL') resolve()
      else reject(new Error(`placeguard sim was not killed mid-batch (exit ${code})`))
    })
  })
}

describe('placeguard sim killed with SIGKILL while provisioning', () => {
  it('leaves no active row without its files; a re-run names what is in flight, and after reconcile completes the fleet', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-pki-cli-crash-'))
    dirs.push(dataDir)
    expect(placeguard(dataDir, 'pki', 'init').status).toBe(0)
    const pki = new FleetPki(dataDir)
    await simKilledAt(dataDir, pki.paths.devicesDir, 500)

    const rows = pki.list()
    expect(rows.filter((row) => row.role === 'device' && row.status === 'active')).toEqual([])
    expect(rows.filter((row) => row.status === 'pending').length).toBe(DEVICES)
    const known = new Set(rows.map((row) => normalizeSerial(row.serial!)))
    // A file cut short by the kill is no certificate at all; every whole one is in the inventory.
    const whole = certificatesIn(pki.paths.devicesDir).flatMap((path) => {
      try {
        return [new X509Certificate(readFileSync(path))]
      } catch {
        return []
      }
    })
    expect(whole.length).toBeGreaterThanOrEqual(400)
    for (const certificate of whole) expect(known.has(normalizeSerial(certificate.serialNumber))).toBe(true)

    const rerun = placeguard(dataDir, ...SIM)
    expect(rerun.status).not.toBe(0)
    expect(rerun.output).toContain('PG_ERR_PKI_DUPLICATE_ID')
    expect(rerun.output).toContain(`${DEVICES - 1} more of this batch`)
    expect(rerun.output).toContain('pki reconcile')

    expect(placeguard(dataDir, 'pki', 'reconcile').status).toBe(0)
    const completed = placeguard(dataDir, ...SIM)
    expect(completed.output).toContain('PG_ERR_SIM_BROKER') // provisioned, then no broker to talk to

    const active = pki.list().filter((row) => row.identity === 'certificate' && row.role === 'device' && row.effectiveStatus === 'active')
      .map((row) => row as Extract<typeof row, { identity: 'certificate' }>)
    expect(active.length).toBe(DEVICES)
    expect(pki.list().filter((row) => row.status === 'pending')).toEqual([])
    const serials = new Set(pki.list().map((row) => row.serial))
    expect(serials.size).toBe(pki.list().length) // no serial issued twice
    expect(statSync(pki.paths.devicesDir).mode & 0o777).toBe(0o700)
    for (const row of active) {
      const certificate = new X509Certificate(readFileSync(row.certificatePath!))
      expect(normalizeSerial(certificate.serialNumber)).toBe(normalizeSerial(row.serial))
      const keyPath = row.certificatePath!.replace(/\.crt$/, '.key')
      expect(certificate.checkPrivateKey(createPrivateKey(readFileSync(keyPath)))).toBe(true)
      expect(statSync(keyPath).mode & 0o777).toBe(0o600)
    }
    pki.close()
  }, 300_000)
})
