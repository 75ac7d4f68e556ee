import { describe, expect, it } from 'vitest'
import { PipelineHealth } from '../../detection/pipeline-health.ts'

function health () {
  const clock = { ms: 0, now: () => clock.ms }
  const events: string[] = []
  const pipeline = new PipelineHealth({
    clock,
    onBehind: (behind, allowanceMs) => events.push(behind ? 'behind' : allowanceMs > 0 ? `caught up, allowing ${allowanceMs} ms` : 'caught up'),
    onAlert: (summary) => events.push(`alert: ${summary}`),
    onRecovered: (reason) => events.push(`recovered: ${reason}`),
  })
  pipeline.start()
  pipeline.stop() // beats by hand below
  /**
   * `seconds` of normal running: a beat every 250 ms, `perBeat` messages each `backlogMs` late, from
   * `devices` devices in turn (as many as the messages, by default); `extra` adds its own messages each beat.
   */
  const run = (seconds: number, perBeat = 0, backlogMs = 0, devices = perBeat, extra?: () => void) => {
    for (let i = 0; i < seconds * 4; i++) {
      clock.ms += 250
      for (let m = 0; m < perBeat; m++) pipeline.onMessage(`d-${m % Math.max(1, devices)}`, backlogMs)
      extra?.()
      pipeline.beat()
    }
  }
  return { clock, events, pipeline, run }
}

describe('PipelineHealth', () => {
  it('is behind at start until connected and hearing messages on time', () => {
    const { events, pipeline, run } = health()
    pipeline.setConnected(false)
    run(3, 10)
    expect(pipeline.behind).toBe(true) // not connected yet
    pipeline.setConnected(true)
    run(6, 10)
    expect(pipeline.behind).toBe(false)
    expect(events).toEqual(['behind', 'caught up'])
  })

  it('takes a late heartbeat for a stall of its own, stays behind through the backlog, alerts once and recovers', () => {
    const { clock, events, pipeline, run } = health()
    pipeline.setConnected(true)
    run(6, 10)
    events.length = 0
    clock.ms += 20_000 // SIGSTOP for 20 s
    pipeline.beat()
    expect(pipeline.behind).toBe(true)
    run(3, 50, 15_000) // the backlog: late
    expect(pipeline.behind).toBe(true)
    run(2, 10, 0)
    expect(pipeline.behind).toBe(false)
    expect(events).toHaveLength(4)
    expect(events[1]).toMatch(/^alert: .*did not run for 20 s/)
    expect(events[3]).toMatch(/^recovered: caught up after/)
  })

  it('is behind while the broker does not answer, though connected and running; alerts past 5 s, and recovers once the backlog is read', () => {
    const { events, pipeline, run } = health()
    pipeline.setConnected(true)
    run(6, 10)
    events.length = 0
    pipeline.setAnswering(false, 2_100) // the probe's wait when it gave up
    expect(pipeline.behind).toBe(true)
    run(2.5) // nothing comes through: 4.6 s without an answer, no alert yet
    expect(events).toEqual(['behind'])
    run(18) // a 20 s freeze
    expect(events).toHaveLength(2)
    expect(events[1]).toMatch(/^alert: .*the broker stopped answering the collector/)
    pipeline.setAnswering(true, 20_000)
    run(3, 50, 15_000) // what the broker held back: late
    expect(pipeline.behind).toBe(true)
    run(6, 10, 0)
    expect(pipeline.behind).toBe(false)
    expect(events.slice(2)).toEqual(['caught up, allowing 90400 ms', expect.stringMatching(/^recovered: caught up after 2\d s behind/)])
  })

  it('gives devices four times the time the broker was lost to find it again, and nothing after a start or a stall of its own', () => {
    const { clock, events, pipeline, run } = health()
    pipeline.setConnected(false) // starting
    run(1)
    pipeline.setConnected(true)
    run(6, 10)
    expect(events).toEqual(['behind', 'caught up'])
    clock.ms += 20_000 // a stall of its own: the devices kept their sessions
    pipeline.beat()
    run(6, 10)
    expect(events.slice(2)).toEqual(['behind', expect.stringMatching(/^alert/), 'caught up', expect.stringMatching(/^recovered/)])
    events.length = 0
    pipeline.setConnected(false) // the broker went down for 10 s
    run(10)
    pipeline.setConnected(true)
    run(6, 10)
    expect(events).toEqual(['behind', 'caught up, allowing 40000 ms'])
    events.length = 0
    pipeline.setAnswering(false, 2_000) // frozen, then down: one loss of 2 + 4 + 10 s
    run(4)
    pipeline.setConnected(false)
    run(10)
    pipeline.setConnected(true)
    run(1)
    pipeline.setAnswering(true, 100)
    run(6, 10)
    expect(events.filter((e) => e.startsWith('caught up'))).toEqual(['caught up, allowing 68000 ms'])
    events.length = 0
    pipeline.setConnected(false) // an hour down: capped
    run(3_600)
    pipeline.setConnected(true)
    run(6, 10)
    expect(events.filter((e) => e.startsWith('caught up'))).toEqual(['caught up, allowing 300000 ms'])
  })

  it('a broker slow to answer for under 5 s holds silence without an alert', () => {
    const { events, pipeline, run } = health()
    pipeline.setConnected(true)
    run(6, 10)
    events.length = 0
    pipeline.setAnswering(false, 2_100)
    run(1)
    pipeline.setAnswering(true, 3_200)
    run(6, 10, 0)
    expect(events).toEqual(['behind', 'caught up, allowing 12400 ms'])
  })

  it('notices a backlog without a stall (most messages late), and one late device moves nothing', () => {
    const { events, pipeline, run } = health()
    pipeline.setConnected(true)
    run(6, 10)
    for (let i = 0; i < 8; i++) pipeline.onMessage('skewed', 60_000) // one device with a bad clock, among many
    run(2, 10)
    expect(pipeline.behind).toBe(false)
    run(2, 40, 5_000)
    expect(pipeline.behind).toBe(true)
    expect(events.at(-1)).toBe('behind')
  })

  it('lets no single device hold it behind or put it there, however many late messages it sends', () => {
    const { events, pipeline, run } = health()
    // At start, as in the demo: a device the broker throttles sends most of the traffic, all of it late.
    pipeline.setConnected(false)
    pipeline.setConnected(true)
    const flooder = () => { for (let i = 0; i < 30; i++) pipeline.onMessage('flooder', 20_000) }
    run(6, 3, 0, 3, flooder)
    expect(pipeline.behind).toBe(false)
    expect(events).toEqual(['behind', 'caught up'])
    // Once caught up, the flooder alone does not make a backlog either.
    run(40, 3, 0, 3, flooder)
    expect(pipeline.behind).toBe(false)
    // A device flushing its own store-and-forward buffer, alone: the same.
    run(5, 0, 0, 0, () => { for (let i = 0; i < 50; i++) pipeline.onMessage('buffered', 3_600_000) })
    expect(pipeline.behind).toBe(false)
    expect(events).toEqual(['behind', 'caught up'])
  })

  it('at a small site, still sees a backlog that delays every device, and names it in the alert', () => {
    const { events, pipeline, run } = health()
    pipeline.setConnected(true)
    run(6, 3, 0, 3)
    expect(pipeline.behind).toBe(false)
    run(2, 8, 10_000, 3) // three devices, every message late: the collector's backlog
    expect(pipeline.behind).toBe(true)
    run(35, 8, 10_000, 3)
    expect(events.at(-1)).toMatch(/^alert: .*most devices' messages arrive late/)
    run(2, 3, 0, 3)
    expect(pipeline.behind).toBe(false)
  })

  it('names lateness, not the state it started in, when late devices keep it behind after connecting', () => {
    const { events, pipeline, run } = health()
    pipeline.setConnected(false)
    pipeline.setConnected(true)
    run(35, 20, 10_000, 10)
    expect(pipeline.behind).toBe(true)
    expect(events.at(-1)).toMatch(/^alert: .*most devices' messages arrive late/)
    expect(events.at(-1)).not.toMatch(/no broker session yet/)
  })

  it('after a reconnect, a silent second is not proof of having caught up; ten are', () => {
    const { pipeline, run } = health()
    pipeline.setConnected(true)
    run(6, 10)
    pipeline.setConnected(false)
    pipeline.setConnected(true)
    run(3)
    expect(pipeline.behind).toBe(true)
    run(8)
    expect(pipeline.behind).toBe(false)
  })
})
