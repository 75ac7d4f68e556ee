/**
 * CVSS v3 base scores (shared/cvss.ts) against scores NVD and FIRST
 * publish for the same vectors, both scopes, every metric value, and
 * Roundup's floating-point edge (CVSS v3.1 Appendix A).
 */
import { describe, expect, it } from 'vitest'
import { cvssV3BaseScore, roundUp } from '../../shared/cvss.ts'

describe('cvssV3BaseScore', () => {
  it.each([
    // NVD's scores for these vectors (e.g. CVE-2021-44228 is the first, at 10.0 with S:C).
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 9.8],
    ['CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N', 6.4],
    ['CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N', 0],
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H', 10],
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N', 6.1],
    ['CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:C/C:H/I:H/A:H', 9.1],
    ['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H', 7.5],
    ['CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H', 7.8],
    ['CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N', 5.9],
    ['CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 8.8],
    ['CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 6.8],
    ['CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:L/I:L/A:N', 5.4],
    ['CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H', 8.8],
    ['CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 9.8],
    ['CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H', 8.8],
  ])('%s is %d', (vector, score) => {
    expect(cvssV3BaseScore(vector)).toBe(score)
  })

  it('ignores temporal and environmental metrics, whatever their order', () => {
    expect(cvssV3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C/CR:H/MAV:L')).toBe(9.8)
    expect(cvssV3BaseScore('CVSS:3.1/S:U/A:H/I:H/C:H/UI:N/PR:N/AC:L/AV:N')).toBe(9.8)
  })

  it.each([
    'AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H',
    'CVSS:2.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H',
    'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N',
    'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H',
    'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:L',
    'CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H',
    'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:Q/C:H/I:H/A:H',
    'CVSS:3.1/AV:N/AC:L/PR:toString/UI:N/S:U/C:H/I:H/A:H',
    'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/XX:Y',
    'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/',
    'CVSS:3.1/AV:N:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H',
    '',
  ])('gives no score, and does not throw, for %j', (vector) => {
    expect(cvssV3BaseScore(vector)).toBeUndefined()
  })

  it('gives no score for what is not a string', () => {
    expect(cvssV3BaseScore(42 as unknown as string)).toBeUndefined()
  })
})

describe('roundUp (CVSS v3.1 Appendix A)', () => {
  it('rounds up to one decimal, without lifting a float artefact just above a tenth', () => {
    expect(roundUp(4.02)).toBe(4.1)
    expect(roundUp(4.0)).toBe(4.0)
    // 0.1 + 0.2 is 0.30000000000000004 in binary floating point: naive ceil(x * 10) / 10 gives 0.4.
    expect(Math.ceil((0.1 + 0.2) * 10) / 10).toBe(0.4)
    expect(roundUp(0.1 + 0.2)).toBe(0.3)
    expect(roundUp(4.000000000000001)).toBe(4.0)
  })
})
