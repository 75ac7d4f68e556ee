/**
 * Preloaded into a broker child process (`node --expose-gc --import …`):
 * on SIGUSR2 it collects garbage and prints one line with the process's
 * memory, so a test can compare the heap before and after an attack
 * without sharing the broker's event loop.
 */
process.on('SIGUSR2', () => {
  (globalThis as { gc?: () => void }).gc?.()
  const { rss, heapUsed } = process.memoryUsage()
  process.stderr.write(`heap-probe ${JSON.stringify({ rss, heapUsed })}\n`)
})
