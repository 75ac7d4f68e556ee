import { PlaceGuardError } from '../shared/errors.ts'

const BAD_INPUT = new Set(['PG_ERR_INPUT_INVALID', 'PG_ERR_CONFIG_INVALID', 'PG_ERR_SCENARIO_INVALID'])

/** Prints an error the way every command does: code, message, hint; exit status 2 for bad input, 1 otherwise. */
export function reportError (error: unknown): number {
  if (error instanceof PlaceGuardError) {
    process.stderr.write(`placeguard: ${error.code}: ${error.message}\n`)
    if (error.hint) process.stderr.write(`  hint: ${error.hint}\n`)
    return BAD_INPUT.has(error.code) ? 2 : 1
  }
  process.stderr.write(`placeguard: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  return 1
}

export function printJson (value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

/** A plain text table, columns padded to their widest cell. */
export function printTable (header: string[], rows: string[][]): void {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()
  process.stdout.write([line(header), ...rows.map(line)].join('\n') + '\n')
}
