/** Builds the sink a configuration entry describes (`sinkSchema`, config.ts). */
import type { SinkConfig } from './config.ts'
import { createPagerDutySink } from './pagerduty-sink.ts'
import type { Sink } from './sink.ts'
import { createSlackSink } from './slack-sink.ts'
import { createSyslogSink } from './syslog-sink.ts'
import { createTeamsSink } from './teams-sink.ts'
import { createWebhookSink } from './webhook-sink.ts'

/** Each sink is named `config.name ?? config.type`. */
export function createSink (config: SinkConfig): Sink {
  switch (config.type) {
    case 'webhook': return createWebhookSink(config)
    case 'slack': return createSlackSink(config)
    case 'teams': return createTeamsSink(config)
    case 'pagerduty': return createPagerDutySink(config)
    case 'syslog': return createSyslogSink(config)
  }
}
