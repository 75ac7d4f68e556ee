import { describe, expect, it } from 'vitest'
import { createSink } from '../../delivery/sinks.ts'
import type { SinkConfig } from '../../delivery/config.ts'

const url = 'https://hooks.example.com/x'
const secret = `whsec_${Buffer.alloc(24, 7).toString('base64')}`

describe('createSink', () => {
  it('builds the sink each configured type names, called by its name or its type', async () => {
    const configs: SinkConfig[] = [
      { type: 'webhook', url, secrets: [secret], minSeverity: 'info' },
      { type: 'slack', name: 'soc-slack', url, minSeverity: 'high' },
      { type: 'teams', url, minSeverity: 'info' },
      { type: 'pagerduty', routingKey: 'key', url, minSeverity: 'critical' },
      { type: 'syslog', name: 'siem', url: 'tcp://127.0.0.1:6514', minSeverity: 'info' },
    ]
    const sinks = configs.map(createSink)
    expect(sinks.map((s) => [s.type, s.name, s.maxBatch])).toEqual([
      ['webhook', 'webhook', 1], ['slack', 'soc-slack', 20], ['teams', 'teams', 10], ['pagerduty', 'pagerduty', 1], ['syslog', 'siem', 1],
    ])
    for (const sink of sinks) await sink.close()
  })
})
