import { describe, expect, it } from 'vitest'
import { StormGuard } from '../../detection/storm-guard.ts'
import type { Alert } from '../../shared/alert-contract.ts'

const alert = (deviceId: string, policy = 'device-silent', site = 'riverside', kind = 'flood'): Alert =>
  ({ id: `id-${policy}-${deviceId}`, policy, deviceId, site, kind } as unknown as Alert)

describe('StormGuard', () => {
  it('folds one policy firing across a large share of a kind at a site into one storm', () => {
    const clock = { ms: 0, now: () => clock.ms }
    const guard = new StormGuard({ clock })
    const group = () => 40
    // A few devices of a site: paged one by one.
    expect(guard.observe([alert('f-1'), alert('f-2')], group).correlated.size).toBe(0)
    clock.ms += 5_000
    // A gateway goes down: most of the site at once.
    const { correlated, storms } = guard.observe(Array.from({ length: 20 }, (_, i) => alert(`f-${i + 3}`)), group)
    expect(correlated.size).toBe(20)
    expect(storms).toHaveLength(1)
    expect(storms[0]).toMatchObject({ policy: 'device-silent', site: 'riverside', kind: 'flood', deviceCount: 22, groupSize: 40 })
    expect(storms[0]!.devices).toContain('f-1')
    // Later ones join the storm; another policy, site or kind is its own matter.
    clock.ms += 5_000
    const later = guard.observe([alert('f-30'), alert('f-31', 'replay'), alert('f-32', 'device-silent', 'harbour')], group)
    expect([...later.correlated.keys()]).toEqual(['id-device-silent-f-30'])
    expect(later.storms[0]).toMatchObject({ deviceCount: 23 })
    // A quiet window ends the storm.
    clock.ms += 61_000
    expect(guard.observe([alert('f-33')], group).correlated.size).toBe(0)
  })

  it('leaves a share below a quarter of the group, or fewer than five devices, as individual alerts', () => {
    const clock = { ms: 0, now: () => clock.ms }
    const guard = new StormGuard({ clock })
    expect(guard.observe(Array.from({ length: 9 }, (_, i) => alert(`f-${i}`)), () => 40).correlated.size).toBe(0)
    expect(guard.observe([alert('e-1', 'rate-burst', 'hamlet', 'energy'), alert('e-2', 'rate-burst', 'hamlet', 'energy')], () => 2).correlated.size).toBe(0)
  })
})
