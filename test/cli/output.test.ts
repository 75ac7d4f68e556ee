import { describe, expect, it } from 'vitest'
import { inFlagTerms } from '../../cli/output.ts'

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
