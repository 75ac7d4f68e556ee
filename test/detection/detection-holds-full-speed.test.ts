/**
 * Detection that holds at full speed (issue 12): 2,000 simulated devices
 * through a broker and a collector in their own processes. It needs the
 * host's CPU, so it is a file of its own (the stall scenarios of
 * detection-holds.test.ts run side by side and would share it).
 */
import { describe, it } from 'vitest'
import { cleanRun } from '../helpers/clean-run.ts'

describe('a clean fleet of 2,000 at full speed (collector and broker processes)', () => {
  // 10,000 TLS messages a second is more than an in-process aedes shares a core with 2,000 simulated clients for
  // (its mqemitter recursion overflows the stack): the broker runs as its own process, as it does in production.
  // If the collector falls behind on this 2-core host, that is PlaceGuard's own doing: one pipeline alert may say
  // so (issue 12), but no device is alerted. Another test file may run beside it (two at a time), so it asserts a
  // load, not a rate.
  it('2,000 devices at a 200 ms interval for 45 s: no device alert, at most one pipeline alert, nothing acknowledged lost', async ({ expect }) => {
    const { alerts, summary, stored } = await cleanRun({ devices: 2_000, intervalMs: 200, durationMs: 45_000, brokerProcess: true, during: async () => {} })
    const device = alerts.filter((a) => a.policy !== 'pipeline-stalled')
    expect(device.map((a) => `${a.policy} ${a.deviceId}: ${a.summary}`).slice(0, 5)).toEqual([])
    expect(alerts.filter((a) => a.policy === 'pipeline-stalled').length).toBeLessThanOrEqual(1)
    // A real load, whatever the host's share of it: at least 75,000 acknowledged (a sixth of what the fleet offers
    // in 45 s). With another test file beside it on two cores a 60 s run got 157,000 through; alone, over 200,000.
    expect(summary.acked).toBeGreaterThan(75_000)
    expect(stored).toBeGreaterThanOrEqual(summary.acked)
  }, 500_000)
})
