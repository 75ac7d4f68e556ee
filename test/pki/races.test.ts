import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { FleetPki, readCrl, normalizeSerial } from '../../pki/index.ts'

const PROCESS = join(import.meta.dirname, 'pki-process.ts')
const dirs: string[] = []
afterAll(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }) })

async function freshFleet (devices: string[]): Promise<FleetPki> {
  const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-pki-race-'))
  dirs.push(dataDir)
  const pki = new FleetPki(dataDir)
  await pki.init()
  await pki.issueMany(devices.map((deviceId) => ({ deviceId, kind: 'energy', site: 'harbour' })))
  return pki
}

/** Runs pki-process.ts; `onLine` sees each line as it comes. Resolves with every line once it exits 0. */
function run (args: string[], onLine: (line: string) => void = () => {}): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PROCESS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    const lines: string[] = []
    let partial = ''
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.stdout.on('data', (chunk: Buffer) => {
      const parts = (partial + chunk.toString()).split('\n')
      partial = parts.pop()!
      for (const line of parts) { lines.push(line); onLine(line) }
    })
    child.once('exit', (code) => code === 0 ? resolve(lines) : reject(new Error(`pki-process ${args[0]} exited ${code}: ${stderr}`)))
  })
}

describe('renew racing revoke, in two processes (issue 11)', () => {
  it('never leaves a certificate in service for a revoked device', async () => {
    const devices = Array.from({ length: 12 }, (_, i) => `race-${i}`)
    const pki = await freshFleet(devices)
    const dataDir = pki.paths.dir.replace(/\/pki$/, '')
    let startRevoking!: () => void
    const renewing = new Promise<void>((resolve) => { startRevoking = resolve })
    let renewed = 0
    const renewer = run(['renew', dataDir, '40', ...devices], (line) => { if (line.startsWith('renewed') && ++renewed === devices.length * 2) startRevoking() })
    await renewing
    await run(['revoke', dataDir, ...devices])
    const renewLines = await renewer

    // Every certificate of every device is revoked, and the files on disk are refused.
    const entries = pki.list().filter((entry) => devices.includes(entry.deviceId))
    expect(entries.filter((entry) => entry.effectiveStatus !== 'revoked').map((entry) => [entry.deviceId, entry.status])).toEqual([])
    const listed = (await readCrl(readFileSync(pki.paths.crl, 'utf8'), readFileSync(pki.paths.caCert, 'utf8'))).revokedSerials
    expect(entries.filter((entry) => !listed.has(normalizeSerial(entry.serial!))).map((entry) => entry.serial)).toEqual([])
    for (const id of devices) {
      const cert = join(pki.paths.devicesDir, `${id}.crt`)
      if (!existsSync(cert)) continue
      const verify = spawnSync('openssl', ['verify', '-CAfile', pki.paths.caCert, '-crl_check', '-CRLfile', pki.paths.crl, cert], { encoding: 'utf8' })
      expect(verify.status, `${id}: ${verify.stdout}`).not.toBe(0)
    }
    // And every renewal loop was stopped by the revocation, not by running out of rounds.
    expect(renewLines.filter((line) => line.startsWith('stopped')).length).toBe(devices.length)
    pki.close()
  }, 120_000)
})

describe('CRL writers in two processes (issue 11)', () => {
  it('never put an older CRL over a newer one: cRLNumber on disk only increases, and no revocation goes missing', async () => {
    const a = Array.from({ length: 40 }, (_, i) => `crl-a-${i}`)
    const b = Array.from({ length: 40 }, (_, i) => `crl-b-${i}`)
    const pki = await freshFleet([...a, ...b])
    const dataDir = pki.paths.dir.replace(/\/pki$/, '')
    const [linesA, linesB] = await Promise.all([run(['revoke', dataDir, ...a]), run(['revoke', dataDir, ...b])])
    for (const lines of [linesA, linesB]) {
      const seen = lines.map((line) => line.split(' ')).map(([, number, missing]) => ({ number: Number(number), missing: Number(missing) }))
      expect(seen.length).toBe(40)
      // Each process reads the file after each of its revocations: later reads never see a lower number,
      // and each sees every serial it has revoked so far.
      for (let i = 1; i < seen.length; i++) expect(seen[i]!.number).toBeGreaterThanOrEqual(seen[i - 1]!.number)
      expect(seen.filter((s) => s.missing > 0)).toEqual([])
    }
    const listed = (await readCrl(readFileSync(pki.paths.crl, 'utf8'), readFileSync(pki.paths.caCert, 'utf8'))).revokedSerials
    expect(listed.size).toBe(80)
    pki.close()
  }, 120_000)
})
