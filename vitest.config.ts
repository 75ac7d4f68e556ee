import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests start real servers (broker, mosquitto): give them room, and run
    // files in separate processes so ports, timers and env never leak.
    pool: 'forks',
    // Two files at a time on any machine: most files wait on real servers,
    // timers and child processes rather than compute, and Vitest's default
    // (one fewer than the cores) ran them one by one on a 2-core machine:
    // 1,057 s, against 576 s side by side.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
})
