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
