import type { Command } from 'commander'
import { loadConfig } from '../app/config.ts'
import { invalidInput } from '../shared/errors.ts'

/** `--data-dir` is a global option (default ./data, env PLACEGUARD_DATA_DIR). */
export function dataDirOf (command: Command): string {
  return loadConfig({ flags: { dataDir: command.optsWithGlobals<{ dataDir?: string }>().dataDir } }).dataDir
}

export function wholeNumber (field: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw invalidInput(field, `"${value}" is not a whole number`)
    return Number(value)
  }
}
