import { DEVICE_KINDS, type DeviceKind, ID_PATTERN } from '../shared/ids.ts'
import { LORAWAN_NETWORKS, type LorawanNetwork } from '../shared/lorawan-networks.ts'

/**
 * What a certificate says its holder is. The broker trusts only this, read
 * from a certificate that chained to the fleet CA — never the MQTT client id
 * or username the peer sends (STRIDE: Spoofing). An `integration` is a
 * LoRaWAN network server's MQTT integration, publishing for the devices it
 * serves (issue 16).
 */
export type Identity =
  | { role: 'device', deviceId: string, kind: DeviceKind, site: string }
  | { role: 'collector', name: string }
  | { role: 'integration', integrationId: string, network: LorawanNetwork }
  // A supplier maintaining devices remotely (issue 17): its kinds, sites and windows are in the inventory, not the URN.
  | { role: 'supplier', supplierId: string }

const URN_PREFIX = 'urn:placeguard:'
const ID = ID_PATTERN.source.slice(1, -1)
const DEVICE_URN = new RegExp(`^urn:placeguard:device:(${ID}):(${DEVICE_KINDS.join('|')}):(${ID})$`)
const COLLECTOR_URN = new RegExp(`^urn:placeguard:collector:(${ID})$`)
// An integration's site is not in its URN (PRODUCT.md fixes `urn:placeguard:integration:<network>:<id>`):
// the inventory keeps it, and nothing the broker decides depends on it.
const INTEGRATION_URN = new RegExp(`^urn:placeguard:integration:(${LORAWAN_NETWORKS.join('|')}):(${ID})$`)
// A supplier's kinds, sites and windows change without reissuing: the broker asks the inventory at each connect.
const SUPPLIER_URN = new RegExp(`^urn:placeguard:supplier:(${ID})$`)

/**
 * The SAN URI that binds a certificate to its holder:
 * `urn:placeguard:device:<site>:<kind>:<id>`, `urn:placeguard:collector:<name>`,
 * `urn:placeguard:integration:<network>:<id>`, `urn:placeguard:supplier:<id>`.
 */
export function identityUri (identity: Identity): string {
  switch (identity.role) {
    case 'device': return `${URN_PREFIX}device:${identity.site}:${identity.kind}:${identity.deviceId}`
    case 'collector': return `${URN_PREFIX}collector:${identity.name}`
    case 'integration': return `${URN_PREFIX}integration:${identity.network}:${identity.integrationId}`
    case 'supplier': return `${URN_PREFIX}supplier:${identity.supplierId}`
  }
}

export function parseIdentityUri (uri: string): Identity | undefined {
  const device = DEVICE_URN.exec(uri)
  if (device) return { role: 'device', site: device[1]!, kind: device[2] as DeviceKind, deviceId: device[3]! }
  const collector = COLLECTOR_URN.exec(uri)
  if (collector) return { role: 'collector', name: collector[1]! }
  const integration = INTEGRATION_URN.exec(uri)
  if (integration) return { role: 'integration', network: integration[1] as LorawanNetwork, integrationId: integration[2]! }
  const supplier = SUPPLIER_URN.exec(uri)
  if (supplier) return { role: 'supplier', supplierId: supplier[1]! }
  return undefined
}

/**
 * Reads the identity from Node's `subjectaltname` string of a verified peer
 * certificate ("DNS:a, URI:urn:…"). Exactly one PlaceGuard URI must be
 * present: a certificate naming two identities names none.
 */
export function identityFromSubjectAltName (subjectAltName: string | undefined): Identity | undefined {
  if (!subjectAltName) return undefined
  const uris = subjectAltName.split(', ')
    .filter((entry) => entry.startsWith(`URI:${URN_PREFIX}`))
    .map((entry) => entry.slice('URI:'.length))
  if (uris.length !== 1) return undefined
  return parseIdentityUri(uris[0]!)
}

/** A short stable name for logs and events: the device id, `collector:<name>`, `integration:<id>` or `supplier:<id>`. */
export function identityName (identity: Identity): string {
  switch (identity.role) {
    case 'device': return identity.deviceId
    case 'collector': return `collector:${identity.name}`
    case 'integration': return `integration:${identity.integrationId}`
    case 'supplier': return `supplier:${identity.supplierId}`
  }
}
