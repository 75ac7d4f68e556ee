import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'
import { PlaceGuardError, invalidInput } from '../shared/errors.ts'
import { assertId, assertKind, type DeviceKind, printable } from '../shared/ids.ts'
import { type Clock, systemClock } from '../shared/clock.ts'
import {
  createCaCertificate, createCrl, createLeafCertificate, generateKey, type KeyAlgorithm, loadSigner,
  minutesAgo, newSerialNumber, parseCsr, type Signer,
} from './certificates.ts'
import { writeFileAtomic, writeFilesAtomic } from '../shared/files.ts'
import type { Identity } from './identity.ts'
import { effectiveStatus, Inventory, type InventoryRecord, type InventoryStatus } from './inventory.ts'
import { type LeafJob, sha256Hex, signLeaves } from './leaf-issuer.ts'
import { deviceFiles, pkiPaths, type PkiPaths } from './paths.ts'
import { readCrl } from './crl.ts'

const DAY_MS = 86_400_000
const PRIVATE = 0o600

export interface PkiOptions {
  clock?: Clock
  /** Lifetime of each CRL; the broker refuses every client once it lapses, so refresh before. */
  crlValidityDays?: number
}

export interface InitOptions {
  caCommonName?: string
  caValidityDays?: number
  serverValidityDays?: number
  /** Extra server names (DNS) besides localhost, 127.0.0.1 and ::1. */
  serverNames?: string[]
}

export interface ValidityInput {
  days?: number
  notBefore?: string | Date
  notAfter?: string | Date
}

export interface IssueRequest extends ValidityInput {
  deviceId: string
  kind: string
  site: string
  keyAlgorithm?: KeyAlgorithm
  /** Where to write the key and certificate; default `<data-dir>/pki/devices`. */
  outDir?: string
}

export interface IssuedDevice {
  record: InventoryRecord
  certificatePath: string
  /** Absent for `pki sign`: the device kept its key. */
  privateKeyPath?: string
}

export interface InventoryEntry extends InventoryRecord {
  effectiveStatus: InventoryStatus
}

export const DEFAULT_DEVICE_DAYS = 365

/**
 * The fleet's certificate authority: device identity, the inventory of every
 * certificate signed, and the CRL the broker enforces.
 */
export class FleetPki {
  readonly paths: PkiPaths
  readonly #clock: Clock
  readonly #crlValidityDays: number
  #inventory: Inventory | undefined
  #signer: Signer | undefined

  constructor (dataDir: string, options: PkiOptions = {}) {
    this.paths = pkiPaths(dataDir)
    this.#clock = options.clock ?? systemClock
    this.#crlValidityDays = options.crlValidityDays ?? 30
  }

  get initialized (): boolean {
    return existsSync(this.paths.caCert) && existsSync(this.paths.caKey)
  }

  /** Creates the CA, server and collector certificates and an empty CRL. Never overwrites a CA. */
  async init (options: InitOptions = {}): Promise<void> {
    if (existsSync(this.paths.caCert) || existsSync(this.paths.caKey)) {
      throw new PlaceGuardError('PG_ERR_PKI_CA_EXISTS', `a fleet CA already exists in ${this.paths.dir}`, {
        hint: 'every device certificate chains to it; move the directory away yourself if you really mean to start over',
      })
    }
    mkdirSync(this.paths.dir, { recursive: true, mode: 0o700 })
    const now = this.#now()
    const caKey = await generateKey('ecdsa-p256')
    const caPem = await createCaCertificate(caKey, options.caCommonName ?? 'PlaceGuard Fleet CA',
      new Date(now.getTime() + (options.caValidityDays ?? 3650) * DAY_MS))
    const signer = await loadSigner(caPem, caKey.privateKeyPem)
    const serverDays = options.serverValidityDays ?? 825
    const server = await this.#signService(signer, 'localhost', undefined, 'server', serverDays,
      ['localhost', ...(options.serverNames ?? [])], ['127.0.0.1', '::1'])
    const collector = await this.#signService(signer, 'collector', { role: 'collector', name: 'collector' }, 'client', serverDays)
    const crl = await createCrl(signer, [], 1, new Date(now.getTime() + this.#crlValidityDays * DAY_MS))
    // The CA key is written last: until it exists, `initialized` stays false and a retry starts clean.
    writeFilesAtomic([
      { path: this.paths.serverCert, content: server.certificatePem },
      { path: this.paths.serverKey, content: server.privateKeyPem, mode: PRIVATE },
      { path: this.paths.collectorCert, content: collector.certificatePem },
      { path: this.paths.collectorKey, content: collector.privateKeyPem, mode: PRIVATE },
      { path: this.paths.crl, content: crl },
      { path: this.paths.caCert, content: caPem },
      { path: this.paths.caKey, content: caKey.privateKeyPem, mode: PRIVATE },
    ])
    const inventory = this.#openInventory()
    inventory.transaction(() => {
      inventory.insert(server.record)
      inventory.insert(collector.record)
      inventory.nextCrlNumber()
    })
    this.#signer = signer
  }

  /** Issues a key and certificate for one device (`pki issue`). */
  async issue (request: IssueRequest): Promise<IssuedDevice> {
    const [issued] = await this.issueMany([request])
    return issued!
  }

  /**
   * Issues many devices at once — the simulator's and the benchmark's path.
   * All requests are validated first; the inventory rows go in one
   * transaction, so either every device is issued or none is.
   */
  async issueMany (requests: IssueRequest[], onProgress?: (done: number, total: number) => void): Promise<IssuedDevice[]> {
    return this.#issue(requests, false, onProgress)
  }

  /**
   * Renews a device (`pki renew`): a new key and certificate for the same
   * identity (kind and site kept), written over the device's files; the
   * old certificate becomes `superseded` — still valid, not revoked — so
   * the device keeps working until it has switched. Revoking the device
   * revokes both. This is how a cert-expiry alert is answered.
   */
  async renew (deviceId: string, options: Omit<IssueRequest, 'deviceId' | 'kind' | 'site'> = {}): Promise<IssuedDevice & { superseded: InventoryRecord }> {
    assertId('deviceId', deviceId)
    const current = this.#openInventory().activeFor('device', deviceId)
    if (!current || !current.kind || !current.site) {
      throw new PlaceGuardError('PG_ERR_PKI_UNKNOWN_DEVICE', `deviceId: no active certificate for "${deviceId}" to renew`, {
        field: 'deviceId', hint: 'issue one with `placeguard pki issue`',
      })
    }
    const [issued] = await this.#issue([{ ...options, deviceId, kind: current.kind, site: current.site }], true)
    return { ...issued!, superseded: { ...current, status: 'superseded' } }
  }

  async #issue (requests: IssueRequest[], renewing: boolean, onProgress?: (done: number, total: number) => void): Promise<IssuedDevice[]> {
    const signer = await this.#loadSigner()
    const inventory = this.#openInventory()
    const active = inventory.activeDeviceIds()
    const seen = new Set<string>()
    const jobs: Array<LeafJob & { kind: DeviceKind, site: string }> = requests.map((request) => {
      const deviceId = assertId('deviceId', request.deviceId)
      const kind = assertKind('--kind', request.kind)
      const site = assertId('--site', request.site)
      if ((active.has(deviceId) && !renewing) || seen.has(deviceId)) throw duplicateId(deviceId)
      seen.add(deviceId)
      const { notBefore, notAfter } = this.#validity(request, signer)
      const files = deviceFiles(request.outDir ?? this.paths.devicesDir, deviceId)
      return {
        kind, site,
        certificatePath: files.cert,
        privateKeyPath: files.key,
        serialNumber: newSerialNumber(),
        commonName: deviceId,
        identity: { role: 'device', deviceId, kind, site },
        notBefore: notBefore.toISOString(),
        notAfter: notAfter.toISOString(),
        keyAlgorithm: request.keyAlgorithm ?? 'ecdsa-p256',
      }
    })
    for (const dir of new Set(jobs.map((job) => dirname(job.certificatePath)))) mkdirSync(dir, { recursive: true, mode: 0o700 })
    // A renewal writes over the device's files: the old ones are set aside until the inventory commits.
    const previous = (path: string): string => `${path}.previous`
    const files = jobs.flatMap((job) => [job.certificatePath, job.privateKeyPath])
    if (renewing) for (const path of files) if (existsSync(path)) renameSync(path, previous(path))
    const removeFiles = (): void => {
      for (const path of files) {
        rmSync(path, { force: true })
        if (renewing && existsSync(previous(path))) renameSync(previous(path), path)
      }
    }
    let signed
    try {
      signed = await signLeaves({ certificatePem: signer.certificate.toString('pem'), privateKeyPem: readFileSync(this.paths.caKey, 'utf8') },
        jobs, (done) => onProgress?.(done, jobs.length))
    } catch (error) {
      removeFiles()
      throw error
    }
    const issuedAt = this.#now().toISOString()
    const records = jobs.map((job, i): InventoryRecord => ({
      serial: job.serialNumber, deviceId: job.commonName, role: 'device', kind: job.kind, site: job.site,
      notBefore: job.notBefore, notAfter: job.notAfter, keyAlgorithm: job.keyAlgorithm,
      status: 'active', issuedAt, revokedAt: null, fingerprint: signed[i]!.fingerprint,
    }))
    try {
      inventory.transaction(() => {
        for (const record of records) {
          if (renewing) inventory.supersede('device', record.deviceId)
          inventory.insert(record)
        }
      })
    } catch (error) {
      // The inventory is the record of what exists: files it does not list must not either.
      removeFiles()
      throw error
    }
    if (renewing) for (const path of files) rmSync(previous(path), { force: true })
    return jobs.map((job, i) => ({ record: records[i]!, certificatePath: job.certificatePath, privateKeyPath: job.privateKeyPath }))
  }

  /**
   * Signs a device's own CSR (`pki sign`): the private key never leaves the
   * device. The id is the CSR's CN, checked like any other.
   */
  async signCsr (csrPem: string, request: Omit<IssueRequest, 'deviceId' | 'keyAlgorithm'>): Promise<IssuedDevice> {
    const signer = await this.#loadSigner()
    let csr
    try {
      csr = await parseCsr(csrPem)
    } catch (error) {
      throw new PlaceGuardError('PG_ERR_PKI_CSR_INVALID', `csr: ${(error as Error).message}`, {
        field: 'csr', hint: 'give a PEM PKCS#10 request (openssl req -new -key device.key -subj /CN=<deviceId>)', cause: error,
      })
    }
    if (!csr.algorithm) throw invalidInput('csr', 'the key is neither ECDSA P-256 nor RSA ≥ 2048 bits')
    const deviceId = assertId('csr CN', csr.commonName)
    const kind = assertKind('--kind', request.kind)
    const site = assertId('--site', request.site)
    const inventory = this.#openInventory()
    if (inventory.activeFor('device', deviceId)) throw duplicateId(deviceId)
    const { notBefore, notAfter } = this.#validity(request, signer)
    const certificate = await createLeafCertificate(signer, {
      publicKeyDer: csr.publicKeyDer, commonName: deviceId, identity: { role: 'device', deviceId, kind, site },
      usage: 'client', notBefore, notAfter, serialNumber: newSerialNumber(),
    })
    const record: InventoryRecord = {
      serial: certificate.serialNumber, deviceId, role: 'device', kind, site,
      notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString(), keyAlgorithm: csr.algorithm,
      status: 'active', issuedAt: this.#now().toISOString(), revokedAt: null, fingerprint: sha256Hex(certificate.rawData),
    }
    const files = deviceFiles(request.outDir ?? this.paths.devicesDir, deviceId)
    inventory.transaction(() => {
      inventory.insert(record)
      writeFileAtomic(files.cert, certificate.toString('pem'))
    })
    return { record, certificatePath: files.cert }
  }

  /**
   * Revokes every active certificate of a device and rewrites the CRL. A
   * running broker watches the CRL: new handshakes are refused and a live
   * session is dropped within seconds.
   */
  async revoke (deviceId: string): Promise<InventoryRecord[]> {
    assertId('deviceId', deviceId)
    const signer = await this.#loadSigner()
    const inventory = this.#openInventory()
    const now = this.#now()
    const revoked = inventory.revoke('device', deviceId, now)
    if (revoked.length === 0) {
      throw new PlaceGuardError('PG_ERR_PKI_UNKNOWN_DEVICE', `deviceId: no active certificate for "${deviceId}"`, {
        field: 'deviceId', hint: 'see `placeguard pki list`',
      })
    }
    await this.#writeCrl(signer, inventory, now)
    return revoked
  }

  /** Re-signs the CRL with a fresh nextUpdate; run it from cron well inside crlValidityDays. */
  async refreshCrl (): Promise<void> {
    await this.#writeCrl(await this.#loadSigner(), this.#openInventory(), this.#now())
  }

  /**
   * Re-signs the CRL if it lapses within `withinDays` (or cannot be read);
   * answers the nextUpdate in force afterwards. Once a CRL lapses OpenSSL
   * refuses every client, so a running broker calls this periodically.
   */
  async refreshCrlIfDue (withinDays = 7): Promise<{ refreshed: boolean, nextUpdate: Date | undefined }> {
    this.#requireCa()
    let nextUpdate: Date | undefined
    try {
      nextUpdate = (await readCrl(readFileSync(this.paths.crl, 'utf8'), readFileSync(this.paths.caCert, 'utf8'))).nextUpdate
    } catch {
      nextUpdate = undefined // unreadable or not ours: re-sign
    }
    if (nextUpdate && nextUpdate.getTime() - this.#now().getTime() > withinDays * DAY_MS) return { refreshed: false, nextUpdate }
    await this.refreshCrl()
    return { refreshed: true, nextUpdate: (await readCrl(readFileSync(this.paths.crl, 'utf8'), readFileSync(this.paths.caCert, 'utf8'))).nextUpdate }
  }

  list (): InventoryEntry[] {
    this.#requireCa()
    const now = this.#now()
    return this.#openInventory().list().map((record) => ({ ...record, effectiveStatus: effectiveStatus(record, now) }))
  }

  close (): void {
    this.#inventory?.close()
    this.#inventory = undefined
  }

  async #writeCrl (signer: Signer, inventory: Inventory, now: Date): Promise<void> {
    const entries = inventory.revokedUnexpired(now).map((record) => ({ serialNumber: record.serial, revokedAt: new Date(record.revokedAt!) }))
    const crl = await createCrl(signer, entries, inventory.nextCrlNumber(), new Date(now.getTime() + this.#crlValidityDays * DAY_MS))
    writeFileAtomic(this.paths.crl, crl)
  }

  async #signService (signer: Signer, commonName: string, identity: Identity | undefined, usage: 'client' | 'server',
    days: number, dnsNames?: string[], ipAddresses?: string[]): Promise<{ certificatePem: string, privateKeyPem: string, record: InventoryRecord }> {
    const now = this.#now()
    const key = await generateKey('ecdsa-p256')
    const notBefore = minutesAgo(5, now.getTime())
    const notAfter = new Date(now.getTime() + days * DAY_MS)
    const certificate = await createLeafCertificate(signer, {
      publicKeyDer: key.publicKeyDer, commonName, identity, usage, notBefore, notAfter,
      serialNumber: newSerialNumber(), dnsNames, ipAddresses,
    })
    return {
      certificatePem: certificate.toString('pem'),
      privateKeyPem: key.privateKeyPem,
      record: {
        serial: certificate.serialNumber, deviceId: commonName, role: usage === 'server' ? 'server' : 'collector',
        kind: null, site: null, notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString(),
        keyAlgorithm: 'ecdsa-p256', status: 'active', issuedAt: now.toISOString(), revokedAt: null,
        fingerprint: sha256Hex(certificate.rawData),
      },
    }
  }

  #validity (input: ValidityInput, signer: Signer): { notBefore: Date, notAfter: Date } {
    const now = this.#now()
    if (input.days !== undefined && (input.notBefore !== undefined || input.notAfter !== undefined)) {
      throw invalidInput('--days', 'give either --days or --not-before/--not-after, not both')
    }
    let notBefore: Date
    let notAfter: Date
    if (input.notBefore !== undefined || input.notAfter !== undefined) {
      notBefore = input.notBefore === undefined ? minutesAgo(5, now.getTime()) : parseDate('--not-before', input.notBefore)
      if (input.notAfter === undefined) throw invalidInput('--not-after', 'is required with --not-before')
      notAfter = parseDate('--not-after', input.notAfter)
    } else {
      const days = input.days ?? DEFAULT_DEVICE_DAYS
      if (!Number.isInteger(days) || days < 1 || days > 3650) throw invalidInput('--days', `${days} is not a whole number of days from 1 to 3650`)
      notBefore = minutesAgo(5, now.getTime())
      notAfter = new Date(now.getTime() + days * DAY_MS)
    }
    if (notAfter.getTime() <= notBefore.getTime()) {
      throw invalidInput('--not-after', `${notAfter.toISOString()} is not after --not-before ${notBefore.toISOString()}`)
    }
    // RFC 5280 §6.1.3: a certificate cannot outlive its issuer in any useful way.
    const caNotAfter = signer.certificate.notAfter
    if (notAfter.getTime() > caNotAfter.getTime()) {
      throw invalidInput('--not-after', `${notAfter.toISOString()} is after the CA expires (${caNotAfter.toISOString()})`)
    }
    return { notBefore, notAfter }
  }

  async #loadSigner (): Promise<Signer> {
    this.#requireCa()
    this.#signer ??= await loadSigner(readFileSync(this.paths.caCert, 'utf8'), readFileSync(this.paths.caKey, 'utf8'))
    return this.#signer
  }

  #requireCa (): void {
    if (!this.initialized) {
      throw new PlaceGuardError('PG_ERR_PKI_NO_CA', `no fleet CA in ${this.paths.dir}`, {
        hint: 'run `placeguard pki init` with the same --data-dir first',
      })
    }
  }

  #openInventory (): Inventory {
    this.#inventory ??= new Inventory(this.paths.inventory)
    return this.#inventory
  }

  #now (): Date {
    return new Date(this.#clock.now())
  }
}

function parseDate (field: string, value: string | Date): Date {
  const date = value instanceof Date ? value : new Date(value)
  if (Number.isNaN(date.getTime())) throw invalidInput(field, `"${printable(String(value))}" is not an ISO 8601 date`, 'e.g. 2027-01-31T00:00:00Z')
  return date
}

function duplicateId (deviceId: string): PlaceGuardError {
  return new PlaceGuardError('PG_ERR_PKI_DUPLICATE_ID', `deviceId: "${deviceId}" already has an active certificate`, {
    field: 'deviceId', hint: 'revoke it first (`placeguard pki revoke`), or choose another id',
  })
}

