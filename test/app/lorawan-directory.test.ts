/**
 * The collector's view of the LoRaWAN registry (app/collector-service.ts
 * `lorawanDirectory`): a device an operator has just added is known at its
 * next uplink, not a minute later, and unknown DevEUIs sent on purpose make
 * it read the PKI at most every 2 s.
 */
import { describe, expect, it } from 'vitest'
import { lorawanDirectory } from '../../app/collector-service.ts'

const flood = (deviceId: string, devEui: string) => ({ deviceId, kind: 'flood', site: 'riverside', devEui, integrationId: 'cs-council' })

describe('the collector\'s LoRaWAN directory', () => {
  it('re-reads the registry for a DevEUI it does not know, at most every 2 s', () => {
    let registered = [flood('gauge-1', '0101010101010101')]
    let loads = 0
    let nowMs = 1_000_000
    const directory = lorawanDirectory(() => { loads++; return registered }, () => nowMs)
    directory.update(registered)
    expect(directory.registry.byDevEui('0101010101010101')?.deviceId).toBe('gauge-1')
    expect(loads).toBe(0)

    // `devices add` while the collector runs: the next uplink of the new device finds it.
    registered = [...registered, flood('gauge-2', '0202020202020202')]
    nowMs += 2_500
    expect(directory.registry.byDevEui('0202020202020202')?.deviceId).toBe('gauge-2')
    expect(directory.partitionKeyOf('gauge-2')).toBe('cs-council')
    expect(loads).toBe(1)

    // A flood of unknown DevEUIs reads the PKI once per 2 s, not once per uplink.
    for (let i = 0; i < 100; i++) expect(directory.registry.byDevEui(`ffffffffffff${String(i).padStart(4, '0')}`)).toBeUndefined()
    expect(loads).toBe(1)
    nowMs += 2_000
    expect(directory.registry.byDevEui('ffffffffffffffff')).toBeUndefined()
    expect(loads).toBe(2)
  })

  it('keeps what it read last when the PKI cannot be read', () => {
    let nowMs = 0
    const directory = lorawanDirectory(() => { throw new Error('database is locked') }, () => nowMs)
    directory.update([flood('gauge-1', '0101010101010101')])
    nowMs = 10_000
    expect(directory.registry.byDevEui('0202020202020202')).toBeUndefined()
    expect(directory.registry.byDevEui('0101010101010101')?.deviceId).toBe('gauge-1')
  })
})
