import { DEVICE_KINDS, type DeviceKind, ID_PATTERN } from '../shared/ids.ts'

/**
 * What a certificate says its holder is. The broker trusts only this, read
 * from a certificate that chained to the fleet CA — never the MQTT client id
 * or username the peer sends (STRIDE: Spoofing).
 */
export type Identity =
  | { role: 'device', deviceId: string, kind: DeviceKind, site: string }
  | { role: 'collector', name: string }

const URN_PREFIX = 'urn:placeguard:'
const DEVICE_URN = new RegExp(
  `^urn:placeguard:device:(${ID_PATTERN.source.slice(1, -1)}):(${DEVICE_KINDS.join('|')}):(${ID_PATTERN.source.slice(1, -1)})$`,
)
const COLLECTOR_URN = new RegExp(`^urn:placeguard:collector:(${ID_PATTERN.source.slice(1, -1)})$`)

/** The SAN URI that binds a certificate to a device: `urn:placeguard:device:<site>:<kind>:<id>`. */
export function identityUri (identity: Identity): string {
  return identity.role === 'device'
    ? `${URN_PREFIX}device:${identity.site}:${identity.kind}:${identity.deviceId}`
    : `${URN_PREFIX}collector:${identity.name}`
}

export function parseIdentityUri (uri: string): Identity | undefined {
  const device = DEVICE_URN.exec(uri)
  if (device) return { role: 'device', site: device[1]!, kind: device[2] as DeviceKind, deviceId: device[3]! }
  const collector = COLLECTOR_URN.exec(uri)
  if (collector) return { role: 'collector', name: collector[1]! }
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

/** A short stable name for logs and events: the device id, or `collector:<name>`. */
export function identityName (identity: Identity): string {
  return identity.role === 'device' ? identity.deviceId : `collector:${identity.name}`
}
