/**
 * A V8 .cpuprofile (`node --cpu-prof`) drawn as a self-contained SVG flame
 * graph, plus a markdown summary: self time by component (TLS, mqtt-packet,
 * aedes, persistence, mqemitter, PlaceGuard's broker/…) and the heaviest
 * functions by self and by total time. No dependencies: the SVG carries its
 * own hover titles, and zoom is the browser's.
 *
 *   npx node scripts/flamegraph.ts PROFILE.cpuprofile [--svg OUT.svg] [--md OUT.md] [--title TEXT] [--top 25]
 *     [--from S] [--to S] [--timeline]
 *
 * `--from`/`--to` keep only the samples taken in that window (seconds since
 * the profile started), e.g. a bench's publish phase without its connects;
 * `--timeline` prints busy ms per second of the profile, to find the window.
 *
 * Shares are of the samples taken while the process was busy (V8's
 * `(idle)` samples are left out), so two profiles of different lengths
 * compare by share, not by milliseconds.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { basename } from 'node:path'
import { parseArgs } from 'node:util'

interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, hitCount?: number, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }

/** A merged frame: children by name, so recursion through the same call path adds up. */
interface Frame { name: string, component: string, self: number, total: number, children: Map<string, Frame> }

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    svg: { type: 'string' }, md: { type: 'string' }, title: { type: 'string' }, top: { type: 'string', default: '25' },
    from: { type: 'string', default: '0' }, to: { type: 'string', default: 'Infinity' }, timeline: { type: 'boolean', default: false },
  },
})
if (positionals.length !== 1) {
  process.stderr.write('usage: scripts/flamegraph.ts PROFILE.cpuprofile [--svg OUT.svg] [--md OUT.md] [--title TEXT] [--top 25]\n')
  process.exit(2)
}
const file = positionals[0]!
const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile

/** Which part of the broker a frame belongs to, from its script's URL. */
function componentOf (frame: CallFrame): string {
  const { url, functionName } = frame
  if (functionName === '(garbage collector)') return 'GC'
  if (functionName === '(program)') return 'V8 / native (program)'
  if (functionName === '(idle)') return 'idle'
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
  if (nm) return nm[1]!
  const ours = /\/(broker|shared|pki|app|cli|collector)\/([^/]+)\.ts$/.exec(url)
  if (ours) return `${ours[1]}/${ours[2]}.ts`
  if (url.startsWith('node:internal/tls') || url.startsWith('node:_tls') || url === 'node:tls') return 'node: tls'
  if (url.startsWith('node:internal/streams') || url.startsWith('node:stream')) return 'node: streams'
  if (url.startsWith('node:internal/timers') || url === 'node:timers') return 'node: timers'
  if (url.startsWith('node:internal/process/task_queues') || url.startsWith('node:internal/process/promises')) return 'node: microtasks/ticks'
  if (url.startsWith('node:internal/stream_base') || url.startsWith('node:net')) return 'node: net'
  if (url.startsWith('node:')) return `node: ${url.slice(5).replace(/^internal\//, '').split('/')[0]}`
  if (url === '') return functionName ? 'native' : 'V8 / native (program)'
  return 'other'
}

function frameName (frame: CallFrame): string {
  const where = frame.url ? `${frame.url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*?\/(broker|shared|pki|app|cli|collector)\//, '$1/')}:${frame.lineNumber + 1}` : ''
  return `${frame.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`
}

// Time per node from the samples and their deltas (more exact than hitCount × interval).
// A sample's time is the delta to the next one; its moment, the sum of the deltas up to it.
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const fromUs = Number(values.from) * 1e6
const toUs = Number(values.to) * 1e6
const selfUs = new Map<number, number>()
const busyPerSecond = new Map<number, number>()
let at = 0
for (let i = 0; i < profile.samples.length; i++) {
  at += profile.timeDeltas[i] ?? 0
  const delta = Math.max(0, profile.timeDeltas[i + 1] ?? 0)
  if (byId.get(profile.samples[i]!)!.callFrame.functionName !== '(idle)') {
    busyPerSecond.set(Math.floor(at / 1e6), (busyPerSecond.get(Math.floor(at / 1e6)) ?? 0) + delta)
  }
  if (at < fromUs || at >= toUs) continue
  selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + delta)
}
if (values.timeline) {
  process.stdout.write(`busy ms per second of the profile:\n${[...busyPerSecond].map(([second, us]) => `${second}s ${Math.round(us / 1000)}`).join('\n')}\n`)
  process.exit(0)
}
const parentOf = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)
const rootNode = profile.nodes.find((node) => !parentOf.has(node.id))!

function build (node: ProfileNode, into: Frame): void {
  for (const childId of node.children ?? []) {
    const child = byId.get(childId)!
    if (child.callFrame.functionName === '(idle)') continue
    const name = frameName(child.callFrame)
    let frame = into.children.get(name)
    if (!frame) {
      frame = { name, component: componentOf(child.callFrame), self: 0, total: 0, children: new Map() }
      into.children.set(name, frame)
    }
    frame.self += selfUs.get(child.id) ?? 0
    build(child, frame)
  }
}
const root: Frame = { name: 'all (busy)', component: 'root', self: 0, total: 0, children: new Map() }
build(rootNode, root)
function sumTotals (frame: Frame): number {
  frame.total = frame.self
  for (const child of frame.children.values()) frame.total += sumTotals(child)
  return frame.total
}
const busyUs = sumTotals(root)
const idleUs = profile.nodes.filter((node) => node.callFrame.functionName === '(idle)').reduce((sum, node) => sum + (selfUs.get(node.id) ?? 0), 0)

// --- the summary -------------------------------------------------------------------

const selfByComponent = new Map<string, number>()
const selfByFunction = new Map<string, { component: string, us: number }>()
const totalByFunction = new Map<string, { component: string, us: number }>()
function walk (frame: Frame, onStack: Set<string>): void {
  for (const child of frame.children.values()) {
    selfByComponent.set(child.component, (selfByComponent.get(child.component) ?? 0) + child.self)
    const own = selfByFunction.get(child.name) ?? { component: child.component, us: 0 }
    own.us += child.self
    selfByFunction.set(child.name, own)
    // Total counts a function once per stack, however deep it recurses.
    if (!onStack.has(child.name)) {
      const total = totalByFunction.get(child.name) ?? { component: child.component, us: 0 }
      total.us += child.total
      totalByFunction.set(child.name, total)
    }
    const next = new Set(onStack).add(child.name)
    walk(child, next)
  }
}
walk(root, new Set())

const pct = (us: number): string => `${(100 * us / busyUs).toFixed(1)} %`
const ms = (us: number): string => (us / 1000).toFixed(0)
const top = Number(values.top)
const escapeMd = (text: string): string => text.replace(/\|/g, '\\|')
const window = fromUs > 0 || toUs < Infinity ? ` (samples from ${values.from} s to ${values.to} s)` : ''
const lines: string[] = [
  `Profile \`${basename(file)}\`${window}: ${ms(busyUs)} ms busy, ${ms(idleUs)} ms idle.`,
  '',
  '| component | self ms | share of busy |',
  '|---|---|---|',
  ...[...selfByComponent].sort((a, b) => b[1] - a[1]).filter(([, us]) => us > 0).map(([component, us]) => `| ${escapeMd(component)} | ${ms(us)} | ${pct(us)} |`),
  '',
  `Top ${top} functions by self time:`,
  '',
  '| function | component | self ms | share |',
  '|---|---|---|---|',
  ...[...selfByFunction].sort((a, b) => b[1].us - a[1].us).slice(0, top).map(([name, { component, us }]) => `| \`${escapeMd(name)}\` | ${escapeMd(component)} | ${ms(us)} | ${pct(us)} |`),
  '',
  `Top ${top} functions by total time (self and callees; async continuations are not counted as callees):`,
  '',
  '| function | component | total ms | share |',
  '|---|---|---|---|',
  ...[...totalByFunction].sort((a, b) => b[1].us - a[1].us).slice(0, top).map(([name, { component, us }]) => `| \`${escapeMd(name)}\` | ${escapeMd(component)} | ${ms(us)} | ${pct(us)} |`),
  '',
]
if (values.md) writeFileSync(values.md, lines.join('\n'))
else process.stdout.write(lines.join('\n'))

// --- the flame graph ------------------------------------------------------------------

if (values.svg) {
  const WIDTH = 1600
  const ROW = 17
  const MIN_US = busyUs / WIDTH / 2 // frames under half a pixel are left out
  let depthMax = 0
  const rects: string[] = []
  const escapeXml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
  /** A stable colour per component, so the eye groups TLS, aedes, ours… */
  const hue = (component: string): number => {
    if (component.startsWith('broker/')) return 200
    if (component === 'GC') return 0
    let h = 0
    for (const ch of component) h = (h * 31 + ch.charCodeAt(0)) % 360
    return 20 + h % 60 // reds to yellows for everything not ours
  }
  function draw (frame: Frame, x: number, depth: number): void {
    depthMax = Math.max(depthMax, depth)
    const width = frame.total / busyUs * WIDTH
    const label = `${frame.name} — ${frame.component}: ${ms(frame.total)} ms total, ${ms(frame.self)} ms self (${pct(frame.total)})`
    const text = width > 40 ? `<text x="${(x + 3).toFixed(1)}" y="${(depth * ROW + 12).toFixed(1)}">${escapeXml(frame.name.slice(0, Math.floor(width / 6.5)))}</text>` : ''
    rects.push(`<g><title>${escapeXml(label)}</title><rect x="${x.toFixed(1)}" y="${depth * ROW}" width="${Math.max(0.5, width - 0.3).toFixed(1)}" height="${ROW - 1}" fill="hsl(${hue(frame.component)},70%,${frame.component === 'root' ? 85 : 62}%)"/>${text}</g>`)
    let childX = x
    for (const child of [...frame.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      if (child.total >= MIN_US) draw(child, childX, depth + 1)
      childX += child.total / busyUs * WIDTH
    }
  }
  draw(root, 0, 1)
  const height = (depthMax + 2) * ROW
  const title = values.title ?? basename(file)
  const svg = `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="monospace" font-size="11">
<style>text { pointer-events: none; fill: #000 } rect:hover { stroke: #000; stroke-width: 0.5 }</style>
<text x="4" y="12" font-size="12">${escapeXml(title)} — ${ms(busyUs)} ms busy; width = share of busy CPU; blue = PlaceGuard's broker/, red = GC; hover for figures</text>
${rects.join('\n')}
</svg>
`
  writeFileSync(values.svg, svg)
}
