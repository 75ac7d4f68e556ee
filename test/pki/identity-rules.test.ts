import { describe, expect, it } from 'vitest'
import { assertCsrKeyAlgorithm, assertDeviceId, assertDeviceIdentity, assertSerial } from '../../pki/identity-rules.ts'
import { inputRefusal } from '../helpers/refusal.ts'


const device = { deviceId: 'ok-1', kind: 'flood', site: 'a' }

describe('assertDeviceIdentity', () => {
  it('answers the id, kind and site it checked', () => {
    expect(assertDeviceIdentity('deviceId', { deviceId: 'meter-9', kind: 'energy', site: 'depot' })).toEqual({ deviceId: 'meter-9', kind: 'energy', site: 'depot' })
  })

  it.each(['a', '0', '-', 'x'.repeat(64), 'flood-001'])('takes "%s" as a device id (1–64 of a-z, 0-9, "-")', (deviceId) => {
    expect(assertDeviceIdentity('deviceId', { ...device, deviceId }).deviceId).toBe(deviceId)
  })

  // '+', '#' and '/' would widen an MQTT topic pattern the id ends up in.
  it.each(['Flood_1', 'dev+1', 'dev#1', 'a/b', 'x'.repeat(65), '', 'dev 1', 'dév-1'])('refuses "%s" as a device id', (deviceId) => {
    expect(inputRefusal(() => assertDeviceIdentity('deviceId', { ...device, deviceId }), 'deviceId').hint).toBe('use 1–64 characters from a-z, 0-9 and "-"')
  })

  it('names the field the id came from: a CSR\'s CN is reported as `csr CN`', () => {
    inputRefusal(() => assertDeviceIdentity('csr CN', { ...device, deviceId: 'Bad_Device#1' }), 'csr CN')
    inputRefusal(() => assertDeviceIdentity('csr CN', { ...device, deviceId: 'collector' }), 'csr CN')
  })

  it('escapes control characters in the message', () => {
    expect(inputRefusal(() => assertDeviceIdentity('deviceId', { ...device, deviceId: 'a\nb' }), 'deviceId').message).toBe('deviceId: "a\\nb" is not a valid id')
  })

  it.each(['flood', 'energy', 'housing'])('takes kind "%s"', (kind) => {
    expect(assertDeviceIdentity('deviceId', { ...device, kind }).kind).toBe(kind)
  })

  it.each(['lava', 'Flood', ''])('refuses kind "%s", listing the kinds', (kind) => {
    expect(inputRefusal(() => assertDeviceIdentity('deviceId', { ...device, kind }), 'kind').hint).toBe('use one of flood, energy, housing')
  })

  it.each(['a+', '#', 'a/b', 'x'.repeat(65)])('refuses site "%s"', (site) => {
    inputRefusal(() => assertDeviceIdentity('deviceId', { ...device, site }), 'site')
  })

  it('reports the id first, then the kind, then the site', () => {
    inputRefusal(() => assertDeviceIdentity('deviceId', { deviceId: 'A', kind: 'lava', site: 'B' }), 'deviceId')
    inputRefusal(() => assertDeviceIdentity('deviceId', { deviceId: 'a', kind: 'lava', site: 'B' }), 'kind')
  })
})

describe('assertDeviceId: reserved names', () => {
  it.each(['collector-x', 'placeguard-y'])('refuses "%s", naming the field and the prefixes to avoid', (name) => {
    const error = inputRefusal(() => assertDeviceId('deviceId', name), 'deviceId')
    expect(error.message).toBe(`deviceId: "${name}" is reserved for PlaceGuard's own roles (the collector and the broker), not a device`)
    expect(error.hint).toBe('choose a device id that does not start with "collector" or "placeguard"')
  })

  it.each(['collectors', 'my-collector', 'placeguardian', 'pg-collector-1'])('takes "%s": reserved means the name or its "-" prefix', (name) => {
    expect(assertDeviceId('deviceId', name)).toBe(name)
  })

  it('checks the shape before the reservation', () => {
    expect(inputRefusal(() => assertDeviceId('deviceId', 'collector/#'), 'deviceId').message).toContain('is not a valid id')
  })
})

describe('assertSerial', () => {
  it.each(['1', 'F', '0a', '7FFFffff', 'f'.repeat(42)])('takes "%s": 1–42 hex digits, any case', (serial) => {
    expect(assertSerial(serial)).toBe(serial)
  })

  it.each(['', 'f'.repeat(43), '0x1f', 'not-hex', '12:ab', ' 1f'])('refuses "%s"', (serial) => {
    expect(inputRefusal(() => assertSerial(serial), 'serial').hint).toBe('copy it from `placeguard pki list` or `openssl x509 -noout -serial`')
  })
})

describe('assertCsrKeyAlgorithm', () => {
  it('takes the key algorithms the fleet signs', () => {
    expect(assertCsrKeyAlgorithm('ecdsa-p256')).toBe('ecdsa-p256')
    expect(assertCsrKeyAlgorithm('rsa-2048')).toBe('rsa-2048')
  })

  it('refuses any other key (keyAlgorithmOf answered undefined)', () => {
    expect(inputRefusal(() => assertCsrKeyAlgorithm(undefined), 'csr').message).toBe('csr: the key is neither ECDSA P-256 nor RSA ≥ 2048 bits')
  })
})
