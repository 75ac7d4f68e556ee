import { PlaceGuardError } from '../shared/errors.ts'

/**
 * The libraries name their options (`notAfter`, `mqttPort`); a person at
 * the command line typed flags. Each option a library error may name, and
 * the flag that sets it.
 */
const FLAGS: Record<string, string> = {
  kind: '--kind', site: '--site', serial: '--serial', days: '--days', notBefore: '--not-before', notAfter: '--not-after',
  mqttPort: '--mqtt-port', httpPort: '--http-port', mix: '--mix', config: '--config', vendor: '--vendor', model: '--model', csaf: '--csaf', firmware: '--firmware',
  network: '--network', devEui: '--dev-eui', integrationId: '--integration',
}

/** An error's message in the CLI's words: the option at fault (`days: …`) and any `option` it quotes, as flags. */
export function inFlagTerms (message: string, field: string | undefined): string {
  let text = message.replace(/`([A-Za-z]+)`/g, (quoted, name: string) => FLAGS[name] ?? quoted)
  if (field !== undefined && FLAGS[field] !== undefined && text.startsWith(`${field}:`)) text = FLAGS[field] + text.slice(field.length)
  return text
}

/** Prints an error the way every command does: code, message (in flag terms), hint; the exit status its code carries (2 for bad input, 1 otherwise). */
export function reportError (error: unknown): number {
  if (error instanceof PlaceGuardError) {
    const flag = error.field === undefined ? undefined : FLAGS[error.field]
    // A message that does not open with its field ("cannot listen on …") still says which flag to change.
    const named = flag === undefined || error.message.startsWith(`${error.field}:`) ? '' : ` (${flag})`
    process.stderr.write(`placeguard: ${error.code}: ${inFlagTerms(error.message, error.field)}${named}\n`)
    if (error.hint) process.stderr.write(`  hint: ${error.hint}\n`)
    return error.exitCode
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

/**
 * A progress bar on stderr for long work, on a terminal only (`shown`):
 * nothing in a log or beside --json. It appears once the total is known
 * and at least `fromTotal`; short work is not worth one.
 */
export async function progressBar (label: string, unit: string, shown: boolean, fromTotal: number):
  Promise<{ onProgress: (done: number, total: number) => void, stop: () => void }> {
  const cliProgress = await import('cli-progress')
  let bar: InstanceType<typeof cliProgress.SingleBar> | undefined
  return {
    onProgress: (done, total) => {
      if (!shown || total < fromTotal) return
      if (!bar) {
        bar = new cliProgress.SingleBar({ format: `${label} [{bar}] {value}/{total} ${unit}`, stream: process.stderr, hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic)
        bar.start(total, done)
      } else bar.update(done)
    },
    stop: () => bar?.stop(),
  }
}
