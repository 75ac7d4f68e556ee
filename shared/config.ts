/**
 * The one configuration object. Sources, later winning: defaults, the YAML
 * file (`--config` or PLACEGUARD_CONFIG), environment (PLACEGUARD_*), flags.
 * Validated once, then frozen. `process.env` is read here and nowhere else.
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { PlaceGuardError } from './errors.ts'

const port = z.coerce.number().int().min(0).max(65535)
const positive = z.coerce.number().int().positive()

const brokerLimits = z.strictObject({
  maxPacketBytes: positive.describe('largest MQTT packet accepted, bytes'),
  maxConnections: positive.describe('TLS connections at once'),
  maxCollectorSessions: positive.describe('sessions holding the collector certificate'),
  publishRatePerSec: z.coerce.number().min(0).describe('sustained publishes per second per device; 0 = unlimited'),
  publishBurst: positive.describe('publishes back to back before the rate applies'),
  maxThrottleMs: positive.describe('longest a publish is held by the rate limit before the device is disconnected'),
  handshakeTimeoutMs: positive,
  connectTimeoutMs: positive,
  crlPollMs: positive,
}).partial()

const influx = z.strictObject({
  url: z.url().describe('InfluxDB 2.x base URL'),
  token: z.string().min(1).describe('API token with write access to the bucket'),
  org: z.string().min(1),
  bucket: z.string().min(1),
})

const collector = z.strictObject({
  spoolMaxBytes: positive.describe('disk the spool may use before the collector stops acknowledging'),
  batchSize: positive.describe('points per write to the store'),
  retentionDays: positive.describe('history kept by the embedded store'),
}).partial()

const configSchema = z.strictObject({
  dataDir: z.string().min(1),
  mqttHost: z.string().min(1).default('0.0.0.0'),
  mqttPort: port.default(8883),
  httpPort: port.default(8080),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  broker: brokerLimits.default({}),
  /** Absent: telemetry goes to the embedded store in the data directory. */
  influx: influx.optional(),
  collector: collector.default({}),
  /** Directory of policy YAML files; default: the ones shipped in policies/. */
  policiesDir: z.string().min(1).optional(),
})

export type Config = Readonly<z.infer<typeof configSchema>>

/** Environment variables and the config keys they set. */
const ENV_KEYS: Record<string, string> = {
  PLACEGUARD_DATA_DIR: 'dataDir',
  PLACEGUARD_MQTT_HOST: 'mqttHost',
  PLACEGUARD_MQTT_PORT: 'mqttPort',
  PLACEGUARD_HTTP_PORT: 'httpPort',
  PLACEGUARD_LOG_LEVEL: 'logLevel',
  PLACEGUARD_POLICIES_DIR: 'policiesDir',
}

/** InfluxDB settings come from the environment as four variables (PRODUCT.md). */
const INFLUX_ENV: Record<string, string> = {
  PLACEGUARD_INFLUX_URL: 'url',
  PLACEGUARD_INFLUX_TOKEN: 'token',
  PLACEGUARD_INFLUX_ORG: 'org',
  PLACEGUARD_INFLUX_BUCKET: 'bucket',
}

export interface ConfigSources {
  /** Command-line values already parsed; undefined ones are ignored. */
  flags?: Record<string, unknown>
  env?: NodeJS.ProcessEnv
  /** YAML file; default PLACEGUARD_CONFIG when set. */
  file?: string
}

export function loadConfig (sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env
  const file = sources.file ?? env.PLACEGUARD_CONFIG
  const fromFile = file ? readYaml(file) : {}
  const fromEnv = Object.fromEntries(Object.entries(ENV_KEYS)
    .filter(([name]) => env[name] !== undefined && env[name] !== '')
    .map(([name, key]) => [key, env[name]]))
  const fromFlags = Object.fromEntries(Object.entries(sources.flags ?? {}).filter(([, value]) => value !== undefined))
  const influxFromEnv = Object.fromEntries(Object.entries(INFLUX_ENV)
    .filter(([name]) => env[name] !== undefined && env[name] !== '')
    .map(([name, key]) => [key, env[name]]))
  const merged = { dataDir: './data', ...fromFile, ...fromEnv, ...fromFlags } as Record<string, unknown>
  if (Object.keys(influxFromEnv).length > 0) merged.influx = { ...(merged.influx as object | undefined), ...influxFromEnv }
  const result = configSchema.safeParse(merged)
  if (!result.success) {
    const issue = result.error.issues[0]!
    const field = issue.path.join('.') || '(root)'
    throw new PlaceGuardError('PG_ERR_CONFIG_INVALID', `${field}: ${issue.message}${file ? ` (config file ${file})` : ''}`, { field })
  }
  const config = {
    ...result.data,
    dataDir: resolve(result.data.dataDir),
    broker: Object.freeze(result.data.broker),
    collector: Object.freeze(result.data.collector),
    influx: result.data.influx && Object.freeze(result.data.influx),
  }
  return Object.freeze(config)
}

function readYaml (file: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new PlaceGuardError('PG_ERR_CONFIG_INVALID', `cannot read config file ${file}: ${(error as Error).message}`, { field: '--config' })
  }
  let value: unknown
  try {
    value = parseYaml(text)
  } catch (error) {
    throw new PlaceGuardError('PG_ERR_CONFIG_INVALID', `config file ${file} is not valid YAML: ${(error as Error).message}`, { field: '--config' })
  }
  if (value === null || value === undefined) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new PlaceGuardError('PG_ERR_CONFIG_INVALID', `config file ${file} must hold a mapping of settings`, { field: '--config' })
  }
  return value as Record<string, unknown>
}
