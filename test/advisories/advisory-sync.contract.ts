/**
 * What every AdvisoryStore must do under a real sync (advisories/csaf-sync.ts):
 * run by csaf-sync.test.ts for SQLite and by test/db/pg-advisory-store.test.ts
 * for PostgreSQL, every store call awaited. Against a real HTTP server on
 * loopback serving a provider's layout from disk, and against the same
 * layout as an offline mirror directory: hashes checked (a tampered file
 * refused and named, the rest synced), incremental by changes.csv (the
 * requests counted), bad input named by file and field while the sync
 * carries on, and a server streaming without end cut off at the limit.
 * Then what a store shared by several machines must show: a second store
 * at the same place goes on from the first one's position, two syncs at
 * once store each advisory once, and neither an older release nor an
 * older position overwrites a newer one.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, normalize } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type AdvisoryStore, type AsyncAdvisoryStore, type StoredAdvisory, syncCsafProvider, syncOsvDirectory } from '../../advisories/index.ts'
import { AdvisoryIndex, matchEvidence } from '../../shared/advisory-match.ts'
import { advisoryFile, csafDocument, writeProvider } from '../helpers/csaf-provider.ts'
import { type StorePlace, storesPerTest } from '../helpers/store-place.ts'

export type AdvisoryPlace = StorePlace<AdvisoryStore | AsyncAdvisoryStore>

export function advisoryStoreContract (name: string, newPlace: () => AdvisoryPlace): void {
  describe(`AdvisoryStore contract: ${name}`, () => {
    const stores = storesPerTest(newPlace)
    let dir: string
    let root: string
    let store: AdvisoryStore | AsyncAdvisoryStore
    let server: Server | undefined
    let requests: string[]
    let base: string

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'placeguard-csaf-'))
      root = join(dir, 'provider')
      store = stores.open()
      requests = []
    })

    afterEach(async () => {
      if (server) await new Promise((resolve) => server!.close(resolve))
      server = undefined
      rmSync(dir, { recursive: true, force: true })
    })

    /** Serves `root` as the provider's site at /.well-known/csaf/; `/white/2026/endless.json` streams without end. */
    async function serve (): Promise<void> {
      server = createServer((request, response) => {
        const path = decodeURIComponent(new URL(request.url!, 'http://x').pathname)
        requests.push(path)
        if (path.endsWith('/endless.json')) {
          response.writeHead(200, { 'content-type': 'application/json' })
          const chunk = Buffer.alloc(64 * 1024, 0x20)
          const pump = (): void => { while (!response.destroyed && response.write(chunk)); }
          response.on('drain', pump)
          pump()
          return
        }
        const file = normalize(join(root, path.replace(/^\/\.well-known\/csaf\//, '')))
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

    const meter = (id: string, extra: Partial<Parameters<typeof advisoryFile>[0]> = {}) => advisoryFile({ id, products: [{ vendor: 'Acme Metering', model: 'EM-400', ranges: ['<V5.2.4'] }], ...extra })

    describe('CSAF sync over HTTP', () => {
      it('syncs a provider, refusing the advisory whose hash was tampered with and naming it', async () => {
        await serve()
        writeProvider(root, base, [meter('ICSA-26-010-01'), meter('ICSA-26-010-02'), meter('ICSA-26-010-03')], { tamper: ['2026/icsa-26-010-02.json'] })
        const report = await syncCsafProvider(`${base}/provider-metadata.json`, { store })
        expect(report).toMatchObject({ new: 2, updated: 0, unchanged: 0 })
        expect(report.refused).toHaveLength(1)
        expect(report.refused[0]!.file).toMatch(/2026\/icsa-26-010-02\.json$/)
        expect(report.refused[0]!.reason).toMatch(/hash mismatch: .*icsa-26-010-02\.json\.sha256/)
        const stored = await store.list()
        expect(stored.map((a) => a.id)).toEqual(['ICSA-26-010-01', 'ICSA-26-010-03'])
        expect(stored[0]).toMatchObject({ cves: ['CVE-2026-0001'], cvss: 7.5, remediation: 'vendor_fix: Update to the latest firmware.', products: [{ vendor: 'Acme Metering', model: 'EM-400', range: '<V5.2.4', status: 'affected' }] })
      })

      it('reads only the files changes.csv lists as changed since the last sync', async () => {
        await serve()
        writeProvider(root, base, [meter('ICSA-26-010-01'), meter('ICSA-26-010-02'), meter('ICSA-26-010-03')])
        expect(await syncCsafProvider(`${base}/provider-metadata.json`, { store })).toMatchObject({ new: 3, refused: [] })
        requests = []
        writeProvider(root, base, [meter('ICSA-26-010-01'), meter('ICSA-26-010-02', { version: '2', cvss: [9.1] }, ), meter('ICSA-26-010-03')].map((f, i) => i === 1 ? { ...f, changed: '2026-02-01T00:00:00.000Z' } : f))
        const second = await syncCsafProvider(`${base}/provider-metadata.json`, { store })
        expect(second).toMatchObject({ new: 0, updated: 1, unchanged: 0, refused: [] })
        expect(requests.sort()).toEqual([
          '/.well-known/csaf/provider-metadata.json', '/.well-known/csaf/white/2026/icsa-26-010-02.json', '/.well-known/csaf/white/2026/icsa-26-010-02.json.sha256',
          '/.well-known/csaf/white/2026/icsa-26-010-02.json.sha512', '/.well-known/csaf/white/changes.csv',
        ])
        expect((await store.list()).find((a) => a.id === 'ICSA-26-010-02')!.cvss).toBe(9.1)
        requests = []
        expect(await syncCsafProvider(`${base}/provider-metadata.json`, { store })).toMatchObject({ new: 0, updated: 0, unchanged: 0 })
        expect(requests).toHaveLength(2)
      })

      it('tries a refused file again next time, and takes it once it is repaired', async () => {
        await serve()
        writeProvider(root, base, [meter('ICSA-26-010-01'), meter('ICSA-26-010-02')], { tamper: ['2026/icsa-26-010-02.json'] })
        expect((await syncCsafProvider(`${base}/provider-metadata.json`, { store })).refused).toHaveLength(1)
        writeProvider(root, base, [meter('ICSA-26-010-01'), meter('ICSA-26-010-02')])
        expect(await syncCsafProvider(`${base}/provider-metadata.json`, { store })).toMatchObject({ new: 1, refused: [] })
      })

      it('cuts off a server that streams without end at the size limit, and carries on', async () => {
        await serve()
        writeProvider(root, base, [meter('ICSA-26-010-01'), { path: '2026/endless.json', content: '{}' }])
        const report = await syncCsafProvider(`${base}/provider-metadata.json`, { store, limits: { advisoryBytes: 1 << 20 } })
        expect(report.new).toBe(1)
        expect(report.refused).toEqual([{ file: expect.stringMatching(/endless\.json$/), reason: expect.stringMatching(/more than the 1048576-byte limit/) }])
      })

      it('reads a provider that publishes ROLIE feeds only, incrementally by the entries\' updated times', async () => {
        await serve()
        const files = [meter('ICSA-26-010-01'), meter('ICSA-26-010-02')]
        writeProvider(root, base, files)
        const rolie = (updated: string[]) => {
          writeFileSync(join(root, 'provider-metadata.json'), JSON.stringify({
            canonical_url: `${base}/provider-metadata.json`, metadata_version: '2.0', role: 'csaf_provider',
            distributions: [{ rolie: { feeds: [{ summary: 'TLP:WHITE advisories', tlp_label: 'WHITE', url: `${base}/white/csaf-feed-tlp-white.json` }] } }],
          }))
          writeFileSync(join(root, 'white', 'csaf-feed-tlp-white.json'), JSON.stringify({
            feed: {
              id: 'csaf-feed-tlp-white', title: 'CSAF feed (TLP:WHITE)', updated: '2026-02-01T00:00:00Z',
              entry: files.map((f, i) => ({
                id: f.path, title: f.path, updated: updated[i], link: [{ rel: 'self', href: `${base}/white/${f.path}` }],
                content: { type: 'application/json', src: `${base}/white/${f.path}` }, format: { schema: 'https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json', version: '2.0' },
              })),
            },
          }))
        }
        rolie(['2026-01-11T07:00:00Z', '2026-01-11T07:00:00Z'])
        expect(await syncCsafProvider(`${base}/provider-metadata.json`, { store })).toMatchObject({ new: 2, refused: [] })
        requests = []
        rolie(['2026-01-11T07:00:00Z', '2026-02-01T00:00:00Z'])
        expect(await syncCsafProvider(`${base}/provider-metadata.json`, { store })).toMatchObject({ new: 0, updated: 0, unchanged: 1 })
        expect(requests.filter((path) => path.includes('icsa-')).sort()).toEqual(['/.well-known/csaf/white/2026/icsa-26-010-02.json.sha256', '/.well-known/csaf/white/2026/icsa-26-010-02.json.sha512'])
      })

      it('says plainly when there is no provider there', async () => {
        await serve()
        const report = await syncCsafProvider(`${base}/provider-metadata.json`, { store })
        expect(report.refused).toEqual([{ file: `${base}/provider-metadata.json`, reason: expect.stringMatching(/no provider-metadata\.json there/) }])
      })
    })

    describe('CSAF sync from an offline mirror', () => {
      it('reads the provider layout from a directory, incrementally, with the same checks', async () => {
        writeProvider(root, 'https://csaf.example.org/.well-known/csaf', [meter('ICSA-26-010-01'), meter('ICSA-26-010-02')], { tamper: ['2026/icsa-26-010-02.json'] })
        const first = await syncCsafProvider(root, { store })
        expect(first).toMatchObject({ new: 1, refused: [{ file: join('white', '2026', 'icsa-26-010-02.json') }] })
        const second = await syncCsafProvider(root, { store })
        // Nothing changed: changes.csv, and the refused file tried again.
        expect(second).toMatchObject({ new: 0, refused: [{ reason: expect.stringMatching(/hash mismatch/) }] })
      })

      it('names the file and field of bad input, and syncs the rest', async () => {
        const document = (mutate: (doc: Record<string, any>) => void): string => { // eslint-disable-line @typescript-eslint/no-explicit-any
          const doc = csafDocument({ id: 'X', products: [{ vendor: 'Acme', model: 'M', ranges: ['<2'] }] }) as Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
          mutate(doc)
          return JSON.stringify(doc)
        }
        writeProvider(root, 'https://csaf.example.org/.well-known/csaf', [
          meter('ICSA-26-010-01'),
          { path: '2026/broken.json', content: '{"document": ' },
          { path: '2026/no-id.json', content: document((d) => { delete d.document.tracking.id }) },
          { path: '2026/bad-score.json', content: document((d) => { d.document.tracking.id = 'BAD-SCORE'; d.vulnerabilities[0].scores[0].cvss_v3.baseScore = 'high' }) },
          { path: '2026/bad-range.json', content: document((d) => { d.document.tracking.id = 'BAD-RANGE'; d.product_tree.branches[0].branches[0].branches[0].name = 'roughly 2' }) },
          { path: '2026/huge.json', content: Buffer.alloc(300_000, 0x20) },
          { path: '2026/unhashed.json', content: document((d) => { d.document.tracking.id = 'UNHASHED' }) },
        ], { noHash: ['2026/unhashed.json'] })
        const report = await syncCsafProvider(root, { store, limits: { advisoryBytes: 200_000 } })
        const reasons = Object.fromEntries(report.refused.map((r) => [r.file.replace(/^.*\//, ''), r.reason]))
        expect(reasons).toEqual({
          'broken.json': expect.stringMatching(/broken\.json: \(document\): not JSON/),
          'no-id.json': expect.stringMatching(/no-id\.json: document\.tracking\.id: is missing/),
          'bad-score.json': expect.stringMatching(/bad-score\.json: vulnerabilities\[0\]\.scores\[0\]\.cvss_v3\.baseScore: must be a number from 0 to 10/),
          'huge.json': expect.stringMatching(/over the 200000-byte limit/),
          'unhashed.json': expect.stringMatching(/no \.sha256 or \.sha512 is published/),
        })
        // A range that cannot be read drops that product line, named, not the advisory.
        expect(report.warnings).toEqual([expect.stringMatching(/bad-range\.json: product_tree\.branches\[0\]\.branches\[0\]\.branches\[0\]\.name: "roughly 2".*not matched/)])
        expect((await store.list()).map((a) => [a.id, a.products.length])).toEqual([['BAD-RANGE', 0], ['ICSA-26-010-01', 1]])
      })
    })

    describe('OSV sync', () => {
      it('reads OSV records of <vendor>/<model> packages, naming a bad file', async () => {
        const osv = join(dir, 'osv')
        mkdirSync(osv)
        writeFileSync(join(osv, 'OSV-2026-1.json'), JSON.stringify({
          id: 'OSV-2026-1', modified: '2026-01-01T00:00:00Z', summary: 'Meter web UI injection', aliases: ['CVE-2026-1111'],
          affected: [{ package: { ecosystem: 'Firmware', name: 'Acme Metering/EM-400' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '5.0.0' }, { fixed: '5.2.4' }] }] }],
        }))
        writeFileSync(join(osv, 'OSV-2026-2.json'), JSON.stringify({ id: 'OSV-2026-2', modified: '2026-01-01T00:00:00Z' }))
        const report = await syncOsvDirectory(osv, { store })
        expect(report).toMatchObject({ new: 1, refused: [{ file: 'OSV-2026-2.json', reason: expect.stringMatching(/affected: is missing/) }] })
        expect((await store.list())[0]).toMatchObject({ id: 'OSV-2026-1', cves: ['CVE-2026-1111'], products: [{ vendor: 'Acme Metering', model: 'EM-400', range: 'vers:semver/>=5.0.0|<5.2.4' }] })
      })

      it('scores OSV CVSS v3 vectors so matches carry a number, keeps a v4 vector unscored, and warns on a bad one', async () => {
        const osv = join(dir, 'osv')
        mkdirSync(osv)
        const record = (id: string, severity: unknown, affectedSeverity?: unknown) => writeFileSync(join(osv, `${id}.json`), JSON.stringify({
          id, modified: '2026-01-01T00:00:00Z', severity,
          affected: [{ package: { ecosystem: 'Firmware', name: 'Acme Metering/EM-400' }, versions: ['5.2.1'], ...(affectedSeverity ? { severity: affectedSeverity } : {}) }],
        }))
        record('OSV-2026-10', [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N' }], [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }])
        record('OSV-2026-11', [{ type: 'CVSS_V4', score: 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N' }])
        record('OSV-2026-12', [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L' }, { type: 'CVSS_V3', score: 'CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N' }])
        const report = await syncOsvDirectory(osv, { store })
        expect(report).toMatchObject({ new: 3, refused: [] })
        expect(report.warnings).toEqual([expect.stringMatching(/OSV-2026-12\.json: severity\[0\]\.score: "CVSS:3\.1\/AV:N\/AC:L" is not a CVSS v3 vector; no score taken/)])
        const listed = await store.list()
        expect(Object.fromEntries(listed.map((a) => [a.id, [a.cvss, a.cvssVector]]))).toEqual({
          'OSV-2026-10': [9.8, 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'],
          'OSV-2026-11': [null, 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N'],
          'OSV-2026-12': [0, 'CVSS:3.0/AV:L/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N'],
        })
        // What firmware-vulnerable carries for a device on the affected firmware.
        const matches = new AdvisoryIndex(listed).match({ vendor: 'Acme Metering', model: 'EM-400' }, '5.2.1')
        expect(matchEvidence(matches)).toMatchObject({ advisory: 'OSV-2026-10', cvss: 9.8 })
      })
    })

    describe('a store several machines share', () => {
      const advisory = (id: string, releasedAt: string, cvss: number): StoredAdvisory => ({
        id, format: 'csaf', title: `Meter ${id}`, cves: ['CVE-2026-0001'], cvss, remediation: null, revision: releasedAt, releasedAt,
        products: [{ vendor: 'Acme Metering', model: 'EM-400', version: null, range: '<V5.2.4', status: 'affected' }],
      })

      it('goes on from where a sync through another store at the same place stopped', async () => {
        await serve()
        writeProvider(root, base, [meter('ICSA-26-010-01'), meter('ICSA-26-010-02')])
        expect(await syncCsafProvider(`${base}/provider-metadata.json`, { store })).toMatchObject({ new: 2, refused: [] })
        const elsewhere = stores.open()
        writeProvider(root, base, [meter('ICSA-26-010-01'), meter('ICSA-26-010-02'), { ...meter('ICSA-26-010-03'), changed: '2026-02-01T00:00:00.000Z' }])
        requests = []
        expect(await syncCsafProvider(`${base}/provider-metadata.json`, { store: elsewhere })).toMatchObject({ new: 1, updated: 0, unchanged: 0, refused: [] })
        // Only the file changed since the first store's sync was read.
        expect(requests.filter((path) => path.includes('icsa-') && path.endsWith('.json'))).toEqual(['/.well-known/csaf/white/2026/icsa-26-010-03.json'])
        expect((await store.list()).map((a) => a.id)).toEqual(['ICSA-26-010-01', 'ICSA-26-010-02', 'ICSA-26-010-03'])
      })

      it('stores each advisory once when two syncs of one provider run at once', async () => {
        await serve()
        const ids = Array.from({ length: 40 }, (_, i) => `ICSA-26-020-${String(i).padStart(2, '0')}`)
        writeProvider(root, base, ids.map((id) => meter(id)))
        const other = stores.open()
        const revisionBefore = await store.revision()
        const reports = await Promise.all([store, other].map((s) => syncCsafProvider(`${base}/provider-metadata.json`, { store: s, concurrency: 8 })))
        expect(reports.map((r) => r.refused)).toEqual([[], []])
        // Each file was stored by one of the two; the other found it there.
        expect(reports[0]!.new + reports[1]!.new).toBe(40)
        expect(reports[0]!.updated + reports[1]!.updated).toBe(0)
        const listed = await other.list()
        expect(listed.map((a) => a.id)).toEqual(ids)
        for (const a of listed) expect(a.products).toEqual([{ vendor: 'Acme Metering', model: 'EM-400', version: null, range: '<V5.2.4', status: 'affected' }])
        expect(await store.revision()).toBe(revisionBefore + 40)
        // Both positions were the same: the next sync reads nothing.
        requests = []
        expect(await syncCsafProvider(`${base}/provider-metadata.json`, { store: other })).toMatchObject({ new: 0, updated: 0, unchanged: 0 })
        expect(requests).toHaveLength(2)
      })

      it('keeps a later release of an advisory when a sync that read an older one finishes last', async () => {
        const origin = (sha256: string) => ({ provider: 'https://csaf.example.org/.well-known/csaf/provider-metadata.json', file: 'white/2026/icsa-26-030-01.json', sha256 })
        expect(await store.upsert(advisory('ICSA-26-030-01', '2026-03-02T00:00:00.000Z', 9.8), origin('b'.repeat(64)), '2026-03-02T01:00:00.000Z')).toBe('new')
        expect(await store.upsert(advisory('ICSA-26-030-01', '2026-03-01T00:00:00.000Z', 5.0), origin('a'.repeat(64)), '2026-03-02T01:00:01.000Z')).toBe('unchanged')
        expect(await store.upsert(advisory('ICSA-26-030-01', '2026-03-02T00:00:00.000Z', 9.9), origin('c'.repeat(64)), '2026-03-02T01:00:02.000Z')).toBe('updated')
        expect((await store.list()).map((a) => [a.releasedAt, a.cvss, a.syncedAt])).toEqual([['2026-03-02T00:00:00.000Z', 9.9, '2026-03-02T01:00:02.000Z']])
      })

      it('keeps the further position when a sync that read an older changes.csv finishes last', async () => {
        const provider = 'https://csaf.example.org/.well-known/csaf/provider-metadata.json https://csaf.example.org/.well-known/csaf/white/'
        await store.setPosition(provider, { changedUntil: '2026-02-01T00:00:00.000Z', retry: ['white/2026/b.json'], syncedAt: '2026-02-01T01:00:00.000Z' })
        await store.setPosition(provider, { changedUntil: '2026-01-11T07:00:00.000Z', retry: [], syncedAt: '2026-02-01T01:00:05.000Z' })
        expect(await store.position(provider)).toEqual({ changedUntil: '2026-02-01T00:00:00.000Z', retry: ['white/2026/b.json'], syncedAt: '2026-02-01T01:00:00.000Z' })
        await store.setPosition(provider, { changedUntil: '2026-02-01T00:00:00.000Z', retry: [], syncedAt: '2026-02-01T02:00:00.000Z' })
        expect(await store.position(provider)).toEqual({ changedUntil: '2026-02-01T00:00:00.000Z', retry: [], syncedAt: '2026-02-01T02:00:00.000Z' })
        expect(await store.position('never synced')).toEqual({ changedUntil: null, retry: [], syncedAt: null })
      })
    })
  })
}
