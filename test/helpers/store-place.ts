/**
 * Where a store under a contract test lives: a SQLite file in a fresh
 * directory here, a PostgreSQL schema or a Redis key prefix later. `open`
 * may be called again on the same place, after a close (a restart) or
 * while another store is open there (a second process sharing it).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach } from 'vitest'

export interface StorePlace<S> {
  open: () => S
  dispose: () => void
}

/** A new place per call: a SQLite file `name` in its own temporary directory. */
export function sqlitePlace<S> (name: string, open: (path: string) => S): () => StorePlace<S> {
  return () => {
    const dir = mkdtempSync(join(tmpdir(), `placeguard-${name}-`))
    return { open: () => open(join(dir, `${name}.db`)), dispose: () => rmSync(dir, { recursive: true, force: true }) }
  }
}

/**
 * For a contract's describe block: `open()` opens a store at this test's
 * place (one place per test), and every store opened is closed after the
 * test, before its place is disposed of.
 */
export function storesPerTest<S extends { close: () => unknown }> (newPlace: () => StorePlace<S>): { open: () => S } {
  let place: StorePlace<S> | undefined
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
    place?.dispose()
    place = undefined
  })
  return {
    open: () => {
      place ??= newPlace()
      const store = place.open()
      opened.push(store)
      return store
    },
  }
}
