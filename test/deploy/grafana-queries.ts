/**
 * The InfluxQL in PlaceGuard's Grafana dashboards, read the way the tests
 * need it: every query with where it sits, the measurements it reads, the
 * identifiers it names. A deliberately small reader, not a parser: the
 * dashboards keep to its conventions (every identifier double-quoted; FROM
 * names measurements as "a", "b" or /^(a|b)$/), and the tests fail on
 * anything else.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export const DASHBOARDS_DIR = join(import.meta.dirname, '..', '..', 'dashboards', 'grafana', 'dashboards')

export interface Dashboard {
  uid: string
  title: string
  schemaVersion: number
  panels: Panel[]
  templating: { list: Variable[] }
  [key: string]: unknown
}
export interface Panel {
  id: number
  type: string
  title: string
  datasource?: unknown
  targets?: Target[]
  panels?: Panel[]
  [key: string]: unknown
}
export interface Target { refId: string, query?: string, rawQuery?: boolean, alias?: string, datasource?: unknown, resultFormat?: string }
export interface Variable { name: string, type: string, query?: unknown, datasource?: unknown }

export interface DashboardQuery {
  file: string
  /** Panel title and refId, or the template variable. */
  where: string
  query: string
  alias?: string
}

export function loadDashboards (): Array<{ file: string, dashboard: Dashboard }> {
  return readdirSync(DASHBOARDS_DIR).filter((name) => name.endsWith('.json')).sort()
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(DASHBOARDS_DIR, file), 'utf8')) as Dashboard }))
}

export function panelsOf (dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])])
}

export function queriesOf (file: string, dashboard: Dashboard): DashboardQuery[] {
  const fromPanels = panelsOf(dashboard).flatMap((panel) => (panel.targets ?? []).map((target) => ({
    file, where: `panel "${panel.title}" ${target.refId}`, query: target.query ?? '', ...(target.alias ? { alias: target.alias } : {}),
  })))
  const fromVariables = dashboard.templating.list.filter((variable) => variable.type === 'query')
    .map((variable) => ({ file, where: `variable $${variable.name}`, query: String(variable.query ?? '') }))
  return [...fromPanels, ...fromVariables]
}

/** Measurements named after FROM (subqueries are read on their own); undefined when a FROM is written another way. */
export function measurementsOf (query: string): string[] | undefined {
  const froms = [...query.matchAll(/\bFROM\s+/gi)]
  const names: string[] = []
  for (const from of froms) {
    const rest = query.slice(from.index + from[0].length)
    if (rest.startsWith('(')) continue
    const quoted = /^("[^"]+"(?:\s*,\s*"[^"]+")*)/.exec(rest)
    const regex = /^\/\^\(([\w|-]+)\)\$\//.exec(rest)
    if (quoted) names.push(...[...quoted[1]!.matchAll(/"([^"]+)"/g)].map((m) => m[1]!))
    else if (regex) names.push(...regex[1]!.split('|'))
    else return undefined
  }
  return [...new Set(names)]
}

/** Every double-quoted identifier. */
export function identifiersOf (query: string): string[] {
  return [...new Set([...query.matchAll(/"([^"]+)"/g)].map((m) => m[1]!))]
}

/** Names given with AS "…", and the default column names of functions (a subquery's last("seq") is "last"). */
export function columnNamesOf (query: string): string[] {
  return [
    ...[...query.matchAll(/\bAS\s+"([^"]+)"/gi)].map((m) => m[1]!),
    ...[...query.matchAll(/\b([a-z_]+)\(/gi)].map((m) => m[1]!.toLowerCase()),
  ]
}

/** Identifiers in GROUP BY clauses (after `time(…)`): these must be tags. */
export function groupByTagsOf (query: string): string[] {
  return [...query.matchAll(/\bGROUP BY\s+(?:time\([^)]*\)\s*,?\s*)?((?:"[^"]+"\s*,?\s*)*)/gi)]
    .flatMap((m) => [...m[1]!.matchAll(/"([^"]+)"/g)].map((n) => n[1]!))
}

/** Template variables a query uses ($site, $__interval, $timeFilter, …). */
export function variablesOf (query: string): string[] {
  return [...new Set([...query.matchAll(/\$(\w+)/g)].map((m) => m[1]!))]
}

/** Literal values compared with a tag: `"type" = 'x'` or `"type" =~ /^(x|y)$/` (variables left out). */
export function tagLiteralsOf (query: string, tag: string): string[] {
  const equal = [...query.matchAll(new RegExp(`"${tag}"\\s*=\\s*'([^']+)'`, 'g'))].map((m) => m[1]!)
  const regex = [...query.matchAll(new RegExp(`"${tag}"\\s*=~\\s*/\\^\\(?([^/$]+?)\\)?\\$/`, 'g'))].flatMap((m) => m[1]!.split('|'))
  return [...equal, ...regex].filter((value) => !value.includes('$'))
}

/** The query as Grafana would send it with every variable on All, over the last hour. */
export function queryForRun (query: string): string {
  return query
    .replaceAll('$timeFilter', 'time > now() - 1h')
    .replaceAll('$__interval', '1m')
    .replace(/\/\^\$\w+\$\//g, '/^.*$/')
}
