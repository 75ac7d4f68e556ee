/**
 * firmware-vulnerable with synced advisories, through Detection and its
 * SQLite alert book: a CISA-shaped advisory synced from a mirror
 * directory, devices with vendor and model from the inventory. The alert
 * carries the advisory id, CVEs, CVSS, remediation and match confidence; a
 * firmware update out of the range resolves it; VEX not-affected is
 * honoured; the hand-written denylist still alerts as before.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SqliteAdvisoryStore, syncCsafProvider } from '../../advisories/index.ts'
import { Detection } from '../../detection/index.ts'
import type { InventoryEntry } from '../../pki/index.ts'
import { AdvisoryIndex } from '../../shared/advisory-match.ts'
import { createLogger } from '../../shared/logger.ts'
import type { StoredPoint } from '../../shared/stored-point.ts'
import { advisoryFile, writeProvider } from '../helpers/csaf-provider.ts'
import { deviceCertificate } from '../helpers/api-source.ts'

let dir: string
let detection: Detection
let seq = 0

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'placeguard-fw-advisories-'))
  const mirror = join(dir, 'mirror')
  writeProvider(mirror, 'https://csaf.example.org/.well-known/csaf', [
    advisoryFile({ id: 'ICSA-26-030-01', cves: ['CVE-2026-3001', 'CVE-2026-3002'], cvss: [9.8, 6.5], remediation: 'Acme Metering recommends updating to V5.3.0 or later.', products: [
      { vendor: 'Acme Metering', model: 'EM-400', ranges: ['vers:generic/>=5.0.0|<5.3.0'] },
      { vendor: 'Acme Metering', model: 'EM-400', versions: ['5.2.9'], status: 'known_not_affected' },
    ] }),
    advisoryFile({ id: 'ICSA-26-030-02', cves: ['CVE-2026-3003'], cvss: [7.1], products: [{ vendor: 'Riverside Sensors', model: 'FL 2', ranges: ['<V3.0.29'] }] }),
  ])
  const store = new SqliteAdvisoryStore(join(dir, 'advisories.db'))
  expect(await syncCsafProvider(mirror, { store })).toMatchObject({ new: 2, refused: [] })
  const index = new AdvisoryIndex(store.list())
  store.close()
  detection = new Detection({ dataDir: dir, logger: createLogger({ level: 'silent' }), store: () => {}, certificateCheckMs: 0 })
  const entry = (id: string, kind: 'energy' | 'flood', vendor: string | null, model: string | null): InventoryEntry => ({ ...deviceCertificate({ id, kind, site: 'depot' }, ++seq), vendor, model })
  detection.checkCertificates([
    entry('energy-1', 'energy', 'ACME metering', 'em-400'),
    entry('energy-2', 'energy', 'Acme Metering', 'EM-400'),
    entry('energy-3', 'energy', null, null),
    entry('flood-1', 'flood', 'Riverside  Sensors', 'FL 2'),
  ])
  detection.setAdvisories(index)
})

afterEach(async () => {
  await detection.stop()
  rmSync(dir, { recursive: true, force: true })
})

function report (device: string, kind: 'energy' | 'flood', fw: string): void {
  const point: StoredPoint = { measurement: kind, tags: { device, site: 'depot' }, fields: { seq: ++seq, fw, ...(kind === 'energy' ? { kwh: seq, voltage: 230 } : { level: 0.2 }) }, timestampMs: Date.now() }
  detection.onTelemetry(point)
}

const vulnerable = async () => (await detection.alerts.list({ policy: 'firmware-vulnerable' })).map((a) => ({ device: a.deviceId, status: a.status, evidence: a.evidence, summary: a.summary }))

describe('firmware-vulnerable with synced advisories', () => {
  it('alerts with the advisory, CVEs, CVSS, remediation and confidence, and resolves once the firmware leaves the range', async () => {
    report('energy-1', 'energy', '5.1.0')
    const [alert] = await vulnerable()
    expect(alert).toMatchObject({
      device: 'energy-1', status: 'open',
      summary: 'firmware 5.1.0 of ACME metering em-400 is affected by ICSA-26-030-01 (CVE-2026-3001, CVE-2026-3002, CVSS 9.8)',
      evidence: { fw: '5.1.0', advisory: 'ICSA-26-030-01', cves: 'CVE-2026-3001,CVE-2026-3002', cvss: 9.8, confidence: 'high', remediation: 'vendor_fix: Acme Metering recommends updating to V5.3.0 or later.', range: 'vers:generic/>=5.0.0|<5.3.0' },
    })
    report('energy-1', 'energy', '5.3.0')
    expect(await vulnerable()).toMatchObject([{ device: 'energy-1', status: 'resolved' }])
  })

  it('labels a vendor-style range a low-confidence match', async () => {
    report('flood-1', 'flood', 'V3.0.3')
    expect(await vulnerable()).toMatchObject([{ device: 'flood-1', evidence: { advisory: 'ICSA-26-030-02', confidence: 'low', cvss: 7.1 }, summary: expect.stringContaining('low-confidence match on "<V3.0.29"') }])
  })

  it('honours VEX known_not_affected, and matches nothing for a device without vendor and model', async () => {
    report('energy-2', 'energy', '5.2.9')
    report('energy-3', 'energy', '5.1.0')
    expect(await vulnerable()).toEqual([])
  })

  it('keeps the hand-written denylist alerting as before', async () => {
    report('energy-3', 'energy', '5.2.2')
    expect(await vulnerable()).toMatchObject([{ device: 'energy-3', evidence: { advisory: 'EXAMPLE-2026-0001', range: '5.2.0 - 5.2.3' } }])
  })
})
