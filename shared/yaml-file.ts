/**
 * Reads a YAML file an operator edits and validates it with a zod schema;
 * every error names the file, the line and the field, so a typo in a
 * scenario or a policy file is found in seconds.
 */
import { readFileSync } from 'node:fs'
import { LineCounter, parseDocument } from 'yaml'
import type { z } from 'zod'
import { type ErrorCode, PlaceGuardError } from './errors.ts'

export function loadYamlFile<S extends z.ZodType> (file: string, schema: S, code: ErrorCode, what: string): z.infer<S> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw fileError(code, what, file, undefined, `cannot be read: ${(error as Error).message}`)
  }
  return parseYamlText(text, file, schema, code, what)
}

/** The same for text that is not (yet) a file, e.g. a policy file checked through the API; `name` stands in for the file name. */
export function parseYamlText<S extends z.ZodType> (text: string, name: string, schema: S, code: ErrorCode, what: string): z.infer<S> {
  const file = name
  const lineCounter = new LineCounter()
  const document = parseDocument(text, { prettyErrors: false, lineCounter })
  if (document.errors.length > 0) {
    const error = document.errors[0]!
    throw fileError(code, what, file, lineCounter.linePos(error.pos[0]).line, `is not valid YAML: ${error.message.split('\n')[0]}`)
  }
  const result = schema.safeParse(document.toJS())
  if (!result.success) {
    const issue = result.error.issues[0]!
    const path = issue.path.map(String).join('.')
    throw fileError(code, what, file, lineOf(document, lineCounter, issue.path as Array<string | number>), `${path || '(top level)'}: ${issue.message}`, path)
  }
  return result.data
}

function lineOf (document: ReturnType<typeof parseDocument>, lineCounter: LineCounter, path: Array<string | number>): number | undefined {
  // Walk up until a node with a source range exists (a missing key has none; its parent does).
  for (let depth = path.length; depth >= 0; depth--) {
    const node = depth === 0 ? document.contents : document.getIn(path.slice(0, depth), true)
    const offset = (node as { range?: [number, number, number] } | null | undefined)?.range?.[0]
    if (offset !== undefined) return lineCounter.linePos(offset).line
  }
  return undefined
}

function fileError (code: ErrorCode, what: string, file: string, line: number | undefined, message: string, field?: string): PlaceGuardError {
  return new PlaceGuardError(code, `${what} ${file}${line ? `:${line}` : ''}: ${message}`, { field: field || what })
}
