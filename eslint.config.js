// Flat config: typescript-eslint's type-aware recommended rules over every
// source folder. Formatting is not linted; correctness and safety are.
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

/**
 * The rooms and the one-way doors between them: each top-level folder may
 * import only the rooms listed for it, and enters them through their
 * index.ts. shared/ is the toolbox: any room may import its files directly,
 * and it imports none of ours. Tests and benches may reach inside.
 */
const ROOMS = {
  shared: [],
  pki: ['shared'],
  policies: ['shared'],
  broker: ['shared', 'pki'],
  collector: ['shared'],
  detection: ['shared', 'pki', 'policies'],
  fleet: ['shared', 'pki'],
  delivery: ['shared'],
  // Redis as the cluster's one place of truth: heartbeats, streams, CRL, quarantines, session owners.
  cluster: ['shared'],
  // PostgreSQL as the collector group's shared state: the pool and the versioned schema.
  db: ['shared'],
  // The operator audit trail: append-only, hash-chained, in SQLite or the group's PostgreSQL.
  audit: ['shared'],
  // CSAF/OSV advisories: sync, parsing, the store. Matching is a pure function in shared/ so policies/ can run it too.
  advisories: ['shared'],
  dashboards: ['shared', 'policies', 'detection', 'fleet', 'delivery', 'audit', 'advisories'],
  'agent-sim': ['shared', 'pki'],
  app: ['shared', 'pki', 'policies', 'broker', 'collector', 'detection', 'fleet', 'delivery', 'dashboards', 'agent-sim', 'cluster', 'db', 'audit', 'advisories'],
  // cli/ parses flags and prints; processes are assembled in app/. Operator commands act on pki/, the broker's quarantine list, the outbox and the simulator directly.
  cli: ['shared', 'app', 'pki', 'broker', 'delivery', 'agent-sim', 'audit', 'advisories'],
}

/**
 * Besides index.ts (the whole room), light doors: files a process may enter
 * by without loading the rest of the room. Every room's config.ts holds its
 * section of the configuration (zod and shared/ only), so app/config.ts can
 * read the whole configuration without loading fastify, pg or ioredis; and
 * app/broker-process.ts assembles the network-facing broker from broker/
 * and pki/ alone, so `placeguard broker` carries no more code than it runs
 * (docs/development.md, "Loading on demand"); app/audit-admin.ts records an
 * operator's command in the audit trail without loading the processes. broker/redis-state.ts is the
 * other way round: a cluster node's Redis state, kept out of broker/index.ts
 * so that a single broker loads no Redis client.
 */
const LIGHT_DOORS = { '*': ['config.ts'], app: ['broker-process.ts', 'audit-admin.ts'], broker: ['redis-state.ts'] }
const doorsOf = (room) => ['index.ts', ...LIGHT_DOORS['*'], ...(LIGHT_DOORS[room] ?? [])]
const doorPattern = (room) => doorsOf(room).map((file) => file.replaceAll('.', '\\.')).join('|')

const oneWayDoors = Object.entries(ROOMS).map(([room, allowed]) => ({
  files: [`${room}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', {
      patterns: Object.keys(ROOMS).filter((other) => other !== room).map((other) => allowed.includes(other)
        ? (other === 'shared' ? undefined : { regex: `^(\\.\\./)+${other}/(?!(${doorPattern(other)})$)`, message: `enter ${other}/ through its index.ts (or a light door: ${doorsOf(other).slice(1).join(', ')})` })
        : { regex: `^(\\.\\./)+${other}/`, message: `${room}/ may not import ${other}/: imports run one way (ROOMS in eslint.config.js)` })
        .filter(Boolean),
    }],
  },
}))

export default tseslint.config(
  { ignores: ['node_modules/', 'data/', 'coverage/', 'bench/results/', 'scratch/'] },
  { languageOptions: { globals: globals.node } },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': ['error', { allow: ['error'] }],
    },
  },
  ...oneWayDoors,
  {
    files: ['bin/**/*.js', 'eslint.config.js', 'vitest.config.ts'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // The dashboard: plain browser ES modules, served as they are (no build step).
    files: ['dashboards/web/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: { ...globals.browser }, sourceType: 'module' },
    rules: { ...tseslint.configs.disableTypeChecked.rules, 'no-console': ['error', { allow: ['error', 'warn'] }] },
  },
)
