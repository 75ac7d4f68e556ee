/**
 * The manifest `pki issue-batch` reads: CSV (RFC 4180) with a header line,
 * one device a line — what a procurement spreadsheet exports.
 *
 *   deviceId,kind,site,vendor,model
 *   flood-0001,flood,riverside,Acme Hydro,FL-2
 *
 * `deviceId`, `kind` and `site` are required; `vendor` and `model` are
 * optional, together. A bad line is refused with its line number and
 * field, before anything is issued.
 */
import { PlaceGuardError } from '../shared/errors.ts'
import { invalidInput } from '../shared/errors.ts'

export interface ManifestRow { line: number, deviceId: string, kind: string, site: string, vendor?: string, model?: string }

const REQUIRED = ['deviceId', 'kind', 'site'] as const
const OPTIONAL = ['vendor', 'model'] as const
const COLUMNS: readonly string[] = [...REQUIRED, ...OPTIONAL]

export function parseManifest (text: string, source: string, check: (row: ManifestRow) => void = () => {}): ManifestRow[] {
  const records = csvRecords(text.replace(/^\uFEFF/, ''), source)
  const header = records.shift()
  if (!header) throw invalidInput('manifest', `${source} is empty`, `its first line names the columns: ${COLUMNS.join(',')}`)
  const columns = header.fields.map((name) => COLUMNS.find((known) => known.toLowerCase() === name.trim().toLowerCase()) ?? name.trim())
  const unknown = columns.find((name) => !COLUMNS.includes(name))
  if (unknown !== undefined) throw invalidInput('manifest', `${source} line 1: "${unknown}" is not a column`, `the columns are ${COLUMNS.join(', ')}`)
  const missing = REQUIRED.find((name) => !columns.includes(name))
  if (missing !== undefined) throw invalidInput('manifest', `${source} line 1: no "${missing}" column`, `the first line names the columns: ${COLUMNS.join(',')}`)
  const seen = new Map<string, number>()
  const rows: ManifestRow[] = []
  for (const { line, fields } of records) {
    if (fields.length === 1 && fields[0]!.trim() === '') continue // a blank line
    if (fields.length !== columns.length) {
      throw invalidInput('manifest', `${source} line ${line}: ${fields.length} fields where the header has ${columns.length}`, 'quote a field that holds a comma: "Acme, Inc."')
    }
    const value = (name: string): string | undefined => {
      const at = columns.indexOf(name)
      const field = at < 0 ? undefined : fields[at]!.trim()
      return field === '' ? undefined : field
    }
    const row: ManifestRow = {
      line, deviceId: value('deviceId') ?? '', kind: value('kind') ?? '', site: value('site') ?? '', vendor: value('vendor'), model: value('model'),
    }
    const first = seen.get(row.deviceId)
    if (first !== undefined) throw invalidInput('manifest', `${source} line ${line}: "${row.deviceId}" is listed again (line ${first})`, 'each device is listed once')
    seen.set(row.deviceId, line)
    try {
      check(row)
    } catch (error) {
      if (!(error instanceof PlaceGuardError)) throw error
      throw new PlaceGuardError(error.code, `${source} line ${line}: ${error.message}`, { field: error.field, hint: error.hint, cause: error })
    }
    rows.push(row)
  }
  if (rows.length === 0) throw invalidInput('manifest', `${source} lists no device`, 'one line per device under the header')
  return rows
}

/** The records of a CSV text, each with the line it starts on; quoted fields may hold commas, quotes ("") and line breaks. */
function csvRecords (text: string, source: string): Array<{ line: number, fields: string[] }> {
  const records: Array<{ line: number, fields: string[] }> = []
  let fields: string[] = []
  let field = ''
  let quoted = false
  let line = 1
  let start = 1
  let i = 0
  const endRecord = (): void => {
    fields.push(field)
    records.push({ line: start, fields })
    fields = []
    field = ''
  }
  while (i < text.length) {
    const char = text[i]!
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') { field += '"'; i += 2; continue }
      if (char === '"') { quoted = false; i++; continue }
      if (char === '\n') line++
      field += char
      i++
      continue
    }
    if (char === '"' && field.trim() === '') { quoted = true; field = ''; i++; continue }
    if (char === ',') { fields.push(field); field = ''; i++; continue }
    if (char === '\r' && text[i + 1] === '\n') { i++; continue }
    if (char === '\n') {
      endRecord()
      line++
      start = line
      i++
      continue
    }
    field += char
    i++
  }
  if (quoted) throw invalidInput('manifest', `${source} line ${start}: a quoted field is not closed`, 'close it with "')
  if (field !== '' || fields.length > 0) endRecord()
  return records
}
