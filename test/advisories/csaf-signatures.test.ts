/**
 * OpenPGP checks in CSAF sync (advisories/openpgp-trust.ts) with keys and
 * detached signatures made by the real gpg, as providers make them,
 * served by a real HTTP server on loopback and read from a mirror
 * directory: a good signature accepted; a tampered advisory (hashes
 * redone) with its old .asc, a signature by another key, a missing or
 * malformed .asc, a revoked or expired key each refused and named while
 * the rest sync; a key from provider-metadata.json used only when its own
 * fingerprint equals the pin.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, normalize } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { readTrustedKeys, SqliteAdvisoryStore, syncCsafProvider, type TrustedKey } from '../../advisories/index.ts'
import { advisoryFile, writeProvider } from '../helpers/csaf-provider.ts'
import { gpgKeyring, type GpgKeyring } from '../helpers/gpg.ts'

let gpg: GpgKeyring
/** The provider's key (ed25519), another party's (rsa3072), one expired since 2020, one revoked. */
let fpr: { provider: string, other: string, expired: string, revoked: string }
let armored: Record<keyof typeof fpr, string>

beforeAll(() => {
  gpg = gpgKeyring()
  fpr = {
    provider: gpg.generate('Acme PSIRT <psirt@acme.example>'),
    other: gpg.generate('Someone Else <else@example.org>', { algo: 'rsa3072' }),
    expired: gpg.generate('Old PSIRT <old@acme.example>', { expire: '1y', at: '20200101T000000' }),
    revoked: gpg.generate('Lost PSIRT <lost@acme.example>'),
  }
  armored = { provider: gpg.exportPublic(fpr.provider), other: gpg.exportPublic(fpr.other), expired: gpg.exportPublic(fpr.expired), revoked: '' }
}, 60_000)

afterAll(() => gpg.close())

let dir: string
let root: string
let store: SqliteAdvisoryStore
let server: Server | undefined
let base: string

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'placeguard-csaf-pgp-'))
  root = join(dir, 'provider')
  store = new SqliteAdvisoryStore(join(dir, 'advisories.db'))
})

afterEach(async () => {
  store.close()
  if (server) await new Promise((resolve) => server!.close(resolve))
  server = undefined
  rmSync(dir, { recursive: true, force: true })
})

/** Serves `root` as the provider's site at /.well-known/csaf/. */
async function serve (): Promise<void> {
  server = createServer((request, response) => {
    const file = normalize(join(root, decodeURIComponent(new URL(request.url!, 'http://x').pathname).replace(/^\/\.well-known\/csaf\//, '')))
    try {
      if (!file.startsWith(root) || !statSync(file).isFile()) throw new Error('no')
      response.writeHead(200).end(readFileSync(file))
    } catch {
      response.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server!.address() as AddressInfo).port}/.well-known/csaf`
}

const meter = (id: string) => advisoryFile({ id, products: [{ vendor: 'Acme Metering', model: 'EM-400', ranges: ['<V5.2.4'] }] })
const ids = ['ICSA-26-030-01', 'ICSA-26-030-02', 'ICSA-26-030-03']
const path = (id: string): string => join(root, 'white', '2026', `${id.toLowerCase()}.json`)

/** A provider of three advisories, each signed by `signer` with gpg; the metadata lists `listed` keys under `openpgp/`. */
function publish (siteBase: string, signer: string = fpr.provider, listed: Array<{ fingerprint: string, key: string }> = []): void {
  writeProvider(root, siteBase, ids.map(meter))
  for (const id of ids) gpg.signDetached(signer, path(id))
  const metadata = JSON.parse(readFileSync(join(root, 'provider-metadata.json'), 'utf8')) as Record<string, unknown>
  metadata.public_openpgp_keys = listed.map(({ fingerprint, key }, i) => {
    writeFileSync(join(root, `key-${i}.asc`), key)
    return { fingerprint, url: `${siteBase}/key-${i}.asc` }
  })
  writeFileSync(join(root, 'provider-metadata.json'), JSON.stringify(metadata))
}

/** Changes an advisory after it was signed and publishes matching hashes: only the signature can tell. */
function tamper (id: string): void {
  const file = path(id)
  const content = readFileSync(file, 'utf8').replace('Update to the latest firmware.', 'No fix needed.')
  writeFileSync(file, content)
  writeFileSync(`${file}.sha256`, `${createHash('sha256').update(content).digest('hex')}  x\n`)
  writeFileSync(`${file}.sha512`, `${createHash('sha512').update(content).digest('hex')}  x\n`)
}

const keysOf = async (which: keyof typeof fpr): Promise<TrustedKey[]> => await readTrustedKeys(`${which}.asc`, Buffer.from(armored[which]))
const refusedIds = (report: { refused: Array<{ file: string, reason: string }> }): Record<string, string> =>
  Object.fromEntries(report.refused.map((r) => [r.file.replace(/^.*\//, ''), r.reason]))

describe('CSAF OpenPGP signatures with a configured key', () => {
  it('accepts advisories signed by the key, and says which key checked them', async () => {
    await serve()
    publish(base)
    const report = await syncCsafProvider(`${base}/provider-metadata.json`, { store, openpgp: { keys: await keysOf('provider'), pins: [] } })
    expect(report).toMatchObject({ new: 3, refused: [], signatures: { checked: true, keys: [{ fingerprint: fpr.provider, from: 'provider.asc' }] } })
  })

  it('refuses a tampered advisory whose hashes were redone, a signature by another key, a missing and a malformed .asc; the rest sync', async () => {
    await serve()
    writeProvider(root, base, [...ids, 'ICSA-26-030-04', 'ICSA-26-030-05'].map(meter))
    for (const id of ids) gpg.signDetached(fpr.provider, path(id))
    tamper('ICSA-26-030-02')
    gpg.signDetached(fpr.other, path('ICSA-26-030-03'))
    writeFileSync(`${path('ICSA-26-030-05')}.asc`, '-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n-----END PGP SIGNATURE-----\n')
    const report = await syncCsafProvider(`${base}/provider-metadata.json`, { store, openpgp: { keys: await keysOf('provider'), pins: [] } })
    expect(report.new).toBe(1)
    expect(refusedIds(report)).toEqual({
      'icsa-26-030-02.json': expect.stringMatching(new RegExp(`icsa-26-030-02\\.json: .*does not verify with key ${fpr.provider} .*; refused`)),
      'icsa-26-030-03.json': expect.stringMatching(new RegExp(`signed by ${fpr.other.slice(-16)}, which is not a key configured for this provider`)),
      'icsa-26-030-04.json': expect.stringMatching(/no OpenPGP signature \(\.asc\) is published beside it/),
      'icsa-26-030-05.json': expect.stringMatching(/its \.asc is not an OpenPGP signature/),
    })
    expect(store.list().map((a) => a.id)).toEqual(['ICSA-26-030-01'])
  })

  it('takes the same files unchecked without a key, and says signatures were not checked', async () => {
    await serve()
    publish(base, fpr.other)
    tamper('ICSA-26-030-02')
    const report = await syncCsafProvider(`${base}/provider-metadata.json`, { store })
    expect(report).toMatchObject({ new: 3, refused: [], signatures: { checked: false, keys: [] } })
  })

  it('re-reads and verifies what an unchecked sync took in once a key is configured', async () => {
    await serve()
    publish(base)
    gpg.signDetached(fpr.other, path('ICSA-26-030-02'))
    expect(await syncCsafProvider(`${base}/provider-metadata.json`, { store })).toMatchObject({ new: 3 })
    const checked = await syncCsafProvider(`${base}/provider-metadata.json`, { store, openpgp: { keys: await keysOf('provider'), pins: [] } })
    expect(checked).toMatchObject({ new: 0, unchanged: 2, refused: [{ file: expect.stringMatching(/icsa-26-030-02\.json$/) }] })
  })

  it('refuses signatures by a key that has expired or been revoked since, naming it', async () => {
    await serve()
    writeProvider(root, base, ids.map(meter))
    gpg.signDetached(fpr.expired, path(ids[0]!), { at: '20200601T000000' })
    gpg.signDetached(fpr.revoked, path(ids[1]!))
    gpg.signDetached(fpr.provider, path(ids[2]!))
    gpg.revoke(fpr.revoked)
    armored.revoked = gpg.exportPublic(fpr.revoked)
    const keys = [...await keysOf('expired'), ...await keysOf('revoked'), ...await keysOf('provider')]
    const report = await syncCsafProvider(`${base}/provider-metadata.json`, { store, openpgp: { keys, pins: [] } })
    expect(report.new).toBe(1)
    expect(refusedIds(report)).toEqual({
      'icsa-26-030-01.json': expect.stringMatching(new RegExp(`signed by a key not trusted now: key ${fpr.expired} \\(expired\\.asc\\) expired on 2020-12-31`)),
      'icsa-26-030-02.json': expect.stringMatching(new RegExp(`signed by a key not trusted now: key ${fpr.revoked} \\(revoked\\.asc\\) is revoked`)),
    })
    expect(report.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/expired on 2020-12-31.*signatures by it are refused/), expect.stringMatching(/is revoked: signatures by it are refused/)]))
    // With only a key that cannot sign now, nothing could be accepted: the provider is refused as a whole.
    const alone = await syncCsafProvider(`${base}/provider-metadata.json`, { store, openpgp: { keys: await keysOf('expired'), pins: [] } })
    expect(alone.refused).toEqual([{ file: `${base}/provider-metadata.json`, reason: expect.stringMatching(/no OpenPGP key to check signatures with: key .* expired on/) }])
  })
})

describe('CSAF OpenPGP keys pinned by fingerprint', () => {
  it('uses the key provider-metadata.json lists when its fingerprint is the pinned one', async () => {
    await serve()
    publish(base, fpr.provider, [{ fingerprint: fpr.other, key: armored.other }, { fingerprint: fpr.provider.toLowerCase(), key: armored.provider }])
    const report = await syncCsafProvider(`${base}/provider-metadata.json`, { store, openpgp: { keys: [], pins: [fpr.provider] } })
    expect(report).toMatchObject({ new: 3, refused: [], signatures: { keys: [{ fingerprint: fpr.provider, from: `${base}/key-1.asc` }] } })
  })

  it('refuses the provider when no listed key has the pinned fingerprint', async () => {
    await serve()
    publish(base, fpr.provider, [{ fingerprint: fpr.provider, key: armored.provider }])
    const report = await syncCsafProvider(`${base}/provider-metadata.json`, { store, openpgp: { keys: [], pins: [fpr.other] } })
    expect(report).toMatchObject({ new: 0, refused: [{ file: `${base}/provider-metadata.json`, reason: expect.stringMatching(new RegExp(`pinned ${fpr.other}, but provider-metadata\\.json lists ${fpr.provider}`)) }] })
    expect(store.list()).toEqual([])
  })

  it('does not use a key whose own fingerprint differs from the one the metadata claims for it', async () => {
    await serve()
    // The metadata names the pinned fingerprint, but the file there is another key that signed everything.
    publish(base, fpr.other, [{ fingerprint: fpr.provider, key: armored.other }])
    const report = await syncCsafProvider(`${base}/provider-metadata.json`, { store, openpgp: { keys: [], pins: [fpr.provider] } })
    expect(report.refused).toEqual([{ file: `${base}/provider-metadata.json`, reason: expect.stringMatching(/no OpenPGP key to check signatures with/) }])
    expect(report.warnings).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`key-0\\.asc: holds key ${fpr.other}, not the pinned ${fpr.provider}; not used`))]))
    expect(store.list()).toEqual([])
  })
})

describe('CSAF OpenPGP signatures from an offline mirror', () => {
  it('checks a mirror the same way: the pinned key read from the mirror, a tampered advisory refused', async () => {
    publish('https://csaf.example.org/.well-known/csaf', fpr.provider, [{ fingerprint: fpr.provider, key: armored.provider }])
    tamper('ICSA-26-030-03')
    unlinkSync(`${path('ICSA-26-030-02')}.asc`)
    const report = await syncCsafProvider(root, { store, openpgp: { keys: [], pins: [fpr.provider] } })
    expect(report).toMatchObject({ new: 1, signatures: { keys: [{ fingerprint: fpr.provider, from: 'https://csaf.example.org/.well-known/csaf/key-0.asc' }] } })
    expect(refusedIds(report)).toEqual({
      'icsa-26-030-02.json': expect.stringMatching(/no OpenPGP signature \(\.asc\)/),
      'icsa-26-030-03.json': expect.stringMatching(/does not verify/),
    })
  })

  it('refuses every advisory of a mirror signed by a key other than the configured one', async () => {
    publish('https://csaf.example.org/.well-known/csaf', fpr.provider, [{ fingerprint: fpr.provider, key: armored.provider }])
    const report = await syncCsafProvider(root, { store, openpgp: { keys: await keysOf('other'), pins: [] } })
    expect(report.new).toBe(0)
    expect(report.refused).toHaveLength(3)
    expect(report.refused.every((r) => /which is not a key configured for this provider/.test(r.reason))).toBe(true)
  })
})
