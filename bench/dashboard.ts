/**
 * npm run bench:dashboard — how fast the web dashboard paints for a big fleet.
 *
 * Starts `placeguard up` and, in a process of its own, `placeguard sim`
 * (default 10,000 mTLS devices: in one process, 10k client and 10k server
 * sockets would not fit a 20,000-descriptor limit), waits until the fleet
 * reports, then loads the dashboard in Debian's
 * chromium (playwright-core) several times as a signed-in operator, cold
 * (a new browser context each time). Reported per load: first contentful
 * paint, fleet summary shown, first page of the device table rendered;
 * then the time to re-sort the table by "last seen" and to search it, and
 * the API's own latency for /api/fleet and one page of /api/devices.
 *
 *   npm run bench:dashboard -- [--devices 10000] [--interval 10s] [--loads 5]
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { chromium } from 'playwright-core'
import { parseDuration } from '../shared/duration.ts'
import { freePort } from './lib/brokers.ts'
import { printTable, round, saveResults } from './lib/report.ts'

const { values } = parseArgs({ options: {
  devices: { type: 'string', default: '10000' },
  interval: { type: 'string', default: '10s' },
  loads: { type: 'string', default: '5' },
  'connect-timeout': { type: 'string', default: '300s' },
} })
const devices = Number(values.devices)
const loads = Number(values.loads)
const connectTimeoutMs = parseDuration('--connect-timeout', values['connect-timeout'])
const TOKEN = 'bench-dashboard-operator-token-0001'

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-bench-dashboard-'))
const httpPort = await freePort()
const mqttPort = await freePort()
const base = `http://127.0.0.1:${httpPort}/`
let log = ''
function placeguard (...args: string[]): ChildProcess {
  const child = spawn(process.execPath, ['bin/placeguard.js', ...args, '--data-dir', dataDir], {
    env: { ...process.env, PLACEGUARD_API_TOKENS: `${TOKEN}:operator`, PLACEGUARD_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout!.on('data', (chunk: Buffer) => { log = (log + chunk.toString()).slice(-10_000) })
  child.stderr!.on('data', (chunk: Buffer) => { log = (log + chunk.toString()).slice(-10_000) })
  return child
}
async function stop (child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return
  child.kill('SIGTERM')
  await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(15_000)])
  if (child.exitCode === null) child.kill('SIGKILL')
}
const up = placeguard('up', '--http-port', String(httpPort), '--http-host', '127.0.0.1', '--mqtt-port', String(mqttPort), '--mqtt-host', '127.0.0.1')
let sim: ChildProcess | undefined

async function get (path: string): Promise<{ ms: number, body: unknown }> {
  const started = performance.now()
  const response = await fetch(new URL(path, base), { headers: { authorization: `Bearer ${TOKEN}` } })
  const body = await response.json()
  return { ms: performance.now() - started, body }
}

try {
  const startedAt = Date.now()
  let fleet: { devices: number, connected: number } | undefined
  let lastReport = 0
  for (;;) {
    if (up.exitCode !== null) throw new Error(`placeguard up exited (${up.exitCode}):\n${log}`)
    if (sim && sim.exitCode !== null) throw new Error(`placeguard sim exited (${sim.exitCode}):\n${log}`)
    // The simulator starts once the broker listens (the API answers after it).
    if (!sim && await fetch(new URL('/healthz', base)).then((r) => r.ok, () => false)) {
      sim = placeguard('sim', '--devices', String(devices), '--broker', `mqtts://127.0.0.1:${mqttPort}`, '--interval', values.interval, '--duration', '0')
    }
    fleet = await get('/api/fleet').then((r) => r.body as { devices: number, connected: number }, () => undefined)
    if (fleet && fleet.devices >= devices && fleet.connected >= devices * 0.98) break
    if (Date.now() - startedAt > connectTimeoutMs) throw new Error(`the demo fleet did not connect in time: ${JSON.stringify(fleet)}\n${log}`)
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now()
      process.stderr.write(`waiting for the fleet: ${fleet ? `${fleet.connected}/${fleet.devices} connected` : 'API not up yet'} (${Math.round((Date.now() - startedAt) / 1000)} s)\n`)
    }
    await sleep(1000)
  }
  process.stderr.write(`fleet up: ${fleet.connected}/${fleet.devices} connected after ${Math.round((Date.now() - startedAt) / 1000)} s\n`)

  const apiFleet: number[] = []
  const apiPage: number[] = []
  const apiSorted: number[] = []
  for (let i = 0; i < 10; i++) {
    apiFleet.push((await get('/api/fleet')).ms)
    apiPage.push((await get('/api/devices?limit=100')).ms)
    apiSorted.push((await get('/api/devices?limit=100&sort=lastSeenAt&order=desc')).ms)
  }

  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
  const rows: Array<Record<string, string | number>> = []
  const results: Array<Record<string, number>> = []
  try {
    for (let i = 0; i < loads; i++) {
      const context = await browser.newContext({ viewport: { width: 1440, height: 900 } })
      // Signed in already (the token sits in sessionStorage): the load measured is the dashboard's, not the login form's.
      await context.addInitScript((token) => {
        sessionStorage.setItem('placeguard.token', token)
        sessionStorage.setItem('placeguard.role', 'operator')
      }, TOKEN)
      const page = await context.newPage()
      await page.goto(base)
      // The app marks when the fleet summary and the first page of rows reach the screen.
      await page.waitForFunction(() => performance.getEntriesByName('placeguard:fleet-rendered').length > 0 &&
        performance.getEntriesByName('placeguard:devices-rendered').length > 0, undefined, { polling: 'raf' })
      const mark = (name: string): Promise<number> => page.evaluate((n) => performance.getEntriesByName(n).at(-1)?.startTime ?? NaN, name)
      const fleetShownMs = await mark('placeguard:fleet-rendered')
      const timing = {
        fcp: await mark('first-contentful-paint'),
        table: await mark('placeguard:devices-rendered'),
        rows: await page.locator('#device-table tbody tr').count(),
        status: await page.locator('.paging-status').first().textContent() ?? '',
        fleet: await page.locator('.cards .card-value').first().textContent(),
      }
      // Re-sort by last seen and search, from the click or keystroke to the rows on screen.
      const interaction = async (act: () => Promise<void>): Promise<number> => {
        const started = await page.evaluate(() => performance.now())
        await act()
        await page.waitForFunction((t0) => (performance.getEntriesByName('placeguard:devices-rendered').at(-1)?.startTime ?? 0) > t0, started, { polling: 'raf' })
        return await mark('placeguard:devices-rendered') - started
      }
      const sortMs = await interaction(() => page.locator('button[data-sort="lastSeenAt"]').click())
      const searchMs = await interaction(async () => {
        await page.locator('#device-search').fill('energy-0004')
        await page.locator('#device-search').press('Enter')
      })
      results.push({ fcpMs: timing.fcp, fleetShownMs, tableMs: timing.table, sortMs, searchMs })
      rows.push({ load: i + 1, shown: timing.fleet ?? '', fcpMs: round(timing.fcp, 0), fleetShownMs: round(fleetShownMs, 0), tableMs: round(timing.table, 0), rows: timing.rows, paging: timing.status, sortMs: round(sortMs, 0), searchMs: round(searchMs, 0) })
      await context.close()
    }
  } finally {
    await browser.close()
  }
  printTable(rows)
  const summary = {
    devices: fleet.devices,
    connected: fleet.connected,
    fcpMsMedian: round(median(results.map((r) => r.fcpMs!)), 0),
    fleetShownMsMedian: round(median(results.map((r) => r.fleetShownMs!)), 0),
    tableMsMedian: round(median(results.map((r) => r.tableMs!)), 0),
    sortMsMedian: round(median(results.map((r) => r.sortMs!)), 0),
    searchMsMedian: round(median(results.map((r) => r.searchMs!)), 0),
    apiFleetMsMedian: round(median(apiFleet), 1),
    apiDevicesPageMsMedian: round(median(apiPage), 1),
    apiDevicesSortedPageMsMedian: round(median(apiSorted), 1),
  }
  printTable([summary])
  process.stderr.write(`results: ${saveResults('dashboard', { summary, loads: rows })}\n`)
} finally {
  await stop(sim)
  await stop(up)
  rmSync(dataDir, { recursive: true, force: true })
}
