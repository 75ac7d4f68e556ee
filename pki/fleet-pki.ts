import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs'
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto'
import { dirname, join } from 'node:path'
import { invalidInput, PlaceGuardError } from '../shared/errors.ts'
import { assertId, type DeviceKind } from '../shared/ids.ts'
import type { LorawanNetwork } from '../shared/lorawan.ts'
import { type Clock, systemClock } from '../shared/clock.ts'
import {
  createCaCertificate, createLeafCertificate, generateKey, type KeyAlgorithm, keyAlgorithmOf, loadSigner,
  newSerialNumber, parseCsr, type Signer,
} from './certificates.ts'
import { writeFileAtomic, writeFilesAtomic } from '../shared/files.ts'
import { type AccessWindow, assertAccessWindows } from '../shared/access-windows.ts'
import { type Identity, identityFromSubjectAltName } from './identity.ts'
import {
  assertCsrKeyAlgorithm, assertDeviceId, assertDeviceIdentity, assertIntegrationIdentity, assertLorawanDevice, assertSerial, assertSupplierIdentity,
} from './identity-rules.ts'
import { writeSupplierGrants } from './supplier-grants-file.ts'
import { newTicketSecret, readOrCreateTicketSecret, TICKET_SECRET_FILE } from './tls-ticket-secret.ts'
import { Inventory, type InventoryRecord, type InventoryStatus, type LorawanDeviceRecord, type SupplierRecord } from './inventory.ts'
import { type DeviceProduct, deviceProductOf, DeviceProducts } from './device-products.ts'
import { type LeafJob, sha256Hex, signLeaves, SigningWorkers } from './leaf-issuer.ts'
import { syncBatch } from './batch-sync.ts'
import { archiveMemberPath, readTarMembers, splitArchiveMemberPath, tarEnd, tarEntry } from './identity-archive.ts'
import { deviceFiles, pkiPaths, type PkiPaths } from './paths.ts'
import { certificateOrigin, normalizeSerial, readCrl } from './crl.ts'
import { crlNumberOf, signCrlPem } from './crl-der.ts'
import {
  crlKeepExpiredSince, crlRefreshDue, crlWindow, DEFAULT_CA_DAYS, DEFAULT_CRL_DAYS, DEFAULT_CRL_KEEP_EXPIRED_DAYS,
  DEFAULT_SERVICE_DAYS, deviceValidity, effectiveStatus, type ValidityInput, windowFor,
} from './validity.ts'

const PRIVATE = 0o600

export interface PkiOptions {
  clock?: Clock
  /** Lifetime of each CRL (default 30); the broker refuses every client once it lapses, so refresh before. */
  crlValidityDays?: number
  /** How long a revoked certificate stays in the CRL after its notAfter (default 90; see Inventory.crlEntries). */
  crlKeepExpiredDays?: number
}

export interface InitOptions {
  caCommonName?: string
  caValidityDays?: number
  serverValidityDays?: number
  /** Extra server names (DNS) besides localhost, 127.0.0.1 and ::1. */
  serverNames?: string[]
}

export interface IssueRequest extends ValidityInput {
  deviceId: string
  kind: string
  site: string
  keyAlgorithm?: KeyAlgorithm
  /** Where to write the key and certificate; default `<data-dir>/pki/devices`. */
  outDir?: string
  /** The supplier's names for the device, both or neither: what advisories are matched on (device-products.ts). */
  vendor?: string
  model?: string
}

export interface IssuedDevice {
  record: InventoryRecord
  certificatePath: string
  /** Absent for `pki sign`: the device kept its key. */
  privateKeyPath?: string
}

/** A LoRaWAN network server's MQTT integration to certify (`pki issue --role integration`). */
export interface IntegrationRequest extends ValidityInput {
  integrationId: string
  /** `chirpstack` or `tts`: which topics it may publish. */
  network: string
  site: string
  keyAlgorithm?: KeyAlgorithm
  /** Where to write the key and certificate; default `<data-dir>/pki/devices`. */
  outDir?: string
}

/** A supplier's remote access to certify (`pki issue --role supplier`, issue 17). */
export interface SupplierRequest extends ValidityInput {
  supplierId: string
  /** Device kinds it maintains: it may command only those. */
  kinds: string[]
  /** Sites it maintains: it may command only devices there. */
  sites: string[]
  /** When it may connect: a list of maintenance-window timings (shared/access-windows.ts). */
  windows: unknown
  keyAlgorithm?: KeyAlgorithm
  outDir?: string
}

/** What the broker asks at a supplier's connect: its grant, if it holds an active certificate. */
export interface SupplierGrant { supplierId: string, kinds: DeviceKind[], sites: string[], windows: AccessWindow[] }

/** A device behind a LoRaWAN network server to register (`devices add`). */
export interface LorawanDeviceRequest { deviceId: string, kind: string, site: string, devEui: string, integrationId: string }

/** A certificate in the inventory, with its status as read now. */
export interface CertificateEntry extends InventoryRecord {
  identity: 'certificate'
  effectiveStatus: InventoryStatus
  /** The device's vendor and model when recorded (`pki issue --vendor --model`). */
  vendor?: string | null
  model?: string | null
}

/**
 * A registered LoRaWAN device: no certificate, so no serial, validity or
 * key (the `never` fields say so to every reader of `pki.list()`); its
 * integration vouches for it.
 */
export interface LorawanEntry extends LorawanDeviceRecord {
  identity: 'lorawan'
  role: 'device'
  /** Registered devices have no status of their own: one is in the registry or not. */
  status: 'active'
  effectiveStatus: 'active'
  serial?: never
  notBefore?: never
  notAfter?: never
  keyAlgorithm?: never
  fingerprint?: never
  /** The device's vendor and model when recorded (`devices add --vendor --model`). */
  vendor?: string | null
  model?: string | null
}

/** One row of `pki list`: a certificate, or a device registered behind an integration. */
export type InventoryEntry = CertificateEntry | LorawanEntry

export interface IssueManyOptions {
  /**
   * Write every key and certificate into this one tar archive (it must end
   * in `.tar` and not exist yet) instead of two files each: what a factory
   * takes, and 20,000 fewer files for 10,000 devices (identity-archive.ts).
   * A request's `outDir` does not apply then.
   */
  archive?: string
}

/** What #issue signs: one identity (device or integration) and its inventory facts. */
interface PlannedLeaf {
  identity: Extract<Identity, { role: 'device' | 'integration' | 'supplier' }>
  id: string
  /** The refusal's field for the id: `deviceId`, `integrationId`. */
  idField: string
  kind: DeviceKind | null
  site: string
  network: LorawanNetwork | null
  request: ValidityInput & { keyAlgorithm?: KeyAlgorithm, outDir?: string, vendor?: string, model?: string }
}

export interface ReconcileReport {
  /** Pending certificates whose files landed before the crash: now active. */
  activated: InventoryRecord[]
  /** Pending serials whose certificate never landed: revoked, and in the CRL. */
  revoked: InventoryRecord[]
  /** Certificate files the fleet CA signed that the inventory did not know: recorded as revoked. */
  unknown: Array<{ path: string, record: InventoryRecord }>
}

/**
 * The fleet's certificate authority: device identity, the inventory of every
 * certificate signed, and the CRL the broker enforces.
 */
export class FleetPki {
  readonly paths: PkiPaths
  readonly #clock: Clock
  readonly #crlValidityDays: number
  readonly #crlKeepExpiredDays: number
  #inventory: Inventory | undefined
  #products: DeviceProducts | undefined
  #signer: Signer | undefined

  constructor (dataDir: string, options: PkiOptions = {}) {
    this.paths = pkiPaths(dataDir)
    this.#clock = options.clock ?? systemClock
    this.#crlValidityDays = options.crlValidityDays ?? DEFAULT_CRL_DAYS
    this.#crlKeepExpiredDays = options.crlKeepExpiredDays ?? DEFAULT_CRL_KEEP_EXPIRED_DAYS
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
      windowFor(now, options.caValidityDays ?? DEFAULT_CA_DAYS).notAfter)
    const signer = await loadSigner(caPem, caKey.privateKeyPem)
    const serverDays = options.serverValidityDays ?? DEFAULT_SERVICE_DAYS
    const server = await this.#signService(signer, 'localhost', undefined, 'server', serverDays,
      ['localhost', ...(options.serverNames ?? [])], ['127.0.0.1', '::1'])
    const collector = await this.#signService(signer, 'collector', { role: 'collector', name: 'collector' }, 'client', serverDays)
    const crl = signCrlPem(signer.certificate.rawData, caKey.privateKeyPem, {
      entries: [], crlNumber: 1, ...crlWindow(now, this.#crlValidityDays),
    })
    // The CA key is written last: until it exists, `initialized` stays false and a retry starts clean.
    writeFilesAtomic([
      { path: this.paths.serverCert, content: server.certificatePem },
      { path: this.paths.serverKey, content: server.privateKeyPem, mode: PRIVATE },
      // Published with the server key to every broker: its session-ticket keys (tls-ticket-secret.ts).
      { path: join(this.paths.dir, TICKET_SECRET_FILE), content: newTicketSecret(), mode: PRIVATE },
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
   * All requests are validated first. Every serial is recorded as pending
   * in one transaction before anything is signed, the files are written,
   * then one transaction marks them active: a crash in between leaves
   * pending rows that `reconcile` settles, never a certificate the
   * inventory cannot name and revoke.
   */
  async issueMany (requests: IssueRequest[], onProgress?: (done: number, total: number) => void, options: IssueManyOptions = {}): Promise<IssuedDevice[]> {
    return this.#issue(requests.map(plannedDevice), false, onProgress, options.archive)
  }

  /**
   * Issues a client certificate for a LoRaWAN network server's MQTT
   * integration (`pki issue --role integration`): SAN URI
   * `urn:placeguard:integration:<network>:<id>`. Its id shares the devices'
   * namespace (it is the integration's MQTT client id, as a device's is):
   * an id any device or integration holds is refused.
   */
  async issueIntegration (request: IntegrationRequest): Promise<IssuedDevice> {
    const { integrationId, network, site } = assertIntegrationIdentity(request)
    const [issued] = await this.#issue([{
      identity: { role: 'integration', integrationId, network }, id: integrationId, idField: 'integrationId',
      kind: null, site, network, request,
    }], false)
    return issued!
  }

  /**
   * Issues a supplier's client certificate (`pki issue --role supplier`):
   * SAN URI `urn:placeguard:supplier:<id>`, its kinds, sites and access
   * windows stored in the inventory beside it. The broker lets it publish
   * only commands to those kinds and sites, only inside a window (issue 17).
   * Its id is in the devices' namespace: it is its MQTT client id.
   */
  async issueSupplier (request: SupplierRequest): Promise<IssuedDevice> {
    // The windows are checked here and stored as given below.
    const { supplierId, kinds, sites } = assertSupplierIdentity(request)
    const [issued] = await this.#issue([{
      identity: { role: 'supplier', supplierId }, id: supplierId, idField: 'supplierId', kind: null, site: sites[0]!, network: null, request,
    }], false)
    const inventory = this.#openInventory()
    // The windows as given (not as parsed), so a weekly "2h" is stored as written and parsed again on read.
    inventory.saveSupplier({ supplierId, kinds, sites, windows: request.windows as unknown[], updatedAt: this.#now().toISOString() })
    writeSupplierGrants(this.paths.dir, this.supplierRecords())
    return issued!
  }

  /**
   * A supplier's grant, if it holds an active certificate: what the broker
   * checks at its connect and at each command. Undefined for an unknown,
   * revoked or expired supplier (the TLS gate refuses those first anyway).
   */
  supplierGrant (supplierId: string): SupplierGrant | undefined {
    const inventory = this.#openInventory()
    const active = inventory.activeFor('supplier', supplierId)
    const stored = inventory.supplier(supplierId)
    if (!active || effectiveStatus(active, this.#now()) !== 'active' || !stored) return undefined
    return { supplierId, kinds: stored.kinds, sites: stored.sites, windows: assertAccessWindows('windows', stored.windows) }
  }

  /**
   * The grants of every supplier holding an active certificate, windows as
   * written (not parsed: a weekly "2h" stays "2h"): what `pki list` shows,
   * and what is sent to a cluster's nodes, which hold no inventory
   * (docs/suppliers.md).
   */
  supplierRecords (): SupplierRecord[] {
    const inventory = this.#openInventory()
    const now = this.#now()
    return inventory.suppliers().filter((stored) => {
      const active = inventory.activeFor('supplier', stored.supplierId)
      return active !== undefined && effectiveStatus(active, now) === 'active'
    })
  }

  /**
   * Renews a device (`pki renew`): a new key and certificate for the same
   * identity (kind and site kept), written over the device's files; the
   * old certificate becomes `superseded` — still valid, not revoked — so
   * the device keeps working until it has switched. Revoking the device
   * revokes both, and a revoke that lands while the renewal is signing
   * revokes the new certificate too. This is how a cert-expiry alert is answered.
   * An integration renews the same way (network and site kept): its id is
   * in the devices' namespace.
   */
  async renew (deviceId: string, options: Omit<IssueRequest, 'deviceId' | 'kind' | 'site'> = {}): Promise<IssuedDevice & { superseded: InventoryRecord }> {
    assertDeviceId('deviceId', deviceId)
    const inventory = this.#openInventory()
    const current = inventory.activeFor('device', deviceId) ?? inventory.activeFor('integration', deviceId) ?? inventory.activeFor('supplier', deviceId)
    let planned: PlannedLeaf
    if (current?.role === 'device' && current.kind && current.site) {
      planned = plannedDevice({ ...options, deviceId, kind: current.kind, site: current.site })
    } else if (current?.role === 'integration' && current.network && current.site) {
      planned = { identity: { role: 'integration', integrationId: deviceId, network: current.network }, id: deviceId, idField: 'integrationId', kind: null, site: current.site, network: current.network, request: options }
    } else if (current?.role === 'supplier' && current.site) {
      // A supplier's grant is keyed by its id, not its serial: the renewed certificate keeps it.
      planned = { identity: { role: 'supplier', supplierId: deviceId }, id: deviceId, idField: 'supplierId', kind: null, site: current.site, network: null, request: options }
    } else {
      throw noActiveCertificate(deviceId, 'to renew', 'issue one with `placeguard pki issue`')
    }
    const [issued] = await this.#issue([planned], true)
    return { ...issued!, superseded: { ...current, status: 'superseded' } }
  }

  async #issue (requests: PlannedLeaf[], renewing: boolean, onProgress?: (done: number, total: number) => void, archive?: string): Promise<IssuedDevice[]> {
    if (archive !== undefined && !archive.endsWith('.tar')) throw invalidInput('archive', `"${archive}" does not end in .tar`, 'name the archive like batch-2026-12.tar')
    const signer = await this.#loadSigner()
    // Started now, they are ready to sign by the time the rows are pending.
    const workers = new SigningWorkers(requests.length)
    try {
      return await this.#issueWith(workers, signer, requests, renewing, onProgress, archive)
    } finally {
      workers.close()
    }
  }

  async #issueWith (workers: SigningWorkers, signer: Signer, requests: PlannedLeaf[], renewing: boolean,
    onProgress?: (done: number, total: number) => void, archive?: string): Promise<IssuedDevice[]> {
    const inventory = this.#openInventory()
    const taken = inventory.takenIds()
    const seen = new Set<string>()
    const jobs: Array<LeafJob & PlannedLeaf> = requests.map((planned) => {
      const { id, idField, request } = planned
      if ((taken.has(id) && !renewing) || seen.has(id)) throw duplicateId(id, idField)
      seen.add(id)
      const { notBefore, notAfter } = deviceValidity(request, this.#now(), signer.certificate.notAfter)
      const files = archive !== undefined
        ? { cert: archiveMemberPath(archive, `${id}.crt`), key: archiveMemberPath(archive, `${id}.key`) }
        : deviceFiles(request.outDir ?? this.paths.devicesDir, id)
      return {
        ...planned,
        certificatePath: files.cert,
        privateKeyPath: files.key,
        archive: archive !== undefined ? { certificateMember: `${id}.crt`, keyMember: `${id}.key` } : undefined,
        serialNumber: newSerialNumber(),
        commonName: id,
        notBefore: notBefore.toISOString(),
        notAfter: notAfter.toISOString(),
        keyAlgorithm: request.keyAlgorithm ?? 'ecdsa-p256',
      }
    })
    const products = requests.map((planned) => planned.identity.role === 'device' ? deviceProductOf(planned.request) : undefined)
    const issuedAt = this.#now().toISOString()
    const pending = jobs.map((job): InventoryRecord => ({
      serial: job.serialNumber, deviceId: job.commonName, role: job.identity.role, kind: job.kind, site: job.site,
      notBefore: job.notBefore, notAfter: job.notAfter, keyAlgorithm: job.keyAlgorithm,
      status: 'pending', issuedAt, revokedAt: null, fingerprint: null, spkiSha256: null, certificatePath: job.certificatePath,
      network: job.network,
    }))
    // The serials exist in the inventory before any certificate does: a
    // crash can leave a pending row, never a valid certificate nobody can
    // name or revoke (STRIDE: Spoofing). The state is re-checked under the
    // write lock, so a revoke or issue by another process since the reads
    // above is seen.
    // Ids held and in flight are read once as sets: a few queries per row
    // made 10,000 rows cost half a second under the lock.
    // An archive is created before any row: one that exists is refused with nothing recorded, and is not ours to remove.
    let archiveFd = archive !== undefined ? openArchive(archive) : undefined
    try {
      inventory.transaction(() => {
        const held = renewing ? undefined : inventory.takenIds()
        const issuing = inventory.pendingIds()
        for (const [i, record] of pending.entries()) {
          const field = jobs[i]!.idField
          if (renewing && !inventory.activeFor(record.role, record.deviceId)) {
            throw noActiveCertificate(record.deviceId, 'to renew', 'it was revoked meanwhile; issue a new one with `placeguard pki issue`')
          }
          if (held?.has(record.deviceId)) throw duplicateId(record.deviceId, field, idHolder(inventory, record.deviceId))
          if (issuing.has(`${record.role}:${record.deviceId}`)) throw inFlight(record.deviceId, field, issuingCount(issuing, pending))
          inventory.insert(record)
        }
      })
    } catch (error) {
      if (archiveFd !== undefined) {
        closeSync(archiveFd)
        rmSync(archive!, { force: true })
      }
      throw error
    }
    // A renewal writes over the device's files: the old ones are set aside until the new certificate is active.
    const files = archive !== undefined ? [archive] : jobs.flatMap((job) => [job.certificatePath, job.privateKeyPath])
    const filesOf = (ids: Set<string>): string[] => archive !== undefined
      ? [] // one archive holds the whole batch: the rest of it is in service
      : jobs.filter((job) => ids.has(job.id)).flatMap((job) => [job.certificatePath, job.privateKeyPath])
    const removeFiles = (only?: string[]): void => {
      for (const path of only ?? files) {
        try {
          rmSync(path, { force: true })
          if (renewing && existsSync(previous(path))) renameSync(previous(path), path)
        } catch {
          // its directory is what failed: there is nothing there to remove
        }
      }
    }
    let signed
    try {
      for (const dir of new Set(files.map((path) => dirname(path)))) mkdirSync(dir, { recursive: true, mode: 0o700 })
      if (renewing) for (const path of files) if (existsSync(path)) renameSync(path, previous(path))
      if (archiveFd !== undefined) {
        // The CA the devices trust the broker by, first: a flashing station needs it with every identity.
        writeAll(archiveFd, tarEntry('ca.crt', signer.certificate.toString('pem'), 0o644, Math.floor(this.#now().getTime() / 1000)))
      }
      const fd = archiveFd
      signed = await signLeaves({ certificatePem: signer.certificate.toString('pem'), privateKeyPem: readFileSync(this.paths.caKey, 'utf8') },
        jobs, (done) => onProgress?.(done, jobs.length), (entries) => writeAll(fd!, entries), workers)
      if (archiveFd !== undefined) {
        // One file, one fsync, and its directory's for the name: before any row is active.
        writeAll(archiveFd, tarEnd())
        fsyncSync(archiveFd)
        closeSync(archiveFd)
        archiveFd = undefined
        syncDirectory(dirname(archive!))
      } else {
        // One sync for the whole batch, before any row is active: an active row always names files that survive a power cut.
        await syncBatch(files)
      }
    } catch (error) {
      if (archiveFd !== undefined) closeSync(archiveFd)
      // Some of the batch may have been signed before the failure: their serials go into the CRL, then the files go.
      this.#revokeSerials(pending.map((record) => record.serial))
      removeFiles()
      throw error
    }
    const revokedMeanwhile: string[] = []
    const records = inventory.transaction(() => pending.map((record, i) => {
      // A new identity has no active certificate to supersede: the checks above, under the lock, said so.
      const landed = renewing
        ? inventory.activate(record.serial, signed[i]!)
        : inventory.activateNew(record.serial, signed[i]!) ? { ...record, ...signed[i]!, status: 'active' as const } : undefined
      if (!landed) revokedMeanwhile.push(record.deviceId)
      return landed ?? { ...record, status: 'revoked' as const }
    }))
    if (revokedMeanwhile.length > 0) {
      // A revoke took the pending serial with the identity (and wrote it into the CRL): its new files are no use.
      // The rest of a batch was activated beside it, and keeps its files.
      removeFiles(revokedMeanwhile.length === jobs.length ? files : filesOf(new Set(revokedMeanwhile)))
      throw noActiveCertificate(revokedMeanwhile[0]!, 'to issue', 'it was revoked while its certificate was being signed; the new certificate is revoked too')
    }
    if (renewing) for (const path of files) rmSync(previous(path), { force: true })
    this.#deviceProducts().setMany(products.flatMap((product, i) => product ? [[jobs[i]!.id, product] as [string, DeviceProduct]] : []))
    return jobs.map((job, i) => ({ record: records[i]!, certificatePath: job.certificatePath, privateKeyPath: job.privateKeyPath }))
  }

  /**
   * Signs a device's own CSR (`pki sign`): the private key never leaves the
   * device. The id is the CSR's CN, checked like any other, and the key must
   * not already be bound to another identity that is not revoked: a device
   * holding another's key could speak as it (STRIDE: Spoofing).
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
    const keyAlgorithm = assertCsrKeyAlgorithm(csr.algorithm)
    const product = deviceProductOf(request)
    const { deviceId, kind, site } = assertDeviceIdentity('csr CN', { ...request, deviceId: csr.commonName })
    const { notBefore, notAfter } = deviceValidity(request, this.#now(), signer.certificate.notAfter)
    const spkiSha256 = sha256Hex(csr.publicKeyDer)
    const files = deviceFiles(request.outDir ?? this.paths.devicesDir, deviceId)
    const pending: InventoryRecord = {
      serial: newSerialNumber(), deviceId, role: 'device', kind, site,
      notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString(), keyAlgorithm,
      status: 'pending', issuedAt: this.#now().toISOString(), revokedAt: null, fingerprint: null, spkiSha256, certificatePath: files.cert,
      network: null,
    }
    const inventory = this.#openInventory()
    inventory.transaction(() => {
      const idTaken = idHolder(inventory, deviceId)
      if (idTaken) throw duplicateId(deviceId, 'deviceId', idTaken)
      if (inventory.pendingFor('device', deviceId)) throw inFlight(deviceId, 'deviceId')
      const holder = inventory.holderOfKey(spkiSha256, 'device', deviceId)
      if (holder) throw keyInUse(holder)
      inventory.insert(pending)
    })
    let certificate
    try {
      certificate = await createLeafCertificate(signer, {
        publicKeyDer: csr.publicKeyDer, commonName: deviceId, identity: { role: 'device', deviceId, kind, site },
        usage: 'client', notBefore, notAfter, serialNumber: pending.serial,
      })
      writeFileAtomic(files.cert, certificate.toString('pem'))
    } catch (error) {
      rmSync(files.cert, { force: true })
      this.#revokeSerials([pending.serial])
      throw error
    }
    const record = inventory.transaction(() => inventory.activate(pending.serial, { fingerprint: sha256Hex(certificate.rawData), spkiSha256 }))
    if (!record) {
      rmSync(files.cert, { force: true })
      throw noActiveCertificate(deviceId, 'to issue', 'it was revoked while its certificate was being signed; the new certificate is revoked too')
    }
    if (product) this.#deviceProducts().set(deviceId, product)
    return { record, certificatePath: files.cert }
  }

  /**
   * Revokes every certificate of a device (active, superseded, or being
   * issued) and rewrites the CRL, both under the inventory's write lock: a
   * renewal in another process either sees the revocation or is revoked
   * with it. A running broker watches the CRL: new handshakes are refused
   * and a live session is dropped within seconds.
   */
  async revoke (deviceId: string): Promise<InventoryRecord[]> {
    assertId('deviceId', deviceId)
    await this.#loadSigner()
    const inventory = this.#openInventory()
    const now = this.#now()
    return inventory.transaction(() => {
      // Ids are one namespace (idHolder): revoking an id revokes the device or the integration holding it.
      const revoked = [...inventory.revoke('device', deviceId, now), ...inventory.revoke('integration', deviceId, now), ...inventory.revoke('supplier', deviceId, now)]
      if (revoked.length === 0) throw noActiveCertificate(deviceId, '', 'see `placeguard pki list`')
      this.#writeCrl(inventory, now)
      if (revoked.some((record) => record.role === 'supplier')) writeSupplierGrants(this.paths.dir, this.supplierRecords())
      return revoked
    })
  }

  /**
   * Revokes one certificate by serial, whatever the inventory says of it
   * (`pki revoke --serial`): a pending serial from a crashed run, a
   * superseded certificate, one whose device id was reused.
   */
  async revokeSerial (serial: string): Promise<InventoryRecord> {
    assertSerial(serial)
    await this.#loadSigner()
    const inventory = this.#openInventory()
    const now = this.#now()
    return inventory.transaction(() => {
      const record = inventory.revokeSerial(serial, now)
      if (!record) {
        throw new PlaceGuardError('PG_ERR_PKI_UNKNOWN_SERIAL', `serial: ${serial} is not in the inventory`, {
          field: 'serial', hint: 'if you hold the certificate file, put it in the devices directory and run `placeguard pki reconcile`',
        })
      }
      this.#writeCrl(inventory, now)
      return record
    })
  }

  /**
   * Settles what a crash left (`pki reconcile`): a pending certificate whose
   * file landed becomes active; one that never landed is revoked — its
   * serial goes into the CRL, since a signed certificate may exist
   * somewhere; a certificate file signed by the fleet CA that the inventory
   * does not know is recorded and revoked. Run it when no issue is in progress.
   */
  async reconcile (extraDirs: string[] = []): Promise<ReconcileReport> {
    await this.#loadSigner()
    const ca = new X509Certificate(readFileSync(this.paths.caCert))
    const inventory = this.#openInventory()
    const landed = new Map<string, { fingerprint: string, spkiSha256: string }>()
    const archives = new Map<string, Map<string, Buffer>>()
    const read = (path: string): Buffer | undefined => {
      const member = splitArchiveMemberPath(path)
      if (!member) return readOrUndefined(path)
      if (!archives.has(member.archive)) archives.set(member.archive, readTarMembers(member.archive))
      return archives.get(member.archive)!.get(member.member)
    }
    for (const record of inventory.pending()) {
      const found = record.certificatePath ? readFleetCertificate(record.certificatePath, ca, read(record.certificatePath)) : undefined
      if (!found || found.serial !== normalizeSerial(record.serial)) continue
      // A batch is synced once, after all its files are written: a power cut
      // before that can keep a certificate and lose its key. A certificate
      // is in service only with its key whole beside it; a CSR's key stays
      // on the device, so its certificate must carry the key the CSR named.
      const whole = record.spkiSha256 !== null
        ? found.spkiSha256 === record.spkiSha256
        : keyHolds(read(keyPathOf(record.certificatePath!)), found.spkiSha256)
      if (whole) landed.set(record.serial, found)
    }
    const dirs = new Set([this.paths.devicesDir, ...extraDirs])
    for (const record of inventory.list()) if (record.certificatePath) dirs.add(dirname(record.certificatePath))
    const onDisk = [...dirs].flatMap((dir) => certificateFiles(dir))
      .flatMap((path) => { const found = readFleetCertificate(path, ca); return found ? [{ path, ...found }] : [] })
    const now = this.#now()
    const report: ReconcileReport = { activated: [], revoked: [], unknown: [] }
    inventory.transaction(() => {
      for (const record of inventory.pending()) {
        const landing = landed.get(record.serial)
        const settled = landing ? inventory.activate(record.serial, landing) : inventory.revokeSerial(record.serial, now)
        if (settled) (landing ? report.activated : report.revoked).push(settled)
      }
      for (const file of onDisk) {
        if (inventory.bySerial(file.serial)) continue
        const record = { ...file.record, status: 'revoked' as const, revokedAt: now.toISOString(), issuedAt: now.toISOString() }
        inventory.insert(record)
        report.unknown.push({ path: file.path, record })
      }
      if (report.revoked.length > 0 || report.unknown.length > 0) this.#writeCrl(inventory, now)
    })
    // A renewal that crashed set the device's old files aside: keep the new ones if they landed, else put the old back.
    for (const record of [...report.activated, ...report.revoked]) {
      if (!record.certificatePath) continue
      for (const path of [record.certificatePath, keyPathOf(record.certificatePath)]) {
        if (!existsSync(previous(path))) continue
        if (record.status === 'active') rmSync(previous(path), { force: true })
        else renameSync(previous(path), path)
      }
    }
    return report
  }

  /** Re-signs the CRL with a fresh nextUpdate; run it from cron well inside crlValidityDays. */
  async refreshCrl (): Promise<void> {
    await this.#loadSigner()
    const inventory = this.#openInventory()
    inventory.transaction(() => this.#writeCrl(inventory, this.#now()))
    // Published with the CRL: a PKI from before the grants file or the ticket secret gets them at its next re-signing.
    writeSupplierGrants(this.paths.dir, this.supplierRecords())
    readOrCreateTicketSecret(join(this.paths.dir, TICKET_SECRET_FILE))
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
    // Where the CA's side runs this periodically (compose's pki-crl), a PKI from before the ticket secret gets one.
    readOrCreateTicketSecret(join(this.paths.dir, TICKET_SECRET_FILE))
    if (!crlRefreshDue(nextUpdate, this.#now(), withinDays)) return { refreshed: false, nextUpdate }
    await this.refreshCrl()
    return { refreshed: true, nextUpdate: (await readCrl(readFileSync(this.paths.crl, 'utf8'), readFileSync(this.paths.caCert, 'utf8'))).nextUpdate }
  }

  /** Every certificate, then every registered LoRaWAN device (`identity` tells them apart). */
  list (): InventoryEntry[] {
    this.#requireCa()
    const now = this.#now()
    const inventory = this.#openInventory()
    const certificates = inventory.list().map((record): InventoryEntry => ({ ...record, identity: 'certificate', effectiveStatus: effectiveStatus(record, now) }))
    const lorawan = inventory.lorawanDevices().map((record): InventoryEntry => ({
      ...record, identity: 'lorawan', role: 'device', status: 'active', effectiveStatus: 'active',
    }))
    // What each device is (pki issue --vendor --model, devices add): advisories are matched on it.
    const products = this.#deviceProducts().all()
    return [...certificates, ...lorawan].map((entry) => {
      const product = entry.role === 'device' ? products.get(entry.deviceId) : undefined
      return { ...entry, vendor: product?.vendor ?? null, model: product?.model ?? null }
    })
  }

  /**
   * Records what a device is, as its supplier names it (vendor and model,
   * both or neither), for matching advisories: `devices add --vendor
   * --model`; `pki issue`/`pki sign` take them in their requests.
   */
  recordDeviceProduct (deviceId: string, product: { vendor?: string, model?: string }): void {
    assertDeviceId('deviceId', deviceId)
    const checked = deviceProductOf(product)
    if (checked) this.#deviceProducts().set(deviceId, checked)
  }

  /**
   * Registers a device that has no certificate of its own, behind a
   * LoRaWAN network server (`devices add`). Its integration must hold an
   * active certificate; its id must be no other device's or integration's
   * (one namespace: telemetry, alerts and quarantine are by id); its
   * DevEUI no other registered device's (one radio, one identity).
   * Checked under the inventory's write lock, so two processes cannot both
   * register one DevEUI.
   */
  addLorawanDevice (request: LorawanDeviceRequest): LorawanDeviceRecord {
    this.#requireCa()
    const { deviceId, kind, site, devEui, integrationId } = assertLorawanDevice(request)
    const inventory = this.#openInventory()
    return inventory.transaction(() => {
      const integration = inventory.activeFor('integration', integrationId)
      if (!integration || effectiveStatus(integration, this.#now()) !== 'active') {
        const latest = inventory.latestFor('integration', integrationId)
        const state = latest ? `is ${latest.status === 'active' ? effectiveStatus(latest, this.#now()) : latest.status}` : 'is not in the inventory'
        throw invalidInput('integrationId', `integration "${integrationId}" ${state}`,
          'issue one with `placeguard pki issue <id> --role integration --network chirpstack|tts --site <site>`')
      }
      const holder = idHolder(inventory, deviceId)
      if (holder) throw duplicateId(deviceId, 'deviceId', holder)
      const sameRadio = inventory.lorawanDeviceByDevEui(devEui)
      if (sameRadio) {
        throw new PlaceGuardError('PG_ERR_PKI_DUPLICATE_ID', `devEui: ${devEui} is already registered as "${sameRadio.deviceId}"`, {
          field: 'devEui', hint: `remove it first (\`placeguard devices remove ${sameRadio.deviceId}\`), or check the DevEUI`,
        })
      }
      inventory.insertLorawanDevice({ deviceId, kind, site, devEui, integrationId, addedAt: this.#now().toISOString() })
      return inventory.lorawanDevice(deviceId)!
    })
  }

  /** Removes a registered LoRaWAN device (`devices remove`); its uplinks are then an unknown device's. */
  removeLorawanDevice (deviceId: string): LorawanDeviceRecord {
    this.#requireCa()
    assertId('deviceId', deviceId)
    const inventory = this.#openInventory()
    return inventory.transaction(() => {
      const record = inventory.lorawanDevice(deviceId)
      if (!record) {
        throw new PlaceGuardError('PG_ERR_PKI_UNKNOWN_DEVICE', `deviceId: no registered LoRaWAN device "${deviceId}"`, {
          field: 'deviceId', hint: 'see `placeguard devices list`; a device with a certificate is revoked with `placeguard pki revoke`',
        })
      }
      inventory.deleteLorawanDevice(deviceId)
      return record
    })
  }

  /** The registered LoRaWAN devices, by id (`devices list`; the collector's DevEUI → device map). */
  lorawanDevices (): LorawanDeviceRecord[] {
    this.#requireCa()
    return this.#openInventory().lorawanDevices()
  }

  close (): void {
    this.#inventory?.close()
    this.#inventory = undefined
    this.#products?.close()
    this.#products = undefined
  }

  #deviceProducts (): DeviceProducts {
    this.#openInventory() // the table lives in the inventory's file; open (and migrate) it first
    return this.#products ??= new DeviceProducts(this.paths.inventory)
  }

  /** Revokes serials that may have been signed, and lists them in the CRL. */
  #revokeSerials (serials: string[]): void {
    const inventory = this.#openInventory()
    const now = this.#now()
    inventory.transaction(() => {
      for (const serial of serials) inventory.revokeSerial(serial, now)
      this.#writeCrl(inventory, now)
    })
  }

  /**
   * Writes the CRL; call it inside an inventory transaction. The write
   * lock serialises CRL writers across processes, the number is taken past
   * both the database's and the file's, and the file is renamed into place
   * before the lock is released: cRLNumber on disk only ever increases
   * (RFC 5280 §5.2.3), so no process writes an older CRL over a newer one.
   */
  #writeCrl (inventory: Inventory, now: Date): void {
    const entries = inventory.crlEntries(crlKeepExpiredSince(now, this.#crlKeepExpiredDays))
      .map((record) => ({ serialNumber: record.serial, revokedAt: new Date(record.revokedAt!) }))
    const onDisk = existsSync(this.paths.crl) ? crlNumberOf(readFileSync(this.paths.crl, 'utf8')) : 0
    const crl = signCrlPem(this.#signer!.certificate.rawData, readFileSync(this.paths.caKey, 'utf8'), {
      entries, crlNumber: inventory.nextCrlNumber(onDisk + 1), ...crlWindow(now, this.#crlValidityDays),
    })
    writeFileAtomic(this.paths.crl, crl)
  }

  async #signService (signer: Signer, commonName: string, identity: Identity | undefined, usage: 'client' | 'server',
    days: number, dnsNames?: string[], ipAddresses?: string[]): Promise<{ certificatePem: string, privateKeyPem: string, record: InventoryRecord }> {
    const now = this.#now()
    const key = await generateKey('ecdsa-p256')
    const { notBefore, notAfter } = windowFor(now, days)
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
        fingerprint: sha256Hex(certificate.rawData), spkiSha256: sha256Hex(key.publicKeyDer), certificatePath: null, network: null,
      },
    }
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
    if (!this.#inventory) {
      this.#inventory = new Inventory(this.paths.inventory)
      this.#backfillKeyHashes(this.#inventory)
    }
    return this.#inventory
  }

  /**
   * Rows from before the one-key-one-identity check have no key hash, so
   * `pki sign` could not see a key they hold. Once, after the migration,
   * the hashes are read from the certificate files where they are found
   * (the data directory's own; `--out` copies are not known to it).
   */
  #backfillKeyHashes (inventory: Inventory): void {
    if (!this.initialized || inventory.meta('key_hashes_backfilled') === '1') return
    const ca = new X509Certificate(readFileSync(this.paths.caCert))
    const servicePaths: Record<string, string> = { server: this.paths.serverCert, collector: this.paths.collectorCert }
    inventory.transaction(() => {
      for (const record of inventory.withoutKeyHash()) {
        const path = record.certificatePath ?? servicePaths[record.role] ?? deviceFiles(this.paths.devicesDir, record.deviceId).cert
        const found = readFleetCertificate(path, ca)
        if (found && found.serial === normalizeSerial(record.serial)) inventory.recordKeyHash(record.serial, found.spkiSha256, path)
      }
      inventory.setMeta('key_hashes_backfilled', '1')
    })
  }

  #now (): Date {
    return new Date(this.#clock.now())
  }
}

/** A device's key file beside its certificate (paths.ts, deviceFiles). */
function keyPathOf (certificatePath: string): string {
  return certificatePath.replace(/\.crt$/, '.key')
}

function readOrUndefined (path: string): Buffer | undefined {
  try {
    return readFileSync(path)
  } catch {
    return undefined
  }
}

/** Whether the file's content is a whole private key whose public half hashes to `spkiSha256`. */
function keyHolds (content: Buffer | undefined, spkiSha256: string): boolean {
  if (content === undefined) return false
  try {
    const key = createPrivateKey(content)
    return sha256Hex(createPublicKey(key).export({ type: 'spki', format: 'der' })) === spkiSha256
  } catch {
    return false // missing, cut short or not a key: the certificate is of no use without it
  }
}

/**
 * Creates a batch's archive: afresh (an archive that exists is refused,
 * never written through or over) and 0600 from its first byte, as it holds
 * private keys.
 */
function openArchive (path: string): number {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  try {
    return openSync(path, 'wx', PRIVATE)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    throw invalidInput('archive', `${path} exists`, 'name a new archive: one is written per batch, and never over another')
  }
}

function writeAll (fd: number, data: Uint8Array): void {
  let written = 0
  while (written < data.length) written += writeSync(fd, data, written)
}

function syncDirectory (dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

function previous (path: string): string {
  return `${path}.previous`
}

function noActiveCertificate (deviceId: string, purpose: string, hint: string): PlaceGuardError {
  return new PlaceGuardError('PG_ERR_PKI_UNKNOWN_DEVICE', `deviceId: no active certificate for "${deviceId}"${purpose ? ` ${purpose}` : ''}`, {
    field: 'deviceId', hint,
  })
}

function inFlight (deviceId: string, field: string, others = 0): PlaceGuardError {
  const more = others > 0 ? ` (and ${others} more of this batch)` : ''
  return new PlaceGuardError('PG_ERR_PKI_DUPLICATE_ID', `${field}: a certificate for "${deviceId}"${more} is being issued (pending)`, {
    field, hint: 'wait for it; if that run crashed, `placeguard pki reconcile` settles it',
  })
}

/** How many other identities of a batch are already being issued: what a re-run after a crash is told. */
function issuingCount (issuing: Set<string>, batch: InventoryRecord[]): number {
  return batch.filter((record) => issuing.has(`${record.role}:${record.deviceId}`)).length - 1
}

/** A device request as #issue signs it. */
function plannedDevice (request: IssueRequest): PlannedLeaf {
  const { deviceId, kind, site } = assertDeviceIdentity('deviceId', request)
  return { identity: { role: 'device', deviceId, kind, site }, id: deviceId, idField: 'deviceId', kind, site, network: null, request }
}

/**
 * Who holds an id, if anyone: an active device or integration certificate,
 * or a registered LoRaWAN device. One namespace for all three: the id is
 * the MQTT client id, the telemetry's device tag, what alerts and
 * quarantine name — two holders would be mistaken for each other.
 */
function idHolder (inventory: Inventory, id: string): string | undefined {
  if (inventory.activeFor('device', id)) return 'a device with an active certificate'
  if (inventory.activeFor('integration', id)) return 'an integration with an active certificate'
  if (inventory.activeFor('supplier', id)) return 'a supplier with an active certificate'
  if (inventory.lorawanDevice(id)) return 'a registered LoRaWAN device'
  return undefined
}

function keyInUse (holder: InventoryRecord): PlaceGuardError {
  return new PlaceGuardError('PG_ERR_PKI_KEY_IN_USE',
    `csr: the public key is already bound to "${holder.deviceId}" (serial ${holder.serial}, ${holder.status})`, {
      field: 'csr', hint: 'each device needs its own key pair; generate a new key on the device, or revoke the other certificate first',
    })
}

function certificateFiles (dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => name.endsWith('.crt')).map((name) => join(dir, name))
  } catch {
    return [] // a directory that is gone holds no certificates
  }
}

/** A certificate file the fleet CA really signed (signature checked), as an inventory row; undefined otherwise. */
function readFleetCertificate (path: string, ca: X509Certificate, content = readOrUndefined(path)): { serial: string, fingerprint: string, spkiSha256: string, record: InventoryRecord } | undefined {
  let der: Buffer
  try {
    if (content === undefined) return undefined
    der = new X509Certificate(content).raw
  } catch {
    return undefined
  }
  if (certificateOrigin(der, ca) !== 'fleet-ca') return undefined
  const certificate = new X509Certificate(der)
  const identity = identityFromSubjectAltName(certificate.subjectAltName)
  const commonName = /^CN=(.*)$/m.exec(certificate.subject)?.[1] ?? ''
  const spkiSha256 = sha256Hex(certificate.publicKey.export({ type: 'spki', format: 'der' }))
  const fingerprint = sha256Hex(der)
  const serial = normalizeSerial(certificate.serialNumber)
  return {
    serial, fingerprint, spkiSha256,
    record: {
      serial, fingerprint, spkiSha256, certificatePath: path,
      deviceId: identity?.role === 'device' ? identity.deviceId : identity?.role === 'collector' ? identity.name
        : identity?.role === 'integration' ? identity.integrationId : identity?.role === 'supplier' ? identity.supplierId : commonName,
      network: identity?.role === 'integration' ? identity.network : null,
      role: identity?.role ?? 'device',
      kind: identity?.role === 'device' ? identity.kind : null,
      site: identity?.role === 'device' ? identity.site : null,
      notBefore: new Date(certificate.validFrom).toISOString(),
      notAfter: new Date(certificate.validTo).toISOString(),
      keyAlgorithm: keyAlgorithmOf(certificate.publicKey) ?? 'ecdsa-p256',
      status: 'revoked', issuedAt: '', revokedAt: null,
    },
  }
}

function duplicateId (deviceId: string, field: string, holder = 'an identity with an active certificate'): PlaceGuardError {
  return new PlaceGuardError('PG_ERR_PKI_DUPLICATE_ID', `${field}: "${deviceId}" is already ${holder}`, {
    field, hint: 'revoke or remove it first (`placeguard pki revoke`, `placeguard devices remove`), or choose another id',
  })
}

