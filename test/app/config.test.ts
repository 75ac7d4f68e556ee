import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../app/config.ts'
import { PlaceGuardError } from '../../shared/errors.ts'

const dir = mkdtempSync(join(tmpdir(), 'placeguard-config-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('loadConfig', () => {
  it('merges defaults < file < env < flags, and freezes the result', () => {
    const file = join(dir, 'a.yaml')
    writeFileSync(file, 'mqttPort: 1000\nhttpPort: 2000\nbroker:\n  publishRatePerSec: 1\n')
    const config = loadConfig({ file, env: { PLACEGUARD_HTTP_PORT: '3000', PLACEGUARD_DATA_DIR: '/srv/pg' }, flags: { mqttPort: 4000, mqttHost: undefined } })
    expect(config).toMatchObject({ mqttPort: 4000, httpPort: 3000, dataDir: '/srv/pg', mqttHost: '0.0.0.0', broker: { publishRatePerSec: 1 } })
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.broker)).toBe(true)
  })

  it('names the field and the file of a bad value', () => {
    const file = join(dir, 'b.yaml')
    writeFileSync(file, 'broker:\n  maxPacketBytes: -5\n')
    expect(() => loadConfig({ file, env: {} })).toThrow(PlaceGuardError)
    expect(() => loadConfig({ file, env: {} })).toThrow(/^broker\.maxPacketBytes: .*\(config file .*b\.yaml\)$/)
  })

  it('rejects unknown keys, which are usually typos', () => {
    const file = join(dir, 'c.yaml')
    writeFileSync(file, 'mqttPrt: 1\n')
    expect(() => loadConfig({ file, env: {} })).toThrow(/mqttPrt/)
  })

  it('rejects a bad environment value naming the setting', () => {
    expect(() => loadConfig({ env: { PLACEGUARD_MQTT_PORT: 'eighty' } })).toThrow(/^mqttPort: /)
  })
})

describe('loadConfig: InfluxDB', () => {
  it('reads the four PLACEGUARD_INFLUX_* variables into one object, and none means the embedded store', () => {
    const env = { PLACEGUARD_INFLUX_URL: 'http://127.0.0.1:8086', PLACEGUARD_INFLUX_TOKEN: 's3cret', PLACEGUARD_INFLUX_ORG: 'council', PLACEGUARD_INFLUX_BUCKET: 'telemetry' }
    expect(loadConfig({ env }).influx).toEqual({ url: 'http://127.0.0.1:8086', token: 's3cret', org: 'council', bucket: 'telemetry' })
    expect(loadConfig({ env: {} }).influx).toBeUndefined()
  })

  it('names the missing variable of a partial setting, without printing the token', () => {
    let message = ''
    try {
      loadConfig({ env: { PLACEGUARD_INFLUX_URL: 'http://127.0.0.1:8086', PLACEGUARD_INFLUX_TOKEN: 's3cret' } })
    } catch (error) {
      message = (error as Error).message
    }
    expect(message).toMatch(/^influx\.(org|bucket): /)
    expect(message).not.toContain('s3cret')
  })
})

describe('loadConfig: alert sinks', () => {
  const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`
  const rotated = `whsec_${Buffer.alloc(32, 9).toString('base64')}`

  it('takes sinks from the environment (docs/product.md names), several webhook secrets for rotation', () => {
    const config = loadConfig({ env: {
      PLACEGUARD_WEBHOOK_URL: 'https://soc.example/hooks/placeguard', PLACEGUARD_WEBHOOK_SECRET: `${secret}, ${rotated}`,
      PLACEGUARD_SLACK_URL: 'https://hooks.slack.example/services/T/B/X', PLACEGUARD_SYSLOG_URL: 'tls://siem.example:6514',
    } })
    expect(config.delivery.sinks).toEqual([
      { type: 'webhook', url: 'https://soc.example/hooks/placeguard', secrets: [secret, rotated], minSeverity: 'info' },
      { type: 'slack', url: 'https://hooks.slack.example/services/T/B/X', minSeverity: 'info' },
      { type: 'syslog', url: 'tls://siem.example:6514', minSeverity: 'info' },
    ])
    expect(Object.isFrozen(config.delivery.sinks[0])).toBe(true)
    expect(loadConfig({ env: {} }).delivery).toEqual({ deadLetterAfterMs: 21_600_000, sinks: [] })
  })

  it('routing from the file, secrets from the environment, joined by sink name', () => {
    const file = join(dir, 'sinks.yaml')
    writeFileSync(file, 'delivery:\n  deadLetterAfterMs: 3600000\n  sinks:\n    - { type: webhook, minSeverity: high, policies: [identity-clone] }\n    - { type: pagerduty, name: on-call, routingKey: abc, minSeverity: critical }\n')
    const config = loadConfig({ file, env: { PLACEGUARD_WEBHOOK_URL: 'https://soc.example/h', PLACEGUARD_WEBHOOK_SECRET: secret } })
    expect(config.delivery).toEqual({ deadLetterAfterMs: 3_600_000, sinks: [
      { type: 'webhook', url: 'https://soc.example/h', secrets: [secret], minSeverity: 'high', policies: ['identity-clone'] },
      { type: 'pagerduty', name: 'on-call', routingKey: 'abc', minSeverity: 'critical', url: 'https://events.pagerduty.com/v2/enqueue' },
    ] })
  })

  it.each([
    ['a webhook without a secret', { PLACEGUARD_WEBHOOK_URL: 'https://soc.example/h' }, /^delivery\.sinks\.0\.secrets: /],
    ['a secret not in whsec_ form', { PLACEGUARD_WEBHOOK_URL: 'https://soc.example/h', PLACEGUARD_WEBHOOK_SECRET: 'hunter2' }, /delivery\.sinks\.0\.secrets\.0: must be a Standard Webhooks secret/],
    ['plain http to another host', { PLACEGUARD_SLACK_URL: 'http://hooks.example/x' }, /delivery\.sinks\.0\.url: must be an https:\/\/ URL/],
    ['a syslog URL that is neither tcp nor tls', { PLACEGUARD_SYSLOG_URL: 'udp://siem:514' }, /delivery\.sinks\.0\.url: must be tcp:\/\/host:port or tls:\/\/host:port/],
  ])('refuses %s, naming the field and never echoing the secret', (_case, env, message) => {
    let error: Error | undefined
    try {
      loadConfig({ env })
    } catch (caught) {
      error = caught as Error
    }
    expect(error?.message).toMatch(message)
    expect(error?.message).not.toContain('hunter2')
  })
})

describe('loadConfig: the cluster\'s Redis URL', () => {
  // ioredis reads a URL that does not parse (an unencoded / # ? in the
  // password, as `openssl rand -base64` makes) as localhost without a password.
  it.each(['ab/cd+ef==', 'a#b', 'a?b'])('refuses a password with %s unencoded, naming redisUrl and not echoing it', (password) => {
    let error: Error | undefined
    try {
      loadConfig({ env: { PLACEGUARD_REDIS_URL: `redis://:${password}@redis:6379` } })
    } catch (caught) {
      error = caught as Error
    }
    expect(error?.message).toMatch(/^redisUrl: is not a valid URL/)
    expect(error?.message).not.toContain(password)
  })

  it.each(['redis://:0123456789abcdef@redis:6379', 'redis://:abc+def%2F=@redis:6379', 'rediss://user:pw@redis.example:6380/1', 'redis://[::1]:6379'])('accepts %s', (url) => {
    expect(loadConfig({ env: { PLACEGUARD_REDIS_URL: url } }).redisUrl).toBe(url)
  })
})

describe('loadConfig: a collector\'s name in the group', () => {
  it('takes cluster.collectorName from PLACEGUARD_COLLECTOR_NAME over the file, keeping the file\'s other cluster keys', () => {
    const file = join(dir, 'cluster.yaml')
    writeFileSync(file, 'cluster:\n  partitions: 8\n  collectorName: from-file\n')
    expect(loadConfig({ file, env: { PLACEGUARD_COLLECTOR_NAME: 'collector-2' } }).cluster).toEqual({ partitions: 8, waitReplicas: 0, collectorName: 'collector-2' })
    expect(loadConfig({ file, env: {} }).cluster.collectorName).toBe('from-file')
    expect(loadConfig({ env: {} }).cluster.collectorName).toBe('collector')
  })

  it('refuses a name that is no valid consumer name, naming the setting', () => {
    expect(() => loadConfig({ env: { PLACEGUARD_COLLECTOR_NAME: 'Collector 2' } })).toThrow(/^cluster\.collectorName: /)
  })
})
