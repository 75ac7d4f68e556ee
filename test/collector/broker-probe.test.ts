import { describe, expect, it } from 'vitest'
import { BrokerProbe } from '../../collector/broker-probe.ts'

function probe () {
  const clock = { ms: 0, now: () => clock.ms }
  const sent: Array<() => void> = []
  const changes: string[] = []
  let connected = true
  const p = new BrokerProbe({
    clock, connected: () => connected, send: (answered) => sent.push(answered),
    onChange: (answering, waitedMs) => changes.push(`${answering ? 'answering' : 'not answering'} ${waitedMs}`),
  })
  const tick = (ms: number) => { for (let t = 0; t < ms; t += 250) { clock.ms += 250; p.check() } }
  return { clock, sent, changes, probe: p, tick, setConnected: (up: boolean) => { connected = up } }
}

describe('BrokerProbe', () => {
  it('sends one probe a second while answered, and says nothing', () => {
    const { sent, changes, tick } = probe()
    for (let i = 0; i < 5; i++) {
      tick(1_000)
      sent.at(-1)!()
    }
    expect(sent).toHaveLength(5)
    expect(changes).toEqual([])
  })

  it('says the broker is not answering once a probe waits over 2 s, sends no other meanwhile, and says when it answers', () => {
    const { sent, changes, tick, probe: p } = probe()
    tick(250)
    expect(sent).toHaveLength(1)
    tick(2_000)
    expect(changes).toEqual([])
    tick(250)
    expect(changes).toEqual(['not answering 2250'])
    expect(p.answering).toBe(false)
    tick(10_000)
    expect(sent).toHaveLength(1) // a stalled broker is not sent a queue of probes
    sent[0]!()
    expect(changes).toEqual(['not answering 2250', 'answering 12250'])
    tick(1_000)
    expect(sent).toHaveLength(2)
  })

  it('takes its own stall for its own, not the broker\'s', () => {
    const { clock, sent, changes, tick, probe: p } = probe()
    tick(250)
    clock.ms += 20_000 // the collector itself frozen: its heartbeat reports that
    p.check()
    expect(changes).toEqual([])
    sent[0]!()
    tick(1_000)
    expect(changes).toEqual([])
  })

  it('waits for no probe across a lost session, and ignores the old probe\'s late answer', () => {
    const { sent, changes, tick, probe: p, setConnected } = probe()
    tick(250)
    setConnected(false)
    p.reset()
    tick(5_000)
    expect(changes).toEqual([]) // down is the session's to report
    setConnected(true)
    tick(250)
    expect(sent).toHaveLength(2)
    sent[0]!() // the first probe, resent by mqtt.js on the new session
    tick(2_250)
    expect(changes).toEqual(['not answering 2250'])
    sent[1]!()
    expect(changes).toEqual(['not answering 2250', 'answering 2250'])
  })
})
