import type { DatabaseSync } from 'node:sqlite'

/**
 * Runs `work` in one IMMEDIATE transaction (the write lock is taken up
 * front, so a concurrent writer waits on busy_timeout instead of failing
 * mid-way); a throw rolls back everything it wrote. A failed COMMIT (disk
 * full) may already have rolled back, hence the isTransaction check.
 */
export function inTransaction<T> (db: DatabaseSync, work: () => T): T {
  db.exec('BEGIN IMMEDIATE')
  try {
    const result = work()
    db.exec('COMMIT')
    return result
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK')
    throw error
  }
}
