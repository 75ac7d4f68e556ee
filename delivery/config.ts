/**
 * The `delivery:` section of the configuration: the SOC sinks, what each is
 * sent, and how long a failing one is retried (docs/delivery.md). The sinks
 * are built from these entries (sinks.ts); app/config.ts composes the section
 * into the whole configuration and fills it from the environment (SINK_ENV).
 */
import { z } from 'zod'
import { POLICY_IDS, SEVERITIES } from '../shared/alert-contract.ts'
import { positive } from '../shared/config-fields.ts'

/** Routing shared by every sink: which alerts and which changes go there. */
const route = {
  /** Unique name, in logs and metrics; defaults to the type. */
  name: z.string().regex(/^[a-z0-9-]{1,32}$/).optional(),
  minSeverity: z.enum(SEVERITIES).default('info').describe('alerts below this severity are not sent here'),
  policies: z.array(z.enum(POLICY_IDS)).min(1).optional().describe('only these policies; absent = all'),
}
const httpsOrLoopback = z.url().refine((value) => /^https:/.test(value) || /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(value),
  'must be an https:// URL (plain http only to loopback, for tests)')
/** Standard Webhooks secret: `whsec_` + base64 of 24–64 random bytes. */
const webhookSecret = z.string().regex(/^whsec_[A-Za-z0-9+/]{32,}={0,2}$/, 'must be a Standard Webhooks secret: whsec_ followed by base64')

export const sinkSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('webhook'), ...route, url: httpsOrLoopback, secrets: z.array(webhookSecret).min(1).describe('the first signs; all are sent, for rotation') }),
  z.strictObject({ type: z.literal('slack'), ...route, url: httpsOrLoopback }),
  z.strictObject({ type: z.literal('teams'), ...route, url: httpsOrLoopback }),
  z.strictObject({ type: z.literal('pagerduty'), ...route, routingKey: z.string().min(1), url: httpsOrLoopback.default('https://events.pagerduty.com/v2/enqueue') }),
  z.strictObject({
    type: z.literal('syslog'), ...route,
    url: z.string().regex(/^(tcp|tls):\/\/[^/:]+:\d{1,5}$/, 'must be tcp://host:port or tls://host:port'),
    /** PEM file of the CA that signed the syslog server's certificate (tls://); default: the system's CAs. */
    ca: z.string().min(1).optional(),
    audit: z.boolean().optional().describe('false: not the operator audit trail; absent or true: every entry of it too, as CEF (docs/audit-trail.md)'),
  }),
])

export type SinkConfig = z.infer<typeof sinkSchema>
export type SinkConfigOf<T extends SinkConfig['type']> = Extract<SinkConfig, { type: T }>

/** A sink that has failed for this long moves its alerts to the dead-letter list and raises an alert about itself. */
const DEAD_LETTER_AFTER_MS = 6 * 3_600_000

/** The `delivery:` section; absent, no sinks. */
export const deliveryConfigSchema = z.strictObject({
  deadLetterAfterMs: positive.default(DEAD_LETTER_AFTER_MS).describe('a sink failing this long dead-letters its overdue deliveries and raises delivery-failing'),
  sinks: z.array(sinkSchema).default([]).describe('SOC sinks and their routing (docs/delivery.md)').refine((sinks) => new Set(sinks.map((s) => s.name ?? s.type)).size === sinks.length,
    'two sinks have the same name; give each a distinct name'),
}).default({ deadLetterAfterMs: DEAD_LETTER_AFTER_MS, sinks: [] })

/**
 * Sinks from the environment (docs/product.md names). Each fills the sink of the
 * same name in the file (routing in the file, secrets in the environment),
 * or adds one with default routing.
 */
export const SINK_ENV: ReadonlyArray<{ type: SinkConfig['type'], fields: Record<string, string> }> = [
  { type: 'webhook', fields: { PLACEGUARD_WEBHOOK_URL: 'url', PLACEGUARD_WEBHOOK_SECRET: 'secrets' } },
  { type: 'slack', fields: { PLACEGUARD_SLACK_URL: 'url' } },
  { type: 'teams', fields: { PLACEGUARD_TEAMS_URL: 'url' } },
  { type: 'pagerduty', fields: { PLACEGUARD_PAGERDUTY_ROUTING_KEY: 'routingKey', PLACEGUARD_PAGERDUTY_URL: 'url' } },
  { type: 'syslog', fields: { PLACEGUARD_SYSLOG_URL: 'url', PLACEGUARD_SYSLOG_CA: 'ca' } },
]

/**
 * Whether a sink receives the operator audit trail: syslog sinks do unless
 * `audit: false`. A chat channel or PagerDuty is for alerts a person must
 * act on, and a webhook receiver expects the alert schema; a SIEM behind
 * syslog is where an account of operators' actions is kept and searched.
 */
export function takesAuditTrail (config: SinkConfig): boolean {
  return config.type === 'syslog' && config.audit !== false
}
