import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../shared/config.ts'
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
