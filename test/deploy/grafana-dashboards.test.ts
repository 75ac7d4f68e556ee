/**
 * The Grafana provisioning and dashboards against PlaceGuard's schema: every
 * measurement, tag and field a query names is one the collector writes (the
 * schema comes from the collector's code, so a rename there fails here), and
 * every panel reads the provisioned data source.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { SECURITY_EVENT_TYPES } from '../../broker/index.ts'
import { POLICY_IDS, SEVERITIES, SYSTEM_ALERT_IDS } from '../../policies/index.ts'
import {
  columnNamesOf, type Dashboard, groupByTagsOf, identifiersOf, loadDashboards, measurementsOf, panelsOf, queriesOf, tagLiteralsOf, variablesOf,
} from './grafana-queries.ts'
import { KINDS, placeguardSchema, sampleAlertPoints } from './placeguard-schema.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
const GRAFANA = join(ROOT, 'dashboards', 'grafana')
const schema = placeguardSchema()
const dashboards = loadDashboards()
const queries = dashboards.flatMap(({ file, dashboard }) => queriesOf(file, dashboard))

interface DatasourceFile { apiVersion: number, datasources: Array<{ uid: string, type: string, url: string, user?: string, jsonData: Record<string, unknown>, secureJsonData?: Record<string, string> }> }
const datasourceText = readFileSync(join(GRAFANA, 'provisioning', 'datasources', 'influxdb.yaml'), 'utf8')
const datasources = (parseYaml(datasourceText) as DatasourceFile).datasources
const DATASOURCE_UID = datasources[0]!.uid

/** Every `datasource` object anywhere in a dashboard. */
function datasourceRefs (value: unknown, found: Array<{ uid?: string, type?: string }> = []): Array<{ uid?: string, type?: string }> {
  if (Array.isArray(value)) for (const item of value) datasourceRefs(item, found)
  else if (value && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (key === 'datasource') found.push(typeof child === 'object' && child !== null ? child as { uid?: string } : { uid: `(not an object: ${JSON.stringify(child)})` })
      else datasourceRefs(child, found)
    }
  }
  return found
}

describe('Grafana provisioning', () => {
  it('provisions one InfluxDB data source, queried with InfluxQL through the bucket\'s DBRP mapping', () => {
    expect(datasources).toHaveLength(1)
    const [source] = datasources
    expect(source!.type).toBe('influxdb')
    expect(source!.jsonData.version).toBe('InfluxQL')
    expect(source!.jsonData.dbName).toBe('${PLACEGUARD_INFLUX_BUCKET}')
  })

  it('holds no secret: the credential comes from Grafana\'s environment, which docker-compose.yml fills', () => {
    const [source] = datasources
    expect(source!.secureJsonData).toEqual({ password: '${GRAFANA_INFLUX_PASSWORD}' })
    expect(source!.user).toBe('${GRAFANA_INFLUX_USERNAME}')
    const compose = parseYaml(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: { grafana: { environment: Record<string, string>, volumes: string[] } } }
    const variables = [...datasourceText.replace(/^\s*#.*$/gm, '').matchAll(/\$\{?(\w+)\}?/g)].map((m) => m[1]!)
    expect(variables.length).toBeGreaterThan(2)
    for (const name of variables) expect(Object.keys(compose.services.grafana.environment), name).toContain(name)
  })

  // A provisioned dashboard cannot be saved from the UI (allowUiUpdates:
  // false): an editable one invites edits that are lost on leaving the page.
  it('makes the dashboards read-only in Grafana, consistently with the provider', () => {
    const provider = (parseYaml(readFileSync(join(GRAFANA, 'provisioning', 'dashboards', 'placeguard.yaml'), 'utf8')) as { providers: Array<{ allowUiUpdates: boolean }> }).providers
    expect(provider[0]!.allowUiUpdates).toBe(false)
    for (const { file, dashboard } of loadDashboards()) expect(dashboard.editable, file).toBe(false)
  })

  // Grafana reads every provisioning folder at start and logs an error for
  // each missing one; the empty ones hold only a README, which it skips
  // (it reads .yaml/.yml, and .json for alerting).
  it('has every provisioning folder Grafana reads, the unused ones with nothing Grafana would parse', () => {
    const provisioning = join(GRAFANA, 'provisioning')
    expect(readdirSync(provisioning).sort()).toEqual(['alerting', 'dashboards', 'datasources', 'plugins'])
    for (const folder of ['alerting', 'plugins']) {
      const files = readdirSync(join(provisioning, folder))
      expect(files.length, `${folder} is kept in git`).toBeGreaterThan(0)
      for (const file of files) expect(file, folder).not.toMatch(/\.(ya?ml|json)$/)
    }
  })

  it('loads the dashboards from where docker-compose.yml mounts them', () => {
    const provider = (parseYaml(readFileSync(join(GRAFANA, 'provisioning', 'dashboards', 'placeguard.yaml'), 'utf8')) as { providers: Array<{ type: string, options: { path: string } }> }).providers
    expect(provider).toHaveLength(1)
    const compose = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')
    expect(compose).toContain(`./dashboards/grafana/dashboards:${provider[0]!.options.path}:ro`)
  })
})

describe('Grafana dashboards', () => {
  it('are fleet health, telemetry, and security', () => {
    expect(dashboards.map(({ file }) => file)).toEqual(['fleet-health.json', 'security.json', 'telemetry.json'])
  })

  it.each(dashboards)('$file is a dashboard with a uid, a schema version, panels and templating', ({ dashboard }: { dashboard: Dashboard }) => {
    expect(dashboard.uid).toMatch(/^placeguard-[a-z-]+$/)
    expect(dashboard.title).toMatch(/^PlaceGuard: /)
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36)
    expect(Array.isArray(dashboard.templating.list)).toBe(true)
    const panels = panelsOf(dashboard)
    expect(panels.length).toBeGreaterThan(3)
    expect(new Set(panels.map((panel) => panel.id)).size, 'panel ids are unique').toBe(panels.length)
    for (const panel of panels) expect(panel.title, `panel ${panel.id}`).toBeTruthy()
  })

  it('have distinct uids', () => {
    expect(new Set(dashboards.map(({ dashboard }) => dashboard.uid)).size).toBe(dashboards.length)
  })

  it('reference only the provisioned data source, by uid', () => {
    for (const { file, dashboard } of dashboards) {
      const refs = datasourceRefs(dashboard).filter((ref) => ref.type !== 'grafana') // Grafana's built-in annotations
      expect(refs.length, file).toBeGreaterThan(0)
      for (const ref of refs) expect(ref, file).toEqual({ type: 'influxdb', uid: DATASOURCE_UID })
    }
  })

  it('give every panel that is not a row a query', () => {
    for (const { file, dashboard } of dashboards) {
      for (const panel of panelsOf(dashboard).filter((p) => p.type !== 'row')) {
        expect(panel.targets?.length, `${file}: ${panel.title}`).toBeGreaterThan(0)
        for (const target of panel.targets!) expect(target.rawQuery, `${file}: ${panel.title}`).toBe(true)
      }
    }
  })

  it('query only measurements, tags and fields that the collector writes', () => {
    expect(queries.length).toBeGreaterThan(20)
    for (const { file, where, query, alias } of queries) {
      const at = `${file}, ${where}: ${query}`
      const measurements = measurementsOf(query)
      expect(measurements, `${at}\n  write FROM as "name", "name" or /^(a|b)$/`).toBeDefined()
      expect(measurements!.length, at).toBeGreaterThan(0)
      for (const measurement of measurements!) expect([...schema.keys()], at).toContain(measurement)
      const known = new Set([...measurements!, ...columnNamesOf(query), ...measurements!.flatMap((m) => [...schema.get(m)!.tags, ...schema.get(m)!.fields])])
      for (const identifier of identifiersOf(query)) expect([...known], `${at}\n  "${identifier}"`).toContain(identifier)
      for (const tag of [...groupByTagsOf(query), ...[...query.matchAll(/WITH KEY = "([^"]+)"/g)].map((m) => m[1]!)]) {
        for (const measurement of measurements!) expect([...schema.get(measurement)!.tags], `${at}\n  "${tag}" is not a tag of ${measurement}`).toContain(tag)
      }
      for (const tag of [...(alias ?? '').matchAll(/\$tag_(\w+)/g)].map((m) => m[1]!)) {
        expect(groupByTagsOf(query), `${at}\n  alias $tag_${tag} needs GROUP BY "${tag}"`).toContain(tag)
      }
    }
  })

  it('compare tags only with values PlaceGuard writes', () => {
    const opened = sampleAlertPoints()[0]!.fields.change
    for (const { file, where, query } of queries) {
      const at = `${file}, ${where}`
      for (const type of tagLiteralsOf(query, 'type')) expect(SECURITY_EVENT_TYPES, at).toContain(type)
      for (const policy of tagLiteralsOf(query, 'policy')) expect([...POLICY_IDS, ...SYSTEM_ALERT_IDS], at).toContain(policy)
      for (const severity of tagLiteralsOf(query, 'severity')) expect(SEVERITIES, at).toContain(severity)
      for (const change of [...query.matchAll(/"change" = '([^']+)'/g)].map((m) => m[1]!)) expect(change, at).toBe(opened)
    }
  })

  it('use only template variables they define, or Grafana\'s own', () => {
    for (const { file, dashboard } of dashboards) {
      const defined = new Set(['timeFilter', '__interval', ...dashboard.templating.list.map((variable) => variable.name)])
      for (const { where, query } of queriesOf(file, dashboard)) {
        for (const name of variablesOf(query)) expect([...defined], `${file}, ${where}: $${name}`).toContain(name)
      }
    }
  })

  it('filter telemetry by site and device, and chart every reading of every kind', () => {
    const telemetry = dashboards.find(({ file }) => file === 'telemetry.json')!.dashboard
    const variables = telemetry.templating.list.map((variable) => variable.name)
    expect(variables).toEqual(expect.arrayContaining(['site', 'device']))
    const panelQueries = panelsOf(telemetry).flatMap((panel) => (panel.targets ?? []).map((target) => target.query ?? ''))
    for (const query of panelQueries) expect(variablesOf(query), query).toEqual(expect.arrayContaining(['site', 'device']))
    for (const kind of KINDS) {
      const readings = [...schema.get(kind)!.fields].filter((field) => field !== 'seq' && field !== 'fw')
      expect(readings.length, kind).toBeGreaterThan(0)
      for (const reading of readings) {
        expect(panelQueries.some((query) => measurementsOf(query)?.includes(kind) && identifiersOf(query).includes(reading)), `${kind}.${reading} has a panel`).toBe(true)
      }
    }
  })

  // A device silent for longer than the dashboard's range (6 h by default)
  // must not vanish from the panels that exist to show it: they look back
  // over InfluxDB's retention, docker-compose.yml's INFLUXDB_RETENTION default.
  it('list silent devices and last-seen times over the retention, not the dashboard\'s range', () => {
    const retention = /\$\{INFLUXDB_RETENTION:-(\d+[hdw])\}/.exec(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'))![1]!
    const fleet = dashboards.find(({ file }) => file === 'fleet-health.json')!.dashboard
    const panels = panelsOf(fleet).filter((panel) => /^(Silent devices|Last seen)/.test(panel.title))
    expect(panels).toHaveLength(2)
    for (const panel of panels) {
      for (const target of panel.targets!) {
        expect(target.query, panel.title).not.toContain('$timeFilter')
        expect(target.query, panel.title).toContain(`WHERE time > now() - ${retention} AND`)
      }
    }
  })

  it('show fleet health per kind, firmware versions, and silent devices', () => {
    const fleet = queries.filter(({ file }) => file === 'fleet-health.json')
    for (const kind of KINDS) {
      expect(fleet.some(({ query }) => measurementsOf(query)?.includes(kind) && identifiersOf(query).includes('fw')), `${kind} firmware`).toBe(true)
    }
    expect(fleet.some(({ query }) => tagLiteralsOf(query, 'policy').includes('device-silent'))).toBe(true)
  })

  it('show security events by type and alerts by policy and severity over time, and recent alerts', () => {
    const security = queries.filter(({ file }) => file === 'security.json').map(({ query }) => query)
    expect(security.some((q) => measurementsOf(q)?.includes('security_event') && /GROUP BY time\(\$__interval\), "type"/.test(q))).toBe(true)
    expect(security.some((q) => measurementsOf(q)?.includes('alert') && /GROUP BY time\(\$__interval\), "policy"/.test(q))).toBe(true)
    expect(security.some((q) => measurementsOf(q)?.includes('alert') && /GROUP BY time\(\$__interval\), "severity"/.test(q))).toBe(true)
    expect(security.some((q) => measurementsOf(q)?.includes('alert') && /ORDER BY time DESC LIMIT \d+/.test(q))).toBe(true)
  })
})
