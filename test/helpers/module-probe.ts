/**
 * Preloaded into a child process (`node --import …`): records the URL of
 * every module it loads, ESM or CommonJS, and on SIGUSR2 prints them on
 * one stderr line, so a test can see what a running `placeguard` command
 * carries.
 */
import { registerHooks } from 'node:module'

const loaded = new Set<string>()
registerHooks({
  load (url, context, nextLoad) {
    loaded.add(url)
    return nextLoad(url, context)
  },
})
process.on('SIGUSR2', () => {
  process.stderr.write(`module-probe ${JSON.stringify([...loaded])}\n`)
})
