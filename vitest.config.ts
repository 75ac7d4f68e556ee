import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // aedes with the patches `placeguard` applies (broker/aedes-patches.ts), before any test loads it.
    setupFiles: ['test/setup.ts'],
    // Tests start real servers (broker, mosquitto): give them room, and run
    // files in separate processes so ports, timers and env never leak.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
})
