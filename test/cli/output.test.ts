import { describe, expect, it, vi } from 'vitest'
import { inFlagTerms, reportError } from '../../cli/output.ts'
import { invalidInput, PlaceGuardError } from '../../shared/errors.ts'

describe('library errors in the CLI\'s words', () => {
  it('turns the option at fault and the options it quotes into flags', () => {
    expect(inFlagTerms('notAfter: 2031-01-01T00:00:00.000Z is not after `notBefore` 2032-01-01T00:00:00.000Z', 'notAfter'))
      .toBe('--not-after: 2031-01-01T00:00:00.000Z is not after --not-before 2032-01-01T00:00:00.000Z')
    expect(inFlagTerms('mix: "flood" is not kind=weight', 'mix')).toBe('--mix: "flood" is not kind=weight')
  })

  it('leaves positional arguments, unknown names and ordinary words alone', () => {
    expect(inFlagTerms('deviceId: "bad#id" is not a valid id', 'deviceId')).toBe('deviceId: "bad#id" is not a valid id')
    expect(inFlagTerms('kind: "lava" is not a device kind (`flood`, `energy`, `housing`)', 'kind')).toBe('--kind: "lava" is not a device kind (`flood`, `energy`, `housing`)')
    expect(inFlagTerms('cannot listen on 0.0.0.0:8883: EADDRINUSE', 'mqttPort')).toBe('cannot listen on 0.0.0.0:8883: EADDRINUSE')
  })
})

describe('reportError', () => {
  const printed = (error: unknown): { text: string, status: number } => {
    const lines: string[] = []
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => { lines.push(String(chunk)); return true })
    try {
      const status = reportError(error)
      return { text: lines.join(''), status }
    } finally {
      spy.mockRestore()
    }
  }

  it('names the flag to change, and exits with the status the code carries', () => {
    expect(printed(new PlaceGuardError('PG_ERR_BROKER_LISTEN', 'cannot listen on 0.0.0.0:8883: EADDRINUSE', { field: 'mqttPort' })))
      .toEqual({ text: 'placeguard: PG_ERR_BROKER_LISTEN: cannot listen on 0.0.0.0:8883: EADDRINUSE (--mqtt-port)\n', status: 1 })
    expect(printed(invalidInput('days', 'give either `days` or `notBefore`/`notAfter`, not both', 'one or the other')))
      .toEqual({ text: 'placeguard: PG_ERR_INPUT_INVALID: --days: give either --days or --not-before/--not-after, not both\n  hint: one or the other\n', status: 2 })
  })
})
