/**
 * aedes-persistence's abstract conformance suite (written for node:test's
 * `t.assert`) against SqlitePersistence, each test on its own database
 * file. Run by test/broker/sqlite-persistence.test.ts with `node --test`.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { SqlitePersistence } from '../../broker/sqlite-persistence.ts'

const require = createRequire(import.meta.url)
const abstractPersistence = require('aedes-persistence/abstract.js') as (options: object) => void

const dir = mkdtempSync(join(tmpdir(), 'placeguard-persistence-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let databases = 0

abstractPersistence({
  test,
  persistence: () => new SqlitePersistence({ path: join(dir, `${++databases}.db`) }),
  testAsync: true,
})
