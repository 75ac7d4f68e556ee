/**
 * Where a store under a contract test lives: a SQLite file in a fresh
 * directory, a PostgreSQL database (test/db/pg-*.test.ts), a Redis key
 * prefix later. `open` may be called again on the same place, after a
 * close (a restart) or while another store is open there (a second
 * process sharing it).
 * `Args`: what a store takes besides its place (the spool its bound).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach } from 'vitest'

export interface StorePlace<S, Args extends unknown[] = []> {
  open: (...args: Args) => S
  /** May be asynchronous (a PostgreSQL place ends its pools); awaited after the test's stores are closed. */
  dispose: () => void | Promise<void>
}

/** A new place per call: a SQLite file `name` in its own temporary directory. */
export function sqlitePlace<S, Args extends unknown[] = []> (name: string, open: (path: string, ...args: Args) => S): () => StorePlace<S, Args> {
  return () => {
    const dir = mkdtempSync(join(tmpdir(), `placeguard-${name}-`))
    return { open: (...args: Args) => open(join(dir, `${name}.db`), ...args), dispose: () => rmSync(dir, { recursive: true, force: true }) }
  }
}

/**
 * For a contract's describe block: `open()` opens a store at this test's
 * place (one place per test), and every store opened is closed after the
 * test, before its place is disposed of.
 */
export function storesPerTest<S extends { close: () => unknown }, Args extends unknown[] = []> (newPlace: () => StorePlace<S, Args>): { open: (...args: Args) => S } {
  let place: StorePlace<S, Args> | undefined
  let opened: S[] = []
  afterEach(async () => {
    for (const store of opened.reverse()) {
      try {
        await store.close()
      } catch {
        // closed by the test already
      }
    }
    opened = []
    await place?.dispose()
    place = undefined
  })
  return {
    open: (...args: Args) => {
      place ??= newPlace()
      const store = place.open(...args)
      opened.push(store)
      return store
    },
  }
}
