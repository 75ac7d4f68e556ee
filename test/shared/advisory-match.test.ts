/**
 * Matching devices to advisories (shared/advisory-match.ts and
 * version-range.ts): vers: ranges exactly as the VERS spec evaluates them,
 * vendor-style ranges best-effort and low confidence, exact versions high,
 * VEX not-affected and fixed versions never matched.
 */
import { describe, expect, it } from 'vitest'
import { type Advisory, AdvisoryIndex } from '../../shared/advisory-match.ts'
import { compareGeneric, inRange, parseRange, parseVers } from '../../shared/version-range.ts'

const advisory = (id: string, products: Advisory['products'], cvss = 7.5): Advisory => ({ id, title: id, cves: [`CVE-2026-${id.slice(-4)}`], cvss, remediation: `update (${id})`, products })
const meter = { vendor: 'Acme Metering', model: 'EM-400' }

describe('vers: ranges', () => {
  it('evaluates intervals, equality and exclusions as the VERS spec does', () => {
    const range = parseVers('vers:generic/>=1.0.0|<2.3.4|>=3.0|<=3.1|4.0.0|!=1.5')
    expect(inRange(range, '0.9')).toBe(false)
    expect(inRange(range, '1.0.0')).toBe(true)
    expect(inRange(range, '2.3.3')).toBe(true)
    expect(inRange(range, '2.3.4')).toBe(false)
    expect(inRange(range, '1.5')).toBe(false)
    expect(inRange(range, '3.1')).toBe(true)
    expect(inRange(range, '3.2')).toBe(false)
    expect(inRange(range, '4.0.0')).toBe(true)
    expect(inRange(parseVers('vers:generic/*'), 'anything')).toBe(true)
    expect(inRange(parseVers('vers:semver/<1.2.0|>=2.0.0'), '1.10.0')).toBe(false)
    expect(inRange(parseVers('vers:semver/<1.2.0|>=2.0.0'), '2.0.1')).toBe(true)
  })

  it('refuses what is not a range, saying what', () => {
    expect(() => parseVers('vers:semver/<1.x')).toThrow(/not a semantic version/)
    expect(() => parseVers('vers:generic/>=1.0|>=1.0')).toThrow(/appears twice/)
    expect(() => parseRange('roughly 2')).toThrow(/neither a version/)
    expect(() => parseRange('<=')).toThrow()
    expect(() => parseRange('vers:generic/<1.0%')).toThrow(/not a percent-encoded version/)
  })

  it('orders vendor versions by their numbers, a leading V aside', () => {
    expect(compareGeneric('V3.0.29', '3.0.3')).toBeGreaterThan(0)
    expect(compareGeneric('1.2.0.301', '1.2.0.41')).toBeGreaterThan(0)
    expect(compareGeneric('v2.4', '2.4')).toBe(0)
  })
})

describe('AdvisoryIndex.match', () => {
  it('matches an exact product_version with high confidence, vendor and model compared loosely', () => {
    const index = new AdvisoryIndex([advisory('ICSA-26-001-0001', [{ ...meter, version: '5.2.1', range: null, status: 'affected' }])])
    expect(index.match({ vendor: ' acme  METERING', model: 'em-400 ' }, '5.2.1')).toMatchObject([{ advisory: { id: 'ICSA-26-001-0001' }, confidence: 'high' }])
    expect(index.match(meter, '5.2.2')).toEqual([])
    expect(index.match({ ...meter, model: 'EM-500' }, '5.2.1')).toEqual([])
  })

  it('labels vendor-style ranges low confidence, vers: ranges high', () => {
    const index = new AdvisoryIndex([
      advisory('ICSA-26-001-0002', [{ ...meter, version: null, range: '<V3.0.29', status: 'affected' }], 9.8),
      advisory('ICSA-26-001-0003', [{ ...meter, version: null, range: 'vers:generic/>=3.0.0|<3.1.0', status: 'affected' }], 5.0),
      advisory('ICSA-26-001-0004', [{ ...meter, version: null, range: 'V2.0 - V2.4', status: 'affected' }]),
      advisory('ICSA-26-001-0005', [{ ...meter, version: null, range: '<=1.2.0.301', status: 'affected' }]),
    ])
    expect(index.match(meter, '3.0.5').map((m) => [m.advisory.id, m.confidence])).toEqual([['ICSA-26-001-0002', 'low'], ['ICSA-26-001-0003', 'high']])
    expect(index.match(meter, 'V2.2').map((m) => m.advisory.id)).toEqual(['ICSA-26-001-0002', 'ICSA-26-001-0004'])
    expect(index.match(meter, '1.2.0.41').map((m) => m.advisory.id)).toContain('ICSA-26-001-0005')
    expect(index.match(meter, '1.2.0.302').map((m) => m.advisory.id)).not.toContain('ICSA-26-001-0005')
    expect(index.match(meter, '3.1.0')).toEqual([])
  })

  it('honours VEX: a version known not affected, or fixed, is not matched by a broad affected range', () => {
    const index = new AdvisoryIndex([advisory('ICSA-26-001-0006', [
      { ...meter, version: null, range: '<4.0', status: 'affected' },
      { ...meter, version: '3.5.1', range: null, status: 'not-affected' },
      { ...meter, version: '3.9', range: null, status: 'fixed' },
    ])])
    expect(index.match(meter, '3.5.0')).toHaveLength(1)
    expect(index.match(meter, '3.5.1')).toEqual([])
    expect(index.match(meter, '3.9')).toEqual([])
  })
})
