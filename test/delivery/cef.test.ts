import { describe, expect, it } from 'vitest'
import { cefMessage } from '../../delivery/cef.ts'
import type { Delivery, DeliveredChange } from '../../delivery/sink.ts'
import type { Alert } from '../../shared/alert-contract.ts'
import { alertOf, deliveryOf } from '../helpers/alerts.ts'
import { parseCef } from '../helpers/cef.ts'

/** A fixed firmware-outdated alert, every field known, so the expected CEF can be written out in full. */
const FIRMWARE_OUTDATED: Partial<Alert> = {
  id: '6f1c0a52-3a8e-4b8e-9d3c-1f2e3d4c5b6a', policy: 'firmware-outdated', severity: 'high', deviceId: 'flood-001',
  site: 'riverside', kind: 'flood', summary: 'firmware 1.2.0 is older than the minimum 2.0.0 for flood devices',
  detectedAt: '2025-03-04T05:06:07.089Z', evidence: { firmware: '1.2.0', minimum: '2.0.0', current: false },
  stride: 'Tampering', attack: 'T0866 Exploitation of Remote Services', lastSeenAt: '2025-03-04T05:06:07.089Z', occurrences: 2,
}

const delivery = (alert: Partial<Alert> = {}, change: DeliveredChange = 'opened'): Delivery =>
  deliveryOf(alertOf({ ...FIRMWARE_OUTDATED, ...alert }), change, { id: 'delivery-1', createdAtMs: Date.parse('2025-03-04T05:06:09.000Z') })

const HOSTILE_FIRMWARE = '3.0|evil=1\\x\nCEF:0|fake|fake|1|x|y|10|act=blocked\r\nsuid=attacker'
const HOSTILE_ID = 'flood-0|0=1\\x\r\n]"cat=Spoofing'

describe('cefMessage', () => {
  it('maps an alert to the CEF header and a fixed set of extension keys', () => {
    const line = cefMessage(delivery(), '0.1.0')
    const { header, extension } = parseCef(line)
    expect(header).toEqual(['CEF:0', 'PlaceGuard', 'PlaceGuard', '0.1.0', 'firmware-outdated', 'firmware 1.2.0 is older than the minimum 2.0.0 for flood devices', '8'])
    expect(Object.fromEntries(extension)).toEqual({
      rt: String(Date.parse('2025-03-04T05:06:07.089Z')), externalId: '6f1c0a52-3a8e-4b8e-9d3c-1f2e3d4c5b6a', act: 'opened',
      cat: 'Tampering', suid: 'flood-001', msg: 'firmware 1.2.0 is older than the minimum 2.0.0 for flood devices',
      cn1Label: 'occurrences', cn1: '2', cs1Label: 'evidence', cs1: '{"firmware":"1.2.0","minimum":"2.0.0","current":false}',
      cs2Label: 'attack', cs2: 'T0866 Exploitation of Remote Services', cs3Label: 'site', cs3: 'riverside', cs4Label: 'kind', cs4: 'flood',
    })
  })

  it.each([['info', '1'], ['low', '3'], ['medium', '5'], ['high', '8'], ['critical', '10']] as const)('gives severity %s the CEF severity %s', (severity, cef) => {
    expect(parseCef(cefMessage(delivery({ severity }), '0.1.0')).header[6]).toBe(cef)
  })

  it('leaves out what the alert does not have, and carries the response and resolution when it does', () => {
    const bare = parseCef(cefMessage(delivery({ site: null, kind: null, attack: null }), '0.1.0')).extension
    expect([...bare.keys()]).toEqual(['rt', 'externalId', 'act', 'cat', 'suid', 'msg', 'cn1Label', 'cn1', 'cs1Label', 'cs1'])

    const resolved = parseCef(cefMessage(delivery({
      status: 'resolved', resolvedAt: '2025-03-04T06:00:00.000Z', resolution: 'auto: firmware updated to 2.1.0',
      response: { action: 'quarantine', status: 'ended', until: '2025-03-04T05:36:07.089Z', updatedAt: '2025-03-04T05:36:07.089Z', detail: null },
    }, 'resolved'), '0.1.0')).extension
    expect(resolved.get('act')).toBe('resolved')
    expect(resolved.get('cs5Label')).toBe('response')
    expect(resolved.get('cs5')).toBe('quarantine ended until 2025-03-04T05:36:07.089Z')
    expect(resolved.get('cs6Label')).toBe('resolution')
    expect(resolved.get('cs6')).toBe('auto: firmware updated to 2.1.0')
  })

  it('keeps a hostile firmware string, device id and evidence to their own values: one line, no field or key injected', () => {
    const summary = `device runs firmware ${HOSTILE_FIRMWARE}, older than 4.0`
    const evidence = { firmware: HOSTILE_FIRMWARE, [HOSTILE_ID]: 'x=y|z\\', note: 'a]"b' }
    const line = cefMessage(delivery({ summary, deviceId: HOSTILE_ID, evidence, site: 'site|a=b', kind: 'k\\' }), '1.0|x=y')

    expect(line).not.toMatch(/[\r\n]/)
    const { header, extension } = parseCef(line)
    // The header cannot hold a newline: the spec has no escape for one there, so it is a space.
    expect(header).toEqual(['CEF:0', 'PlaceGuard', 'PlaceGuard', '1.0|x=y', 'firmware-outdated', summary.replace(/\r|\n/g, ' '), '8'])
    expect([...extension.keys()]).toEqual(['rt', 'externalId', 'act', 'cat', 'suid', 'msg', 'cn1Label', 'cn1', 'cs1Label', 'cs1',
      'cs2Label', 'cs2', 'cs3Label', 'cs3', 'cs4Label', 'cs4'])
    expect(extension.get('msg')).toBe(summary)
    expect(extension.get('suid')).toBe(HOSTILE_ID)
    expect(extension.get('act')).toBe('opened')
    expect(extension.get('cat')).toBe('Tampering')
    expect(JSON.parse(extension.get('cs1')!)).toEqual(evidence)
    expect(extension.get('cs3')).toBe('site|a=b')
    expect(extension.get('cs4')).toBe('k\\')
  })

  it('would see a field or key injected if the text were not escaped (the reader is not lenient)', () => {
    expect(() => parseCef('CEF:0|PlaceGuard|PlaceGuard|0.1.0|firmware-outdated|firmware 3.0|evil|8|msg=x')).toThrow(/extension does not parse/)
    expect(Object.fromEntries(parseCef('CEF:0|a|b|c|d|e|8|msg=firmware 3.0 evil=1').extension)).toEqual({ msg: 'firmware 3.0', evil: '1' })
    expect(() => parseCef(`CEF:0|a|b|c|d|e|8|msg=${HOSTILE_FIRMWARE}`)).toThrow()
  })

  it('turns every other control character and Unicode line separator into a space', () => {
    const summary = 'a\u0000b\u001b[31mc\td\u007fe\u0085f\u2028g\u2029h'
    const line = cefMessage(delivery({ summary, deviceId: summary }), '0.1.0')
    expect(line).not.toMatch(/[\p{Cc}\p{Zl}\p{Zp}]/u)
    const { header, extension } = parseCef(line)
    expect(header[5]).toBe('a b [31mc d e f g h')
    expect(extension.get('msg')).toBe('a b [31mc d e f g h')
    expect(extension.get('suid')).toBe('a b [31mc d e f g h')
  })

  it('cuts fields to the spec\'s lengths without splitting a character', () => {
    const summary = '🌊'.repeat(2000)
    const { header, extension } = parseCef(cefMessage(delivery({ summary }), '0.1.0'))
    expect([...header[5]!]).toHaveLength(512)
    expect([...extension.get('msg')!]).toHaveLength(1023)
    expect(header[5]!.isWellFormed() && extension.get('msg')!.isWellFormed()).toBe(true)
  })
})
