import { availableParallelism } from 'node:os'
import { defineConfig } from 'vitest/config'

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
  },
})
