import { describe, expect, it } from 'vitest'
import { canPublish, canSubscribe } from '../../broker/index.ts'
import type { Identity } from '../../pki/index.ts'

const device: Identity = { role: 'device', deviceId: 'flood-1', kind: 'flood', site: 'riverside' }
const collector: Identity = { role: 'collector', name: 'collector' }
const own = 'places/riverside/flood/flood-1'

describe('canPublish', () => {
  it.each([
    [`${own}/telemetry`, true],
    [`${own}/status/battery`, true],
    [own, false],
    [`${own}/`, false],
    ['places/riverside/flood/flood-10/telemetry', false],
    ['places/riverside/flood/flood-2/telemetry', false],
    ['places/other/flood/flood-1/telemetry', false],
    ['places/riverside/energy/flood-1/telemetry', false],
    ['$SYS/placeguard/events/connect', false],
    ['$SYS/placeguard/control/quarantine', false],
    [`${own}/+`, false],
  ])('device publish to %s → %s', (topic, allowed) => {
    expect(canPublish(device, topic).allowed).toBe(allowed)
  })

  it('the collector publishes nothing but broker commands', () => {
    expect(canPublish(collector, `${own}/telemetry`)).toEqual({ allowed: false, reason: 'the collector role may publish only broker commands' })
    expect(canPublish(collector, '$SYS/placeguard/events/connect').allowed).toBe(false)
    expect(canPublish(collector, '$SYS/placeguard/control/#').allowed).toBe(false)
    expect(canPublish(collector, '$SYS/placeguard/control/quarantine').allowed).toBe(true)
    expect(canPublish(collector, '$SYS/placeguard/control/probe').allowed).toBe(true)
    expect(canPublish(collector, '$SYS/placeguard/control/probe/x').allowed).toBe(false)
    expect(canPublish(device, '$SYS/placeguard/control/probe').allowed).toBe(false)
  })
})

describe('canSubscribe', () => {
  it.each([
    [`${own}/#`, true],
    [own, true],
    [`${own}/+`, true],
    [`${own}/commands`, true],
    ['places/#', false],
    ['places/riverside/#', false],
    ['places/riverside/flood/+/telemetry', false],
    ['places/+/flood/flood-1/#', false],
    ['#', false],
    ['$SYS/#', false],
    ['places/riverside/flood/flood-10/#', false],
  ])('device subscribe to %s → %s', (filter, allowed) => {
    expect(canSubscribe(device, filter).allowed).toBe(allowed)
  })

  it.each([
    ['places/#', true],
    ['places/riverside/+/+/telemetry', true],
    ['$SYS/placeguard/events/#', true],
    ['$SYS/placeguard/events/tls-rejected', true],
    ['$SYS/#', false],
    ['#', false],
    ['other/#', false],
  ])('collector subscribe to %s → %s', (filter, allowed) => {
    expect(canSubscribe(collector, filter).allowed).toBe(allowed)
  })
})

describe('a LoRaWAN integration (issue 16)', () => {
  const chirpstack: Identity = { role: 'integration', integrationId: 'cs-north', network: 'chirpstack' }
  const tts: Identity = { role: 'integration', integrationId: 'tts-east', network: 'tts' }
  const cs = 'application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event'
  const v3 = 'v3/housing-sensors@riverside-council/devices/block-c-flat-12'

  it.each([
    [chirpstack, `${cs}/up`, true], [chirpstack, `${cs}/join`, true], [chirpstack, `${cs}/status`, true], [chirpstack, `${cs}/log`, true],
    [chirpstack, `${cs}/txack`, false], [chirpstack, `${cs}/up/extra`, false], [chirpstack, `${v3}/up`, false],
    [chirpstack, 'application/app/device/010101010101010/event/up', false],
    [tts, `${v3}/up`, true], [tts, `${v3}/join`, true], [tts, `${v3}/down/queued`, false], [tts, `${cs}/up`, false],
    [chirpstack, `${own}/telemetry`, false], [tts, '$SYS/placeguard/events/connect', false],
    [chirpstack, `$SYS/placeguard/lorawan/cs-north/${cs}/up`, false], [chirpstack, '$SYS/placeguard/control/quarantine', false],
  ])('%o publish to %s → %s', (identity, topic, allowed) => {
    expect(canPublish(identity, topic).allowed).toBe(allowed)
  })

  it('subscribes to nothing; only the collector reads the re-addressed uplinks', () => {
    for (const filter of ['#', 'application/#', 'v3/#', '$SYS/placeguard/lorawan/#', `${cs}/up`]) {
      expect(canSubscribe(chirpstack, filter)).toEqual({ allowed: false, reason: 'an integration may not subscribe' })
    }
    expect(canSubscribe(collector, '$SYS/placeguard/lorawan/#').allowed).toBe(true)
    expect(canSubscribe(collector, 'application/#').allowed).toBe(false)
    expect(canSubscribe(device, '$SYS/placeguard/lorawan/#').allowed).toBe(false)
  })
})

describe('a supplier (issue 17)', () => {
  const supplier: Identity = { role: 'supplier', supplierId: 'acme-pumps' }
  const grant = { supplierId: 'acme-pumps', kinds: ['flood' as const, 'energy' as const], sites: ['riverside', 'harbour'], windows: [] }

  it.each([
    ['places/riverside/flood/flood-1/cmd', true],
    ['places/harbour/energy/meter-4/cmd', true],
    ['places/riverside/housing/flat-1/cmd', false],
    ['places/depot/flood/flood-9/cmd', false],
    ['places/riverside/flood/flood-1/telemetry', false],
    ['places/riverside/flood/flood-1/cmd/extra', false],
    ['places/riverside/flood/cmd', false],
    ['$SYS/placeguard/control/quarantine', false],
  ])('publishes %s: %s', (topic, allowed) => {
    expect(canPublish(supplier, topic, grant).allowed).toBe(allowed)
  })

  it('publishes nothing without a grant, and subscribes to nothing', () => {
    expect(canPublish(supplier, 'places/riverside/flood/flood-1/cmd').allowed).toBe(false)
    for (const filter of ['places/riverside/flood/flood-1/cmd', 'places/#', '#']) expect(canSubscribe(supplier, filter).allowed).toBe(false)
  })

  it('lets a device read its own commands and no other device\'s', () => {
    expect(canSubscribe(device, `${own}/cmd`).allowed).toBe(true)
    expect(canSubscribe(device, 'places/riverside/flood/flood-2/cmd').allowed).toBe(false)
  })
})
