/**
 * docs/configuration.md's reference is generated from the schema
 * (scripts/config-doc.ts); a key, default or description changed in
 * app/config.ts or a room's config.ts without `npm run docs:config` fails here.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { BEGIN, CONFIG_DOC, END, renderConfigReference } from '../../scripts/config-doc.ts'

describe('docs/configuration.md', () => {
  const page = readFileSync(CONFIG_DOC, 'utf8')

  it('holds the reference generated from the configuration schema, as it is now', () => {
    const start = page.indexOf(BEGIN)
    const end = page.indexOf(END)
    expect(start, 'generated-region start marker').toBeGreaterThanOrEqual(0)
    expect(end, 'generated-region end marker').toBeGreaterThan(start)
    expect(page.slice(start, end + END.length)).toBe(renderConfigReference())
  })

  it('names every PLACEGUARD_ variable the code reads', () => {
    // loadConfig reads the environment; the sinks' variables are named by delivery/ (SINK_ENV), the cluster's by cluster/ (CLUSTER_ENV).
    const config = ['../../app/config.ts', '../../delivery/config.ts', '../../cluster/config.ts'].map((file) => readFileSync(new URL(file, import.meta.url), 'utf8')).join('\n')
    const names = [...new Set([...config.matchAll(/\b(PLACEGUARD_[A-Z_]+)\b/g)].map((m) => m[1]!))]
    expect(names.length).toBeGreaterThan(10)
    expect(names.filter((name) => !page.includes(`\`${name}\``))).toEqual([])
  })
})
