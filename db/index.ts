/**
 * The db room: the collector group's shared state in PostgreSQL
 * (PLACEGUARD_DATABASE_URL) — the connection pool and the schema, versioned
 * in plain SQL files (db/migrations) and applied at start. The stores that
 * use it live in the rooms that own their rules (detection/, delivery/,
 * fleet/), behind their store interfaces.
 */
export { connectDatabaseClient, createDatabasePool, DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS, redactDatabaseUrl, type DatabasePoolOptions, type Client, type Pool, type PoolClient } from './pool.ts'
export { databaseUrlSchema } from './config.ts'
export { checksumOf, loadMigrations, migrate, MIGRATIONS_DIR, type Migration, type MigrationResult } from './migrate.ts'
