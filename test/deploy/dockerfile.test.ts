/**
 * The Dockerfile, read as text (no Docker engine here): stages, the
 * unprivileged user, the entrypoint, and an image that holds every source
 * folder and every package the CLI loads at runtime (dev dependencies are
 * left out of the image, so a runtime import of one would break it).
 */
import { readFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = resolve(import.meta.dirname, '..', '..')
const lines = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'))
const stages = lines.reduce<string[][]>((all, line) => {
  if (/^FROM\s/i.test(line)) all.push([line])
  else all.at(-1)?.push(line)
  return all
}, [])
const runtime = stages.at(-1) ?? []
const instruction = (stage: string[], name: string) => stage.filter((line) => line.toUpperCase().startsWith(`${name} `))

/** Files the CLI loads, from bin/placeguard.js through every relative import; and the packages they import. */
function runtimeGraph (): { files: Set<string>, packages: Set<string> } {
  const files = new Set<string>()
  const packages = new Set<string>()
  const pending = [join(ROOT, 'bin', 'placeguard.js')]
  while (pending.length > 0) {
    const file = pending.pop()!
    if (files.has(file)) continue
    files.add(file)
    const source = readFileSync(file, 'utf8')
    // Static and dynamic imports and re-exports; `import type` is erased by Node and loads nothing.
    const specifiers = [
      ...[...source.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^'"()=;:]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)].map((m) => m[1]!),
      ...[...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!),
      ...[...source.matchAll(/new URL\(\s*['"](\.[^'"]+)['"],\s*import\.meta\.url\s*\)/g)].map((m) => m[1]!),
    ]
    for (const specifier of specifiers) {
      if (specifier.startsWith('.')) {
        const target = resolve(dirname(file), specifier)
        if (/\.(ts|js)$/.test(target)) pending.push(target)
      } else if (!specifier.startsWith('node:') && !builtinModules.includes(specifier)) {
        packages.add(specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!)
      }
    }
  }
  return { files, packages }
}

describe('Dockerfile', () => {
  it('builds in stages, and runs on the official Node 24 image', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    for (const stage of stages) expect(stage[0], 'every stage is named').toMatch(/\sAS\s+\w+$/i)
    const nodeImage = /^ARG NODE_IMAGE=(\S+)$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))?.[1]
    expect(nodeImage).toMatch(/^node:24-bookworm-slim$/)
    for (const stage of stages) expect(stage[0]).toMatch(/^FROM \$\{NODE_IMAGE\} AS/)
  })

  it('installs production dependencies from the lockfile, without install scripts', () => {
    const install = lines.find((line) => /npm ci\b/.test(line))
    expect(install).toMatch(/--omit=dev/)
    expect(install).toMatch(/--ignore-scripts/)
    expect(instruction(runtime, 'COPY')).toContain('COPY --from=deps /app/node_modules ./node_modules')
  })

  it('runs as the unprivileged node user, with the placeguard entrypoint and /data', () => {
    const users = instruction(runtime, 'USER')
    expect(users.length).toBeGreaterThan(0)
    expect(users.at(-1)).toBe('USER node')
    expect(instruction(runtime, 'ENTRYPOINT')).toEqual(['ENTRYPOINT ["node", "bin/placeguard.js"]'])
    expect(runtime).toContain('VOLUME /data')
    expect(runtime.join('\n')).toMatch(/PLACEGUARD_DATA_DIR=\/data/)
    expect(instruction(runtime, 'EXPOSE')).toEqual(['EXPOSE 8883 8080'])
  })

  it('copies every source folder the CLI loads', () => {
    const copied = new Set(instruction(runtime, 'COPY').map((line) => /^COPY (\S+) \.\/\1$/.exec(line)?.[1]).filter(Boolean))
    const folders = new Set([...runtimeGraph().files].map((file) => relative(ROOT, file).split('/')[0]!))
    expect(folders.size).toBeGreaterThan(5)
    for (const folder of folders) expect(copied, `COPY ${folder} ./${folder}`).toContain(folder)
    for (const file of ['package.json', 'package-lock.json']) expect(runtime.join('\n')).toContain(file)
  })

  it('has every package the CLI imports among the production dependencies', () => {
    const { dependencies } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
    const { packages } = runtimeGraph()
    expect(packages.size).toBeGreaterThan(5)
    for (const name of packages) expect(Object.keys(dependencies), `${name} is imported at runtime`).toContain(name)
  })
})
