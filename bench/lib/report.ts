import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SingleBar, Presets } from 'cli-progress'

/** A progress bar on a TTY; silent in CI logs. */
export function progressBar (label: string, total: number): { update: (done: number) => void, stop: () => void } {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} }
  const bar = new SingleBar({ format: `${label} [{bar}] {value}/{total} {percentage}% eta {eta}s`, stream: process.stderr, hideCursor: true }, Presets.shades_classic)
  bar.start(total, 0)
  return { update: (done) => bar.update(done), stop: () => bar.stop() }
}

/** Writes the figures to bench/results/<name>-<date>.json for later comparison. */
export function saveResults (name: string, results: unknown): string {
  const dir = join(import.meta.dirname, '..', 'results')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n')
  return file
}

export function printTable (rows: Array<Record<string, string | number>>): void {
  const header = Object.keys(rows[0] ?? {})
  const cells = rows.map((row) => header.map((key) => String(row[key])))
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (values: string[]): string => values.map((v, i) => v.padStart(widths[i]!)).join('  ')
  process.stdout.write([line(header), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n')
}

export function round (value: number, digits = 1): number {
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}
