import { describe, expect, it } from 'vitest'
import { CountedReport } from '../../shared/counted-report.ts'

describe('a failure reported once per period, with its count', () => {
  it('reports the first at once, then at most one per period counting what came between; a recovery takes the rest', () => {
    const report = new CountedReport(10_000)
    expect(report.count(0)).toBe(1)
    expect(report.count(1_000)).toBeUndefined()
    expect(report.count(9_999)).toBeUndefined()
    expect(report.count(10_000)).toBe(3)
    expect(report.count(12_000)).toBeUndefined()
    expect(report.takeUnreported()).toBe(1)
    expect(report.takeUnreported()).toBe(0)
    expect(report.count(15_000)).toBeUndefined()
    expect(report.count(20_000)).toBe(2)
  })
})
