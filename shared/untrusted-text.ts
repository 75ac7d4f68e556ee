/**
 * Text that came from a device or an unverified peer, made safe to show a
 * person: Unicode format characters (category Cf: the bidi overrides
 * U+202A–U+202E and isolates U+2066–U+2069, U+200E/U+200F, zero-width
 * characters) and control characters are written as `\uXXXX`, and the
 * length is capped. A right-to-left override in a claimed device id would
 * otherwise make an analyst read a different id than the one sent
 * (Trojan Source, CVE-2021-42574; STRIDE S/R).
 */
const HIDDEN = /[\p{Cf}\p{Cc}\u2028\u2029]/gu

export function visibleText (value: string, max = 80): string {
  const capped = [...value].length > max ? [...value].slice(0, max).join('') + '…' : value
  return capped.replace(HIDDEN, (char) => `\\u${char.codePointAt(0)!.toString(16).padStart(4, '0')}`)
}

/** Removes the characters visibleText escapes, for channels where an escape would read as noise. */
export function withoutHiddenCharacters (value: string): string {
  return value.replace(HIDDEN, '')
}
