/**
 * A strict CEF parser per the ArcSight CEF spec, written from the spec rather
 * than from delivery/cef.ts, so the tests can prove nothing can be injected
 * into a CEF line: seven header fields ended by unescaped pipes, in which
 * only `\\` and `\|` may appear; then `key=value` pairs, where a value may
 * hold only the escapes `\\`, `\=`, `\n`, `\r` and no raw `=`, and a pair
 * ends at a space followed by `key=`. Anything else throws.
 */
export function parseCef (line: string): { header: string[], extension: Map<string, string> } {
  const field = /(?:[^\\|]|\\[\\|])*/y
  const header: string[] = []
  let at = 0
  for (let index = 0; index < 7; index++) {
    field.lastIndex = at
    const raw = field.exec(line)![0]
    at += raw.length
    if (line[at] !== '|') throw new Error(`header field ${index} is not ended by an unescaped | (offset ${at})`)
    at++
    header.push(raw.replace(/\\(.)/g, '$1'))
  }
  const pair = /([A-Za-z0-9]+)=((?:[^\\=\r\n]|\\[\\=nr])*?)(?: (?=[A-Za-z0-9]+=)|$)/y
  const extension = new Map<string, string>()
  pair.lastIndex = at
  while (at < line.length) {
    const match = pair.exec(line)
    if (!match) throw new Error(`extension does not parse at offset ${at}: ${line.slice(at, at + 40)}`)
    at = pair.lastIndex
    if (extension.has(match[1]!)) throw new Error(`extension key ${match[1]} repeated`)
    extension.set(match[1]!, match[2]!.replace(/\\([\\=nr])/g, (_, c: string) => c === 'n' ? '\n' : c === 'r' ? '\r' : c))
  }
  return { header, extension }
}
