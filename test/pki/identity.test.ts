import { describe, expect, it } from 'vitest'
import { identityFromSubjectAltName, identityUri, parseIdentityUri } from '../../pki/index.ts'

describe('identity URIs', () => {
  it('round-trips a device identity', () => {
    const identity = { role: 'device', deviceId: 'meter-9', kind: 'energy', site: 'depot' } as const
    expect(identityUri(identity)).toBe('urn:placeguard:device:depot:energy:meter-9')
    expect(parseIdentityUri(identityUri(identity))).toEqual(identity)
  })

  it.each([
    'urn:placeguard:device:depot:lava:meter-9',
    'urn:placeguard:device:depot:energy:meter/9',
    'urn:placeguard:device:depot:energy:meter+9',
    'urn:placeguard:device:Depot:energy:m',
    'urn:placeguard:device:depot:energy:',
    'urn:placeguard:device:depot:energy:m:extra',
    'urn:other:device:depot:energy:m',
  ])('rejects %s', (uri) => {
    expect(parseIdentityUri(uri)).toBeUndefined()
  })

  it('reads exactly one PlaceGuard URI from a subjectaltname string', () => {
    expect(identityFromSubjectAltName('DNS:x, URI:urn:placeguard:device:a:flood:f-1')).toEqual({ role: 'device', deviceId: 'f-1', kind: 'flood', site: 'a' })
    expect(identityFromSubjectAltName('URI:urn:placeguard:collector:collector')).toEqual({ role: 'collector', name: 'collector' })
    expect(identityFromSubjectAltName('URI:urn:placeguard:device:a:flood:f-1, URI:urn:placeguard:device:a:flood:f-2')).toBeUndefined()
    expect(identityFromSubjectAltName('DNS:localhost, IP Address:127.0.0.1')).toBeUndefined()
    expect(identityFromSubjectAltName(undefined)).toBeUndefined()
  })
})

describe('integration identity URIs (issue 16)', () => {
  it('round-trips an integration identity', () => {
    const identity = { role: 'integration', integrationId: 'cs-north', network: 'chirpstack' } as const
    expect(identityUri(identity)).toBe('urn:placeguard:integration:chirpstack:cs-north')
    expect(parseIdentityUri(identityUri(identity))).toEqual(identity)
    expect(identityFromSubjectAltName('URI:urn:placeguard:integration:tts:tts-east')).toEqual({ role: 'integration', integrationId: 'tts-east', network: 'tts' })
  })

  it.each([
    'urn:placeguard:integration:loriot:cs-north',
    'urn:placeguard:integration:chirpstack:cs/north',
    'urn:placeguard:integration:chirpstack:cs+north',
    'urn:placeguard:integration:chirpstack:',
    'urn:placeguard:integration:chirpstack:cs-north:riverside',
    'urn:placeguard:integration:ChirpStack:cs-north',
  ])('rejects %s', (uri) => {
    expect(parseIdentityUri(uri)).toBeUndefined()
  })
})
