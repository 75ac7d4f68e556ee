import { invalidInput } from './errors.ts'

/** Device ids and site names (docs/product.md): lower-case letters, digits and '-', 1–64 long. */
export const ID_PATTERN = /^[a-z0-9-]{1,64}$/

export const DEVICE_KINDS = ['flood', 'energy', 'housing'] as const
export type DeviceKind = typeof DEVICE_KINDS[number]

export function isValidId (value: string): boolean {
  return ID_PATTERN.test(value)
}

/**
 * Names the broker keeps for its own roles: the collector's client ids
 * (`collector`, `collector-<name>`, the operator CLI's `collector-operator`)
 * and anything under `placeguard`. A device holding one could resume a
 * collector's persistent session and read the fleet's telemetry (STRIDE:
 * Spoofing, Information disclosure), so the PKI refuses to sign them as
 * device ids and the broker refuses them at CONNECT.
 */
export const RESERVED_ID_PATTERN = /^(collector|placeguard)(-|$)/

export function isReservedId (value: string): boolean {
  return RESERVED_ID_PATTERN.test(value)
}

export function isDeviceKind (value: string): value is DeviceKind {
  return (DEVICE_KINDS as readonly string[]).includes(value)
}

/**
 * Ids end up inside MQTT topic patterns, so '+', '#' and '/' would widen an
 * ACL (STRIDE: Elevation of privilege). The pattern excludes them, and every
 * other character outside [a-z0-9-], before an id is stored or signed.
 */
export function assertId (field: string, value: string): string {
  if (!isValidId(value)) {
    throw invalidInput(field, `"${printable(value)}" is not a valid id`, 'use 1–64 characters from a-z, 0-9 and "-"')
  }
  return value
}

export function assertKind (field: string, value: string): DeviceKind {
  if (!isDeviceKind(value)) {
    throw invalidInput(field, `unknown kind "${printable(value)}"`, `use one of ${DEVICE_KINDS.join(', ')}`)
  }
  return value
}

/** Renders untrusted text for an error message: control characters escaped, length capped. */
export function printable (value: string, max = 80): string {
  const escaped = JSON.stringify(value.length > max ? value.slice(0, max) + '…' : value)
  return escaped.slice(1, -1)
}
