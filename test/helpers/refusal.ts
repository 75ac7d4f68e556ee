import { expect } from 'vitest'
import { PlaceGuardError } from '../../shared/errors.ts'

/** The PG_ERR_INPUT_INVALID `work` throws, checked to name `field` first in its message. */
export function inputRefusal (work: () => unknown, field: string): PlaceGuardError {
  let error: unknown
  try {
    work()
  } catch (e) {
    error = e
  }
  expect(error).toBeInstanceOf(PlaceGuardError)
  expect((error as PlaceGuardError).code).toBe('PG_ERR_INPUT_INVALID')
  expect((error as PlaceGuardError).field).toBe(field)
  expect((error as PlaceGuardError).message.startsWith(`${field}:`)).toBe(true)
  return error as PlaceGuardError
}
