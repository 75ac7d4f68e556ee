/**
 * npm run bench:pki — time to issue device identities.
 *
 * Issues N (default 10,000) ECDSA P-256 identities through FleetPki into a
 * temporary data directory (keys, certificates, inventory rows), once as
 * two files a device and once into one archive (`pki issue-batch
 * --archive`), and
 * measures node-forge's RSA-2048 path on a small sample for comparison: the
 * reason PlaceGuard signs with @peculiar/x509 over WebCrypto instead.
 * Beside them, the floor (issueFloor): the bare steps any issuer on Node
 * pays for as many identities on this machine.
 *
 *   npm run bench:pki -- [--devices 10000] [--forge-sample 20]
 */
import { execFile } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Worker } from 'node:worker_threads'
import forge from 'node-forge'
import { FleetPki, signingThreadsFor } from '../pki/index.ts'
import { printTable, progressBar, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: { devices: { type: 'string', default: '10000' }, 'forge-sample': { type: 'string', default: '20' } } })
const devices = Number(values.devices)
const forgeSample = Number(values['forge-sample'])
const KINDS = ['flood', 'energy', 'housing'] as const

async function issueWithPlaceGuard (count: number, keyAlgorithm: 'ecdsa-p256' | 'rsa-2048', into: 'files' | 'archive' = 'files'): Promise<{ elapsedMs: number, cpuMs: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-pki-'))
  try {
    const pki = new FleetPki(dataDir)
    await pki.init()
    const bar = progressBar(`issue ${keyAlgorithm} into ${into}`, count)
    const started = performance.now()
    const cpuBefore = process.cpuUsage()
    // As `pki issue-batch` does it: two files a device, or one archive for the batch (`--archive`).
    await pki.issueMany(Array.from({ length: count }, (_, i) => ({
      deviceId: `dev-${i}`, kind: KINDS[i % 3]!, site: `site-${i % 20}`, keyAlgorithm,
    })), (done) => bar.update(done), { archive: into === 'archive' ? join(dataDir, 'batch.tar') : undefined })
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

/**
 * The floor under any issuer on Node, on this machine: what issuing N
 * identities costs with nothing but the unavoidable steps, split over the
 * same number of worker threads as FleetPki — a P-256 key made, a
 * certificate-sized buffer signed with ECDSA by the CA key, the key and a
 * certificate-sized file created afresh (O_EXCL) in one directory, and one
 * `sync -f` at the end. No DER, no inventory, no PEM of a real certificate.
 * Where this alone is above the target, no change to PlaceGuard's issuer
 * meets it here.
 */
async function issueFloor (count: number): Promise<{ elapsedMs: number, cpuMs: number, cryptoMs: number, filesMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'placeguard-bench-pki-floor-'))
  const workers = signingThreadsFor(count)
  const share = Math.ceil(count / workers)
  const code = `
    const { generateKeyPairSync, sign } = require('node:crypto')
    const { writeFileSync } = require('node:fs')
    const { join } = require('node:path')
    const { parentPort, workerData: { dir, from, to, caKey } } = require('node:worker_threads')
    const tbs = Buffer.alloc(420, 7)
    let cryptoNs = 0n
    let filesNs = 0n
    for (let i = from; i < to; i++) {
      const t0 = process.hrtime.bigint()
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' })
      const spki = publicKey.export({ type: 'spki', format: 'der' })
      const signature = sign('sha256', Buffer.concat([tbs, spki]), { key: caKey, dsaEncoding: 'der' })
      const cert = Buffer.concat([tbs, spki, signature]).toString('base64')
      const t1 = process.hrtime.bigint()
      writeFileSync(join(dir, 'dev-' + i + '.key'), keyPem, { mode: 0o600, flag: 'wx' })
      writeFileSync(join(dir, 'dev-' + i + '.crt'), '-----BEGIN CERTIFICATE-----\\n' + cert + '\\n-----END CERTIFICATE-----\\n', { mode: 0o644, flag: 'wx' })
      filesNs += process.hrtime.bigint() - t1
      cryptoNs += t1 - t0
    }
    parentPort.postMessage({ cryptoMs: Number(cryptoNs / 1000000n), filesMs: Number(filesNs / 1000000n) })
  `
  try {
    const caKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' })
    const started = performance.now()
    const cpuBefore = process.cpuUsage()
    const parts = await Promise.all(Array.from({ length: workers }, (_, w) => new Promise<{ cryptoMs: number, filesMs: number }>((resolve, reject) => {
      const worker = new Worker(code, { eval: true, workerData: { dir, from: w * share, to: Math.min(count, (w + 1) * share), caKey } })
      worker.once('message', resolve)
      worker.once('error', reject)
    })))
    await syncFilesystemOf(dir)
    const cpu = process.cpuUsage(cpuBefore)
    // Per thread, averaged: the wall time each part took while the other workers ran beside it.
    return { elapsedMs: performance.now() - started, cpuMs: (cpu.user + cpu.system) / 1000, cryptoMs: parts.reduce((sum, p) => sum + p.cryptoMs, 0) / workers, filesMs: parts.reduce((sum, p) => sum + p.filesMs, 0) / workers }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** syncfs(2) of the filesystem holding `dir`, as FleetPki's batch sync does it (pki/batch-sync.ts). */
async function syncFilesystemOf (dir: string): Promise<void> {
  await new Promise<void>((resolve, reject) => execFile('sync', ['-f', dir], (error) => error ? reject(error) : resolve()))
}

/**
 * Each run ends by removing its 20,000 files; the next run's one sync
 * would write those removals back too. Settled first, outside the timing.
 */
const settle = async (): Promise<void> => await syncFilesystemOf(tmpdir())

await settle()
const ecdsa = await issueWithPlaceGuard(devices, 'ecdsa-p256')
await settle()
const archived = await issueWithPlaceGuard(devices, 'ecdsa-p256', 'archive')
await settle()
const floor = await issueFloor(devices)
await settle()
const ecdsaMs = ecdsa.elapsedMs
const rsaSample = Math.min(devices, 500)
const rsa = await issueWithPlaceGuard(rsaSample, 'rsa-2048')
const forgeCpuBefore = process.cpuUsage()
const forgeMs = issueWithForge(forgeSample)
const forgeCpu = process.cpuUsage(forgeCpuBefore)

/** One method's row: `sample` identities issued in `elapsedMs` with `cpuMs` of CPU, scaled to `devices` for the last column. */
const rowOf = (method: string, sample: number, run: { elapsedMs: number, cpuMs: number }, perDeviceDigits = 3, scaledDigits = 1) => ({
  method, devices: sample, totalS: round(run.elapsedMs / 1000, 2), cpuS: round(run.cpuMs / 1000, 2), perDeviceMs: round(run.elapsedMs / sample, perDeviceDigits),
  [`${devices}DevicesS`]: round(run.elapsedMs / sample * devices / 1000, scaledDigits),
})
const rows = [
  rowOf('PlaceGuard ECDSA P-256', devices, ecdsa),
  rowOf('PlaceGuard ECDSA P-256, one archive', devices, archived),
  rowOf('floor: key, signature, two files, one sync', devices, floor),
  rowOf('PlaceGuard RSA-2048', rsaSample, rsa),
  rowOf('node-forge RSA-2048', forgeSample, { elapsedMs: forgeMs, cpuMs: (forgeCpu.user + forgeCpu.system) / 1000 }, 1, 0),
]
printTable(rows)
process.stdout.write(`\n${devices} ECDSA identities in ${round(ecdsaMs / 1000, 2)} s as files, ${round(archived.elapsedMs / 1000, 2)} s into one archive; ${round(ecdsa.cpuMs / 1000, 2)} s of CPU as files (the floor: ${round(floor.elapsedMs / 1000, 2)} s, of which a thread spent ${round(floor.cryptoMs / 1000, 2)} s on keys and signatures and ${round(floor.filesMs / 1000, 2)} s creating files), load average ${loadavg()[0]!.toFixed(1)} (target ≤ 3 s for 10,000); node-forge RSA would take ≈ ${round(forgeMs / forgeSample * devices / 60_000, 0)} min — ${round(forgeMs / forgeSample / (ecdsaMs / devices), 0)}× slower per device.\n`)
process.stdout.write(`results: ${saveResults('pki', { at: new Date().toISOString(), cores: (await import('node:os')).availableParallelism(), rows })}\n`)
