/**
 * Reading untrusted JSON (advisories, provider metadata) field by field,
 * so that a wrong one is named with its file and path, e.g.
 * `2024/icsa-24-011-03.json: vulnerabilities[0].cve: must be a string`.
 */
export interface Field { file: string, path: string, value: unknown }

/** An input that cannot be used, named by file and field; the sync reports it and carries on with the others. */
export class AdvisoryInputError extends Error {
  readonly file: string
  readonly field: string

  constructor (at: Pick<Field, 'file' | 'path'>, message: string) {
    super(`${at.file}: ${at.path || '(document)'}: ${message}`)
    this.name = 'AdvisoryInputError'
    this.file = at.file
    this.field = at.path
  }
}

function child (field: Field, key: string): Field {
  if (key === '') return field
  const value = field.value !== null && typeof field.value === 'object' && !Array.isArray(field.value) ? (field.value as Record<string, unknown>)[key] : undefined
  return { file: field.file, path: field.path ? `${field.path}.${key}` : key, value }
}

export function objectAt (field: Field, key: string): Field {
  const at = child(field, key)
  if (at.value === null || typeof at.value !== 'object' || Array.isArray(at.value)) throw new AdvisoryInputError(at, at.value === undefined ? 'is missing' : 'must be an object')
  return at
}

export function optionalObjectAt (field: Field, key: string): Field | undefined {
  return child(field, key).value === undefined ? undefined : objectAt(field, key)
}

export function stringAt (field: Field, key: string): Field & { value: string } {
  const at = child(field, key)
  if (typeof at.value !== 'string') throw new AdvisoryInputError(at, at.value === undefined ? 'is missing' : 'must be a string')
  return at as Field & { value: string }
}

export function optionalStringAt (field: Field, key: string): (Field & { value: string }) | undefined {
  return child(field, key).value === undefined ? undefined : stringAt(field, key)
}

export function arrayAt (field: Field, key: string): Field & { items: Field[] } {
  const at = child(field, key)
  if (!Array.isArray(at.value)) throw new AdvisoryInputError(at, at.value === undefined ? 'is missing' : 'must be an array')
  return { ...at, items: at.value.map((value, i) => ({ file: at.file, path: `${at.path}[${i}]`, value })) }
}

export function optionalArrayAt (field: Field, key: string): (Field & { items: Field[] }) | undefined {
  return child(field, key).value === undefined ? undefined : arrayAt(field, key)
}
