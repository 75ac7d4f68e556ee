/**
 * npm run bench:pki — time to issue device identities.
 *
 * Issues N (default 10,000) ECDSA P-256 identities through FleetPki into a
 * temporary data directory (keys, certificates, inventory rows, files), and
 * measures node-forge's RSA-2048 path on a small sample for comparison: the
 * reason PlaceGuard signs with @peculiar/x509 over WebCrypto instead.
 *
 *   npm run bench:pki -- [--devices 10000] [--forge-sample 20]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import forge from 'node-forge'
import { FleetPki } from '../pki/index.ts'
import { printTable, progressBar, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: { devices: { type: 'string', default: '10000' }, 'forge-sample': { type: 'string', default: '20' } } })
const devices = Number(values.devices)
const forgeSample = Number(values['forge-sample'])
const KINDS = ['flood', 'energy', 'housing'] as const

async function issueWithPlaceGuard (count: number, keyAlgorithm: 'ecdsa-p256' | 'rsa-2048'): Promise<{ elapsedMs: number, cpuMs: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-pki-'))
  try {
    const pki = new FleetPki(dataDir)
    await pki.init()
    const bar = progressBar(`issue ${keyAlgorithm}`, count)
    const started = performance.now()
    const cpuBefore = process.cpuUsage()
    await pki.issueMany(Array.from({ length: count }, (_, i) => ({
      deviceId: `dev-${i}`, kind: KINDS[i % 3]!, site: `site-${i % 20}`, keyAlgorithm,
    })), (done) => bar.update(done))
    const elapsedMs = performance.now() - started
    // Every thread's CPU (the signing workers' too): on a shared machine the wall time moves with others' load, this much less.
    const cpu = process.cpuUsage(cpuBefore)
    bar.stop()
    pki.close()
    return { elapsedMs, cpuMs: (cpu.user + cpu.system) / 1000 }
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** node-forge: RSA-2048 key in pure JS, then a certificate signed by an RSA CA. */
function issueWithForge (count: number): number {
  const caKeys = forge.pki.rsa.generateKeyPair(2048)
  const started = performance.now()
  for (let i = 0; i < count; i++) {
    const keys = forge.pki.rsa.generateKeyPair(2048)
    const cert = forge.pki.createCertificate()
    cert.publicKey = keys.publicKey
    cert.serialNumber = (i + 1).toString(16).padStart(2, '0')
    cert.validity.notBefore = new Date()
    cert.validity.notAfter = new Date(Date.now() + 365 * 86_400_000)
    cert.setSubject([{ name: 'commonName', value: `dev-${i}` }])
    cert.setIssuer([{ name: 'commonName', value: 'forge CA' }])
    cert.setExtensions([{ name: 'subjectAltName', altNames: [{ type: 6, value: `urn:placeguard:device:a:flood:dev-${i}` }] }])
    cert.sign(caKeys.privateKey, forge.md.sha256.create())
    forge.pki.certificateToPem(cert)
    forge.pki.privateKeyToPem(keys.privateKey)
  }
  return performance.now() - started
}

const ecdsa = await issueWithPlaceGuard(devices, 'ecdsa-p256')
const ecdsaMs = ecdsa.elapsedMs
const rsaSample = Math.min(devices, 500)
const rsa = await issueWithPlaceGuard(rsaSample, 'rsa-2048')
const rsaMs = rsa.elapsedMs
const forgeCpuBefore = process.cpuUsage()
const forgeMs = issueWithForge(forgeSample)
const forgeCpu = process.cpuUsage(forgeCpuBefore)

const rows = [
  { method: 'PlaceGuard ECDSA P-256', devices, totalS: round(ecdsaMs / 1000, 2), cpuS: round(ecdsa.cpuMs / 1000, 2), perDeviceMs: round(ecdsaMs / devices, 3), [`${devices}DevicesS`]: round(ecdsaMs / 1000, 1) },
  { method: 'PlaceGuard RSA-2048', devices: rsaSample, totalS: round(rsaMs / 1000, 2), cpuS: round(rsa.cpuMs / 1000, 2), perDeviceMs: round(rsaMs / rsaSample, 3), [`${devices}DevicesS`]: round(rsaMs / rsaSample * devices / 1000, 1) },
  { method: 'node-forge RSA-2048', devices: forgeSample, totalS: round(forgeMs / 1000, 2), cpuS: round((forgeCpu.user + forgeCpu.system) / 1e6, 2), perDeviceMs: round(forgeMs / forgeSample, 1), [`${devices}DevicesS`]: round(forgeMs / forgeSample * devices / 1000, 0) },
]
printTable(rows)
process.stdout.write(`\n${devices} ECDSA identities in ${round(ecdsaMs / 1000, 2)} s, ${round(ecdsa.cpuMs / 1000, 2)} s of CPU, load average ${loadavg()[0]!.toFixed(1)} (target ≤ 3 s for 10,000); node-forge RSA would take ≈ ${round(forgeMs / forgeSample * devices / 60_000, 0)} min — ${round(forgeMs / forgeSample / (ecdsaMs / devices), 0)}× slower per device.\n`)
process.stdout.write(`results: ${saveResults('pki', { at: new Date().toISOString(), cores: (await import('node:os')).availableParallelism(), rows })}\n`)
