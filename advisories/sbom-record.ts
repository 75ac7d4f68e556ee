/**
 * `placeguard advisories sbom add`: an SBOM read from a file or an
 * http(s) URL (bounded in size and time like a provider's files,
 * provider-source.ts), checked (sbom-document.ts) and recorded for one
 * firmware of a product. The SBOM is read once, when recorded: a
 * collector never fetches it, so a site without Internet access matches
 * as well as one with, and what is matched is what was checked. Recording
 * again (the same or a newer file) replaces it.
 */
import { dirname, resolve } from 'node:path'
import type { AdvisoryStore, AsyncAdvisoryStore, StoredSbom, UpsertResult } from './advisory-store.ts'
import { AdvisoryInputError } from './input.ts'
import { directorySource, httpSource, SourceError } from './provider-source.ts'
import { MAX_SBOM_BYTES, parseSbom } from './sbom-document.ts'

export interface SbomTarget { vendor: string, model: string, firmware: string }

export interface RecordedSbom extends Omit<StoredSbom, 'components'> { result: UpsertResult, components: number }

/** Reads, checks and records an SBOM; throws AdvisoryInputError (bad SBOM) or SourceError (cannot be read). */
export async function recordSbom (store: AdvisoryStore | AsyncAdvisoryStore, target: SbomTarget, given: string, at: string, timeoutMs = 30_000): Promise<RecordedSbom> {
  const firmware = target.firmware.trim()
  if (firmware === '' || firmware.length > 100) throw new AdvisoryInputError({ file: given, path: 'firmware' }, 'must be 1 to 100 characters: the firmware version as devices report it')
  const isUrl = /^https?:\/\//i.test(given)
  const source = isUrl ? given : resolve(given)
  const bytes = isUrl
    ? await httpSource(given, { timeoutMs }).read(given, MAX_SBOM_BYTES)
    : await directorySource(dirname(source)).read(source, MAX_SBOM_BYTES)
  if (bytes === undefined) throw new SourceError(`${given}: not found`)
  const parsed = parseSbom(given, bytes)
  const sbom: StoredSbom = { vendor: target.vendor.trim(), model: target.model.trim(), firmware, source, ...parsed }
  const result = await store.putSbom(sbom, at)
  return { ...sbom, components: parsed.components.length, result }
}
