#!/usr/bin/env node
// The `placeguard` command. PlaceGuard's sources are TypeScript that Node 24
// runs directly (type stripping), so this shim only checks the runtime.
const [major] = process.versions.node.split('.').map(Number)
if (major < 24) {
  console.error(`placeguard needs Node.js 24 or later (this is ${process.version}); run it through npm (npx placeguard …), which uses the project's pinned Node 24.`)
  process.exit(1)
}
await import('../cli/main.ts')
