import { availableParallelism } from 'node:os'
import { readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { defineConfig } from 'vitest/config'
import { BaseSequencer, type TestSpecification } from 'vitest/node'

/**
 * The slowest files, by what a full run measured (test/slow-files.json),
 * start first. Without a results cache, as on a fresh clone in CI, Vitest
 * runs larger files first, and the slowest files are short: a 140 s file
 * that started last ran alone on one worker for its last two minutes.
 * Files not listed keep Vitest's order, after these.
 */
const slowFiles = (JSON.parse(readFileSync(join(import.meta.dirname, 'test', 'slow-files.json'), 'utf8')) as { files: Record<string, number> }).files

class SlowestFirst extends BaseSequencer {
  override async sort (files: TestSpecification[]): Promise<TestSpecification[]> {
    const ordered = await super.sort(files)
    const seconds = (spec: TestSpecification): number => slowFiles[relative(import.meta.dirname, spec.moduleId).replaceAll('\\', '/')] ?? 0
    return ordered.map((spec, index) => ({ spec, index })).sort((a, b) => seconds(b.spec) - seconds(a.spec) || a.index - b.index).map(({ spec }) => spec)
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // aedes with the patches `placeguard` applies (broker/aedes-patches.ts), before any test loads it.
    setupFiles: ['test/setup.ts'],
    // Tests start real servers (broker, mosquitto): give them room, and run
    // files in separate processes so ports, timers and env never leak.
    pool: 'forks',
    // Two files at a time even on 2 cores (Vitest's default there is one): the tests wait on servers and
    // timers more than they compute, and a test that only passes alone has a wall-clock assumption to fix.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 30_000,
    hookTimeout: 60_000,
    sequence: { sequencer: SlowestFirst },
  },
})
