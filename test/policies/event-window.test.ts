import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { SecurityEvent } from '../../broker/index.ts'
import { AlertBook } from '../../detection/alert-book.ts'
import { emptyWindow, eventWindowRule, MAX_CLAIMS_PER_ADDRESS } from '../../policies/rules/event-window.ts'
import { loadPolicyDirectory, PolicyEngine } from '../../policies/index.ts'
import { policySchema, type PolicyOf } from '../../policies/schema.ts'

const shipped = loadPolicyDirectory(join(import.meta.dirname, '..', '..', 'policies')).map((l) => l.policy)
const refused = (claimedId: string, remoteAddress: string): SecurityEvent =>
  ({ type: 'tls-rejected', at: '2026-11-23T12:00:00Z', reason: 'self-signed certificate', code: 'DEPTH_ZERO_SELF_SIGNED_CERT', claimedId, remoteAddress })

describe('cert-rejected for unverified claims (defect 3)', () => {
  it('500 handshakes claiming 500 ids from one address make one alert, with the claims bounded in its evidence', async () => {
    const clock = { ms: Date.parse('2026-11-23T12:00:00Z'), now: () => clock.ms }
    const engine = new PolicyEngine(shipped, clock)
    const book = new AlertBook({ clock })
    const changes = []
    for (let i = 0; i < 500; i++) {
      clock.ms += 10
      for (const finding of engine.onSecurityEvent(refused(`attacker-${i}`, `203.0.113.7:${40_000 + i}`)).findings) changes.push((await book.raise(finding)))
    }
    expect(changes.filter((c) => c.change === 'opened').map((c) => c.alert.deviceId)).toEqual(['address:203.0.113.7'])
    const [alert] = (await book.list({ policy: 'cert-rejected' }))
    expect((await book.list({ policy: 'cert-rejected' }))).toHaveLength(1)
    expect(JSON.parse(String(alert!.evidence.claimedIds))).toHaveLength(MAX_CLAIMS_PER_ADDRESS)
    expect(alert!.evidence.claimedIdsNotShown).toBe(500 - MAX_CLAIMS_PER_ADDRESS)
    expect(alert!.summary).not.toContain('attacker-')
  })

  it('keeps a certificate the fleet CA signed keyed by its device id', async () => {
    const engine = new PolicyEngine(shipped, { now: () => 1_000 })
    const expired: SecurityEvent = { type: 'tls-rejected', at: '2026-11-23T12:00:00Z', reason: 'certificate expired', code: 'CERT_HAS_EXPIRED', deviceId: 'flood-7', remoteAddress: '203.0.113.7:1' }
    expect(engine.onSecurityEvent(expired).findings.map((f) => f.deviceId)).toEqual(['flood-7'])
  })

  it('escapes bidi and zero-width characters in a claim and caps its length; the summary never carries it', async () => {
    const rule = policySchema.parse({ id: 'cert-rejected', severity: 'high' }) as PolicyOf<'cert-rejected'>
    const claim = 'flood-1\u202Egnp.exe\u200B' + 'x'.repeat(500)
    const { finding } = eventWindowRule(rule, 'address:198.51.100.1', emptyWindow(), refused(claim, '198.51.100.1:9'), 1_000)
    const [shown] = JSON.parse(String(finding!.evidence.claimedIds)) as string[]
    expect(shown).toContain('\\u202e')
    expect(shown).toContain('\\u200b')
    expect(shown).not.toMatch(/[\u202E\u200B]/)
    expect(shown!.length).toBeLessThan(100)
    expect(finding!.summary).not.toContain('flood-1')
  })

  it('forgets claims with the window that held them', async () => {
    const rule = policySchema.parse({ id: 'cert-rejected', severity: 'high', params: { threshold: 1, window: '1m' } }) as PolicyOf<'cert-rejected'>
    const first = eventWindowRule(rule, 'address:a', emptyWindow(), refused('old-claim', 'a:1'), 0)
    const later = eventWindowRule(rule, 'address:a', first.state, refused('new-claim', 'a:2'), 120_000)
    expect(JSON.parse(String(later.finding!.evidence.claimedIds))).toEqual(['new-claim'])
  })

  it('holds at most 50k windows at once, forgetting the least recently touched and counting it', async () => {
    const engine = new PolicyEngine(shipped, { now: () => 0 })
    for (let i = 0; i < 50_010; i++) engine.onSecurityEvent(refused('x', `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:1`))
    expect(engine.windowStats).toEqual({ windows: 50_000, evicted: 10 })
  })

  it('sweeps windows whose events have left them, so one-off addresses do not pile up', async () => {
    const clock = { ms: 0, now: () => clock.ms }
    const engine = new PolicyEngine(shipped, clock)
    for (let i = 0; i < 1_000; i++) engine.onSecurityEvent(refused('x', `198.51.100.${i % 250}.${i}:1`))
    expect(engine.windowStats.windows).toBe(1_000)
    clock.ms += 3_600_000 // past cert-rejected's 10 min window and the sweep interval
    engine.onSecurityEvent(refused('x', '192.0.2.1:1'))
    expect(engine.windowStats).toEqual({ windows: 1, evicted: 0 })
  })
})
