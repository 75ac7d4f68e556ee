import { describe, expect, it } from 'vitest'
import { cefAuditMessage } from '../../delivery/cef.ts'
import type { AuditRecord } from '../../delivery/sink.ts'
import { parseCef } from '../helpers/cef.ts'

const HASH = 'a'.repeat(64)
const entry = (fields: Partial<AuditRecord> = {}): AuditRecord => ({
  seq: 41, at: '2026-12-01T09:30:00.123Z', actor: 'operator:3f2a1b0c', action: 'alert.acknowledge', subject: 'alr-7',
  from: '10.0.0.7', detail: { outcome: 'requested', comment: 'on it' }, hash: HASH, ...fields,
})

describe('cefAuditMessage', () => {
  it('maps an entry to its own signature, Low, and a fixed set of extension keys', () => {
    const { header, extension } = parseCef(cefAuditMessage(entry(), '0.1.0'))
    expect(header).toEqual(['CEF:0', 'PlaceGuard', 'PlaceGuard', '0.1.0', 'audit:alert.acknowledge', 'alert.acknowledge requested', '3'])
    expect(Object.fromEntries(extension)).toEqual({
      rt: String(Date.parse('2026-12-01T09:30:00.123Z')), suser: 'operator:3f2a1b0c', act: 'alert.acknowledge', outcome: 'requested', src: '10.0.0.7',
      msg: 'operator:3f2a1b0c alert.acknowledge alr-7: requested', cn1Label: 'seq', cn1: '41', cs1Label: 'hash', cs1: HASH,
      cs2Label: 'subject', cs2: 'alr-7', cs3Label: 'detail', cs3: '{"comment":"on it"}', cs4Label: 'from', cs4: '10.0.0.7',
    })
  })

  it('names the machine of a CLI entry as shost, not src, and leaves out a subject it has not', () => {
    const { extension } = parseCef(cefAuditMessage(entry({ actor: 'cli:alice', action: 'advisories.sync', subject: null, from: 'cli@ops-1' }), '0.1.0'))
    expect(extension.get('shost')).toBe('ops-1')
    expect(extension.has('src')).toBe(false)
    expect(extension.has('cs2')).toBe(false)
    expect(parseCef(cefAuditMessage(entry({ from: '::1' }), '0.1.0')).extension.get('src')).toBe('::1')
  })

  it('keeps text an operator or a device chose (a comment, a device id in a topic) inside its field', () => {
    const hostile = 'x|y=1\\z\nCEF:0|fake|fake|1|audit:pki.revoke|forged|10|suser=root\r\nact=pki.revoke'
    const line = cefAuditMessage(entry({ subject: hostile, detail: { outcome: 'done', comment: hostile } }), '0.1.0')
    expect(line).not.toMatch(/[\r\n]/)
    const { header, extension } = parseCef(line)
    expect(header[4]).toBe('audit:alert.acknowledge')
    expect(extension.get('suser')).toBe('operator:3f2a1b0c')
    expect(extension.get('act')).toBe('alert.acknowledge')
    expect(extension.get('cs2')).toBe(hostile)
    expect(JSON.parse(extension.get('cs3')!)).toEqual({ comment: hostile })
  })
})
