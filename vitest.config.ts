import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests start real servers (broker, mosquitto): give them room, and run
    // files in separate processes so ports, timers and env never leak.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
})
