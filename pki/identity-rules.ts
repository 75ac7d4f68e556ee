/**
 * What a request to the fleet CA may name: a device identity (id, kind,
 * site), a serial to revoke, the key a CSR presents. Pure checks, run
 * before anything is recorded or signed; each throws PG_ERR_INPUT_INVALID
 * naming the library's field (`deviceId`, `csr CN`, `serial`…).
 */
import { invalidInput } from '../shared/errors.ts'
import { assertId, assertKind, type DeviceKind, isReservedId, printable } from '../shared/ids.ts'
import { LORAWAN_NETWORKS, type LorawanNetwork, normalizeDevEui } from '../shared/lorawan.ts'
import { type AccessWindow, assertAccessWindows } from '../shared/access-windows.ts'
import type { KeyAlgorithm } from './certificates.ts'

/** A serial as `pki list` or `openssl x509 -serial` prints it: up to 21 octets of hex. */
const SERIAL_PATTERN = /^[0-9a-fA-F]{1,42}$/

/**
 * A device id that is valid and not one of PlaceGuard's own names: a device
 * certificate for `collector` could take over the collector's session
 * (STRIDE: Spoofing, Information disclosure).
 */
export function assertDeviceId (field: string, value: string): string {
  assertId(field, value)
  if (isReservedId(value)) {
    throw invalidInput(field, `"${value}" is reserved for PlaceGuard's own roles (the collector and the broker), not a device`,
      'choose a device id that does not start with "collector" or "placeguard"')
  }
  return value
}

export interface DeviceIdentityInput { deviceId: string, kind: string, site: string }

/**
 * The identity a device certificate will bind, checked in the order the
 * fields are reported: id (under `idField`: `deviceId`, or `csr CN` when
 * the id comes from a CSR), then kind, then site.
 */
export function assertDeviceIdentity (idField: string, input: DeviceIdentityInput): { deviceId: string, kind: DeviceKind, site: string } {
  const deviceId = assertDeviceId(idField, input.deviceId)
  const kind = assertKind('kind', input.kind)
  const site = assertId('site', input.site)
  return { deviceId, kind, site }
}

/**
 * An integration's identity: its id is its MQTT client id, in the devices'
 * namespace, so it is held to the same rules (reserved names included).
 */
export function assertIntegrationIdentity (input: { integrationId: string, network: string, site: string }): { integrationId: string, network: LorawanNetwork, site: string } {
  const integrationId = assertDeviceId('integrationId', input.integrationId)
  if (!(LORAWAN_NETWORKS as readonly string[]).includes(input.network)) {
    throw invalidInput('network', `unknown LoRaWAN network server "${printable(input.network)}"`, `use one of ${LORAWAN_NETWORKS.join(', ')}`)
  }
  const site = assertId('site', input.site)
  return { integrationId, network: input.network as LorawanNetwork, site }
}

/**
 * A supplier's identity and grant (issue 17): its id is its MQTT client id,
 * in the devices' namespace; the kinds and sites it maintains, each listed
 * at least once; its access windows in a maintenance window's syntax.
 */
export function assertSupplierIdentity (input: { supplierId: string, kinds: readonly string[], sites: readonly string[], windows: unknown }): { supplierId: string, kinds: DeviceKind[], sites: string[], windows: AccessWindow[] } {
  const supplierId = assertDeviceId('supplierId', input.supplierId)
  if (input.kinds.length === 0) throw invalidInput('kinds', 'give at least one device kind the supplier maintains', 'e.g. --kinds flood,energy')
  const kinds = [...new Set(input.kinds.map((kind) => assertKind('kinds', kind)))]
  if (input.sites.length === 0) throw invalidInput('sites', 'give at least one site the supplier maintains', 'e.g. --sites riverside,harbour')
  const sites = [...new Set(input.sites.map((site) => assertId('sites', site)))]
  const windows = assertAccessWindows('windows', input.windows)
  return { supplierId, kinds, sites, windows }
}

export interface LorawanDeviceInput { deviceId: string, kind: string, site: string, devEui: string, integrationId: string }

/** A device to register behind an integration, checked in the order of `devices add`'s flags; the DevEUI comes back lower-case. */
export function assertLorawanDevice (input: LorawanDeviceInput): { deviceId: string, kind: DeviceKind, site: string, devEui: string, integrationId: string } {
  const { deviceId, kind, site } = assertDeviceIdentity('deviceId', input)
  const devEui = normalizeDevEui(input.devEui)
  if (!devEui) throw invalidInput('devEui', `"${printable(input.devEui)}" is not a DevEUI`, 'give its 16 hex digits, e.g. 0004a30b001c0530 (either case, no separators)')
  const integrationId = assertId('integrationId', input.integrationId)
  return { deviceId, kind, site, devEui, integrationId }
}

/** A serial to revoke (`revokeSerial`), in any case and with or without leading zeros. */
export function assertSerial (value: string): string {
  if (!SERIAL_PATTERN.test(value)) {
    throw invalidInput('serial', `"${printable(value)}" is not a hexadecimal serial number`, 'copy it from `placeguard pki list` or `openssl x509 -noout -serial`')
  }
  return value
}

/** The key a CSR presents must be one the fleet signs: `keyAlgorithmOf` answers undefined for any other. */
export function assertCsrKeyAlgorithm (algorithm: KeyAlgorithm | undefined): KeyAlgorithm {
  if (!algorithm) throw invalidInput('csr', 'the key is neither ECDSA P-256 nor RSA ≥ 2048 bits')
  return algorithm
}
