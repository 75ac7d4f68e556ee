#!/usr/bin/env node
// The `placeguard` command. PlaceGuard's sources are TypeScript that Node 24
// runs directly (type stripping), so this shim checks the runtime and sets
// the heap up for the command before anything is loaded.
import module from 'node:module'
import { join } from 'node:path'

const [major] = process.versions.node.split('.').map(Number)
if (major < 24) {
  console.error(`placeguard needs Node.js 24 or later (this is ${process.version}); run it through npm (npx placeguard …), which uses the project's pinned Node 24.`)
  process.exit(1)
}

// Node's compile cache, as Node's own CLIs use it: the TypeScript it strips
// and the code V8 compiles are kept between runs, so a command starts in
// about 0.46 s instead of 0.68 s here (`pki issue`), and every test that
// runs the CLI pays it once. Kept beside PlaceGuard's code, writable by
// whoever can change that code anyway, not in a shared temporary directory
// another local user could fill. An entry is used only for the source it was
// made from. NODE_COMPILE_CACHE picks another directory and
// NODE_DISABLE_COMPILE_CACHE=1 turns it off (Node's own settings); a
// directory that cannot be written leaves the cache off, and nothing else.
if (!process.env.NODE_COMPILE_CACHE && !process.env.NODE_DISABLE_COMPILE_CACHE && typeof module.enableCompileCache === 'function') {
  module.enableCompileCache(join(import.meta.dirname, '..', 'node_modules', '.cache', 'placeguard-compile'))
}

// The broker holds thousands of mostly idle connections and makes only
// short-lived garbage per message. V8 sizes its young generation for
// throughput (up to 2 × 32 MiB here), and the heap it grew under a fleet's
// load was a third of the broker's memory per connected device; a 2 MiB
// semi-space takes that back for about 4 % more CPU per message at steady
// load (docs/perf/broker-memory.md). The broker re-executes itself with it —
// same process, same pid, before any module is loaded — unless the operator
// chose a size (NODE_OPTIONS or a Node flag). V8 reads the size only at start.
const BROKER_SEMI_SPACE_MIB = 2
if (commandName(process.argv.slice(2)) === 'broker' && typeof process.execve === 'function' &&
    ![...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((flag) => /^--max-semi-space-size\b/.test(flag))) {
  try {
    process.execve(process.execPath, [process.execPath, `--max-semi-space-size=${BROKER_SEMI_SPACE_MIB}`, ...process.execArgv, ...process.argv.slice(1)], process.env)
  } catch (error) {
    // Not fatal: the broker runs as before, with V8's default young generation.
    process.emitWarning(`could not re-execute with a ${BROKER_SEMI_SPACE_MIB} MiB semi-space (${error.message}); running with V8's default`, { code: 'PG_BROKER_HEAP' })
  }
}

// Work aedes does at every connection that PlaceGuard's broker does not need,
// changed as aedes' files load; registered before any command loads aedes.
const { installAedesPatches } = await import('../broker/aedes-patches.ts')
installAedesPatches()

await import('../cli/main.ts')

/** The subcommand: the first word that is not an option or the value of the global `--data-dir`. */
function commandName (args) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--data-dir') i++
    else if (!args[i].startsWith('-')) return args[i]
  }
  return undefined
}
