/**
 * The real InfluxDB 2.7 image, set up the way docker-compose.yml sets it up
 * (first-run setup with a retention, then Grafana's read-only InfluxQL login
 * made by the influxdb-init one-shot's script, run twice as a restart
 * would). The collector's InfluxDB sink
 * writes every measurement; the points are read back over InfluxQL, the
 * language of the Grafana dashboards, and every dashboard query runs.
 *
 * Needs a Docker engine (testcontainers). Where none is reachable, as on the
 * development machine, the suite is skipped and says so.
 */
import { join, resolve } from 'node:path'
import { GenericContainer, getContainerRuntimeClient, type StartedTestContainer, Wait } from 'testcontainers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createInfluxSink } from '../../collector/influx-sink.ts'
import { loadDashboards, measurementsOf, queriesOf, queryForRun } from './grafana-queries.ts'
import { KINDS, placeguardSchema, samplePoints } from './placeguard-schema.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
const SETUP = { org: 'placeguard', bucket: 'placeguard', token: 'test-admin-token-3c9d1f', retention: '1d' }
const GRAFANA_LOGIN = { username: 'grafana', password: 'test-grafana-password-51be' }

async function dockerEngine (): Promise<{ reachable: true } | { reachable: false, reason: string }> {
  try {
    await getContainerRuntimeClient()
    return { reachable: true }
  } catch (error) {
    return { reachable: false, reason: (error as Error).message }
  }
}

const engine = await dockerEngine()
const SKIPPED = engine.reachable ? '' : `skipped: no Docker engine reachable (${engine.reason}) — this test runs where Docker is available`
if (!engine.reachable) process.stderr.write(`test/deploy/influxdb.testcontainers.test.ts ${SKIPPED}\n`)

interface InfluxQlResult { results: Array<{ statement_id: number, error?: string, series?: Array<{ name: string, tags?: Record<string, string>, columns: string[], values: unknown[][] }> }> }

describe.skipIf(!engine.reachable)(engine.reachable ? 'InfluxDB 2.7 in a container' : SKIPPED, () => {
  let container: StartedTestContainer
  let url: string

  /** InfluxQL over the 1.x-compatible /query, as Grafana sends it. */
  async function influxQl (q: string, login = GRAFANA_LOGIN): Promise<InfluxQlResult['results'][number]> {
    const response = await fetch(`${url}/query?${new URLSearchParams({ db: SETUP.bucket, q, epoch: 'ms' })}`, {
      headers: { authorization: `Basic ${Buffer.from(`${login.username}:${login.password}`).toString('base64')}` },
    })
    expect(response.status, `${q}: ${await response.clone().text()}`).toBe(200)
    const body = await response.json() as InfluxQlResult
    return body.results[0]!
  }

  beforeAll(async () => {
    container = await new GenericContainer('influxdb:2.7')
      .withEnvironment({
        DOCKER_INFLUXDB_INIT_MODE: 'setup',
        DOCKER_INFLUXDB_INIT_USERNAME: 'admin',
        DOCKER_INFLUXDB_INIT_PASSWORD: 'test-admin-password-8e21',
        DOCKER_INFLUXDB_INIT_ORG: SETUP.org,
        DOCKER_INFLUXDB_INIT_BUCKET: SETUP.bucket,
        DOCKER_INFLUXDB_INIT_RETENTION: SETUP.retention,
        DOCKER_INFLUXDB_INIT_ADMIN_TOKEN: SETUP.token,
      })
      // Not in /docker-entrypoint-initdb.d: docker-compose.yml runs it as a one-shot once InfluxDB is healthy.
      .withCopyFilesToContainer([{
        source: join(ROOT, 'dashboards', 'grafana', 'influxdb-init', 'grafana-reader.sh'),
        target: '/placeguard-init/grafana-reader.sh',
        mode: 0o755,
      }])
      .withExposedPorts(8086)
      // Port 8086 opens only after the first-run setup, which runs on a temporary port.
      .withWaitStrategy(Wait.forHttp('/ping', 8086).forStatusCode(204))
      .withStartupTimeout(180_000)
      .start()
    url = `http://${container.getHost()}:${container.getMappedPort(8086)}`
    // As the influxdb-init one-shot, twice: a second `docker compose up` must succeed too.
    for (const run of ['creates', 'finds']) {
      const result = await container.exec(['/bin/bash', '/placeguard-init/grafana-reader.sh'], {
        env: {
          INFLUX_HOST: 'http://localhost:8086', INFLUX_TOKEN: SETUP.token, INFLUX_ORG: SETUP.org, PLACEGUARD_INFLUX_BUCKET: SETUP.bucket,
          GRAFANA_INFLUX_USERNAME: GRAFANA_LOGIN.username, GRAFANA_INFLUX_PASSWORD: GRAFANA_LOGIN.password,
        },
      })
      expect(result.exitCode, `${run} the login: ${result.output}`).toBe(0)
    }
  }, 240_000)

  afterAll(async () => {
    await container?.stop()
  })

  it('keeps the bucket for the retention set at first start', async () => {
    const response = await fetch(`${url}/api/v2/buckets?${new URLSearchParams({ name: SETUP.bucket, org: SETUP.org })}`, { headers: { authorization: `Token ${SETUP.token}` } })
    const { buckets } = await response.json() as { buckets: Array<{ retentionRules: Array<{ everySeconds: number }> }> }
    expect(buckets[0]!.retentionRules[0]!.everySeconds).toBe(86_400)
  })

  it('stores what the collector writes with measurement = kind, tags site and device, and the readings as fields', async () => {
    const sink = createInfluxSink({ url, token: SETUP.token, org: SETUP.org, bucket: SETUP.bucket })
    try {
      expect(await sink.write(samplePoints(Date.now()))).toEqual({ outcome: 'success' })
    } finally {
      await sink.close()
    }
    const schema = placeguardSchema()
    const measurements = (await influxQl('SHOW MEASUREMENTS')).series![0]!.values.map(([name]) => name)
    expect(measurements.sort()).toEqual([...schema.keys()].sort())
    for (const [measurement, { tags, fields }] of schema) {
      const tagKeys = (await influxQl(`SHOW TAG KEYS FROM "${measurement}"`)).series![0]!.values.map(([key]) => key)
      expect(tagKeys.sort(), measurement).toEqual([...tags].sort())
      const fieldTypes = Object.fromEntries((await influxQl(`SHOW FIELD KEYS FROM "${measurement}"`)).series![0]!.values as Array<[string, string]>)
      expect(Object.keys(fieldTypes).sort(), measurement).toEqual([...fields].sort())
      if (KINDS.includes(measurement as typeof KINDS[number])) {
        expect(fieldTypes.seq, `${measurement}.seq`).toBe('integer')
        expect(fieldTypes.fw, `${measurement}.fw`).toBe('string')
        for (const field of [...fields].filter((name) => name !== 'seq' && name !== 'fw')) expect(fieldTypes[field], `${measurement}.${field}`).toBe('float')
      }
    }
    const flood = await influxQl('SELECT "level_cm", "battery_v", "seq", "fw" FROM "flood" WHERE "site" = \'riverside\' AND "device" = \'flood-00001\' ORDER BY time ASC')
    expect(flood.series![0]!.values.map((row) => row.slice(1))).toEqual([[1.5, 1.5, 1, '1.4.2'], [2.5, 2.5, 2, '1.4.2']])
  })

  it('answers every dashboard query, and the telemetry panels with data', async () => {
    for (const { file, dashboard } of loadDashboards()) {
      for (const { where, query } of queriesOf(file, dashboard)) {
        const result = await influxQl(queryForRun(query))
        expect(result.error, `${file}, ${where}: ${query}`).toBeUndefined()
        const readsTelemetry = measurementsOf(query)!.some((m) => KINDS.includes(m as typeof KINDS[number]))
        if (file === 'telemetry.json' && readsTelemetry) expect(result.series?.length, `${file}, ${where} returns data`).toBeGreaterThan(0)
      }
    }
  })

  it('lets Grafana\'s login read but not write, where the admin token may', async () => {
    const write = (authorization: string) => fetch(`${url}/write?${new URLSearchParams({ db: SETUP.bucket, precision: 'ms' })}`, {
      method: 'POST', headers: { authorization }, body: `flood,site=riverside,device=flood-00002 level_cm=10,battery_v=3.6,seq=1i,fw="1.4.2" ${Date.now()}`,
    })
    const asGrafana = await write(`Basic ${Buffer.from(`${GRAFANA_LOGIN.username}:${GRAFANA_LOGIN.password}`).toString('base64')}`)
    expect([401, 403]).toContain(asGrafana.status)
    const asAdmin = await write(`Token ${SETUP.token}`)
    expect(asAdmin.status).toBe(204)
  })

  it('a field type conflict (422, partial write) sets the refused points aside and lets the rest through', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { Spool } = await import('../../collector/spool.ts')
    const { StoreWriter } = await import('../../collector/store-writer.ts')
    // Someone else made "housing.temp_c" a string in this bucket.
    const conflict = await fetch(`${url}/api/v2/write?${new URLSearchParams({ org: SETUP.org, bucket: SETUP.bucket, precision: 'ms' })}`, {
      method: 'POST', headers: { authorization: `Token ${SETUP.token}` }, body: `housing,site=old-town,device=housing-77777 temp_c="warm" ${Date.now() - 60_000}`,
    })
    expect(conflict.status).toBe(204)
    const dir = mkdtempSync(join(tmpdir(), 'pg-conflict-'))
    const spool = new Spool({ path: join(dir, 'spool.db'), maxBytes: 64 * 1024 * 1024 })
    const sink = createInfluxSink({ url, token: SETUP.token, org: SETUP.org, bucket: SETUP.bucket })
    const writer = new StoreWriter({ spool, sink })
    try {
      const at = Date.now()
      spool.append([
        { measurement: 'flood', tags: { site: 'harbour', device: 'flood-77777' }, fields: { level_cm: 12, battery_v: 3.5, seq: 1, fw: '3.2.1' }, timestampMs: at },
        { measurement: 'housing', tags: { site: 'old-town', device: 'housing-77777' }, fields: { temp_c: 21.5, humidity_pct: 40, co2_ppm: 600, seq: 1, fw: '1.8.3' }, timestampMs: at },
        { measurement: 'flood', tags: { site: 'harbour', device: 'flood-77777' }, fields: { level_cm: 13, battery_v: 3.5, seq: 2, fw: '3.2.1' }, timestampMs: at + 1 },
      ])
      writer.start()
      const deadline = Date.now() + 10_000
      while (spool.pendingPoints > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
      expect(spool.pendingPoints).toBe(0)
      expect(spool.rejected().map((r) => r.point.measurement)).toEqual(['housing'])
      expect(spool.rejected()[0]!.reason).toMatch(/type/)
      const flood = await influxQl('SELECT "seq" FROM "flood" WHERE "device" = \'flood-77777\'')
      expect(flood.series![0]!.values).toHaveLength(2)
    } finally {
      await writer.stop()
      await sink.close()
      spool.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
