/**
 * The one configuration object, composed here from the sections the rooms
 * own (each room's config.ts). Sources, later winning: defaults, the YAML
 * file (`--config` or PLACEGUARD_CONFIG), environment (PLACEGUARD_*), flags.
 * Validated once, then frozen. `process.env` is read here and nowhere else.
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { port } from '../shared/config-fields.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import { brokerLimitsSchema, brokerStateSchema } from '../broker/config.ts'
import { collectorConfigSchema, influxConfigSchema } from '../collector/config.ts'
import { apiTokensSchema, httpMaxConnectionsPerAddressSchema, httpMaxConnectionsSchema } from '../dashboards/config.ts'
import { deliveryConfigSchema, SINK_ENV, type SinkConfig } from '../delivery/config.ts'
import { CLUSTER_ENV, clusterConfigSchema, nodeIdSchema, redisUrlSchema } from '../cluster/config.ts'
import { databaseUrlSchema } from '../db/config.ts'

/**
 * The rooms' sections (schema, default and `.describe()` text each) live
 * with the code they configure, in broker/, collector/, delivery/ and
 * dashboards/api/ config.ts; the keys of the process as a whole are here.
 */
export const configSchema = z.strictObject({
  dataDir: z.string().min(1).describe('data directory (default ./data)'),
  mqttHost: z.string().min(1).default('0.0.0.0').describe('address the broker listens on'),
  mqttPort: port.default(8883).describe('MQTT over TLS port'),
  httpPort: port.default(8080).describe('HTTP API and dashboard port'),
  httpHost: z.string().min(1).default('0.0.0.0').describe('address the HTTP API listens on'),
  httpMaxConnections: httpMaxConnectionsSchema,
  httpMaxConnectionsPerAddress: httpMaxConnectionsPerAddressSchema,
  apiTokens: apiTokensSchema,
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level'),
  broker: brokerLimitsSchema,
  brokerState: brokerStateSchema,
  influx: influxConfigSchema,
  collector: collectorConfigSchema,
  /** Directory of policy YAML files; default: the ones shipped in policies/. */
  policiesDir: z.string().min(1).optional().describe('directory of policy YAML files; absent: the ones shipped in policies/'),
  delivery: deliveryConfigSchema,
  redisUrl: redisUrlSchema,
  nodeId: nodeIdSchema,
  cluster: clusterConfigSchema,
  databaseUrl: databaseUrlSchema,
})

export type Config = Readonly<z.infer<typeof configSchema>>

/** Environment variables and the config keys they set. */
export const ENV_KEYS: Readonly<Record<string, string>> = {
  PLACEGUARD_DATA_DIR: 'dataDir',
  PLACEGUARD_MQTT_HOST: 'mqttHost',
  PLACEGUARD_MQTT_PORT: 'mqttPort',
  PLACEGUARD_HTTP_PORT: 'httpPort',
  PLACEGUARD_HTTP_HOST: 'httpHost',
  PLACEGUARD_API_TOKENS: 'apiTokens',
  PLACEGUARD_LOG_LEVEL: 'logLevel',
  PLACEGUARD_POLICIES_DIR: 'policiesDir',
  PLACEGUARD_REDIS_URL: 'redisUrl',
  PLACEGUARD_NODE_ID: 'nodeId',
  PLACEGUARD_DATABASE_URL: 'databaseUrl',
}

/** InfluxDB settings come from the environment as four variables (docs/product.md). */
export const INFLUX_ENV: Readonly<Record<string, string>> = {
  PLACEGUARD_INFLUX_URL: 'url',
  PLACEGUARD_INFLUX_TOKEN: 'token',
  PLACEGUARD_INFLUX_ORG: 'org',
  PLACEGUARD_INFLUX_BUCKET: 'bucket',
}

/** `delivery.sinks` with the sinks the environment names (SINK_ENV) filled in or added. */
function sinksWithEnv (sinks: unknown, env: NodeJS.ProcessEnv): unknown {
  const list = Array.isArray(sinks) ? [...sinks as Array<Record<string, unknown>>] : sinks === undefined ? [] : sinks
  if (!Array.isArray(list)) return sinks // the schema names the problem
  for (const { type, fields } of SINK_ENV) {
    const values = Object.fromEntries(Object.entries(fields).filter(([name]) => env[name]).map(([name, key]) =>
      // Several webhook secrets (rotation) are separated by spaces or commas.
      [key, key === 'secrets' ? env[name]!.split(/[\s,]+/).filter(Boolean) : env[name]]))
    if (Object.keys(values).length === 0) continue
    const index = list.findIndex((sink) => (sink.name ?? sink.type) === type)
    if (index >= 0) list[index] = { ...list[index], ...values }
    else list.push({ type, ...values })
  }
  return list
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
  const clusterFromEnv = Object.fromEntries(Object.entries(CLUSTER_ENV)
    .filter(([name]) => env[name] !== undefined && env[name] !== '')
    .map(([name, key]) => [key, env[name]]))
  const merged = { dataDir: './data', ...fromFile, ...fromEnv, ...fromFlags } as Record<string, unknown>
  if (Object.keys(influxFromEnv).length > 0) merged.influx = { ...(merged.influx as object | undefined), ...influxFromEnv }
  if (Object.keys(clusterFromEnv).length > 0) merged.cluster = { ...(merged.cluster as object | undefined), ...clusterFromEnv }
  const fileDelivery = (merged.delivery ?? {}) as Record<string, unknown>
  const sinks = sinksWithEnv(fileDelivery.sinks, env)
  if (merged.delivery !== undefined || (Array.isArray(sinks) && sinks.length > 0)) merged.delivery = { ...fileDelivery, sinks }
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
    cluster: Object.freeze(result.data.cluster),
    delivery: Object.freeze({ ...result.data.delivery, sinks: Object.freeze(result.data.delivery.sinks.map((sink) => Object.freeze(sink))) as SinkConfig[] }),
  }
  return Object.freeze(config)
}

function readYaml (file: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new PlaceGuardError('PG_ERR_CONFIG_INVALID', `cannot read config file ${file}: ${(error as Error).message}`, { field: 'config' })
  }
  let value: unknown
  try {
    value = parseYaml(text)
  } catch (error) {
    throw new PlaceGuardError('PG_ERR_CONFIG_INVALID', `config file ${file} is not valid YAML: ${(error as Error).message}`, { field: 'config' })
  }
  if (value === null || value === undefined) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new PlaceGuardError('PG_ERR_CONFIG_INVALID', `config file ${file} must hold a mapping of settings`, { field: 'config' })
  }
  return value as Record<string, unknown>
}
