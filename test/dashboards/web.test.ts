/**
 * The web dashboard in a real browser (Debian chromium driven by
 * playwright-core) against the real thing: `placeguard up` as a child
 * process with a simulated fleet, whose scenario opens an ACL-violation
 * alert while the page is watching. Screenshots go to test-results/screenshots/
 * (UPDATE_SCREENSHOTS=1: docs/screenshots/, which the README shows).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../helpers/free-port.ts'
import { FleetPki } from '../../pki/index.ts'
import { mosquittoPub } from '../helpers/mosquitto-clients.ts'

const OPERATOR = 'web-test-operator-token-0001'
const VIEWER = 'web-test-viewer-token-00001'
const FLEET_SIZE = 30
/** The simulator's incident: a wildcard subscription, `INCIDENT_AT_S` after the fleet starts connecting. */
const ACL_DEVICE = 'energy-00001'
const INCIDENT_AT_S = 25
/** A device of ours that will send markup instead of telemetry (not part of the simulated fleet). */
const HOSTILE = { deviceId: 'housing-09999', kind: 'housing', site: 'riverside' }
// Saved on every run to test-results/ (ignored by git); UPDATE_SCREENSHOTS=1 refreshes the README's in docs/.
const SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1'
  ? join(import.meta.dirname, '..', '..', 'docs', 'screenshots')
  : join(import.meta.dirname, '..', '..', 'test-results', 'screenshots')

interface Alert { id: string, policy: string, deviceId: string, status: string, detectedAt: string, summary: string }

let dataDir: string
let up: ChildProcess
let upLog = ''
let base: string
let mqttPort: number
let browser: Browser
let operator: { context: BrowserContext, page: Page }
/** CSP violations and uncaught errors seen by any page: there must be none. */
const pageProblems: string[] = []


async function api<T = unknown> (path: string, token = OPERATOR): Promise<{ status: number, body: T }> {
  const response = await fetch(new URL(path, base), { headers: { authorization: `Bearer ${token}` } })
  return { status: response.status, body: await response.json() as T }
}

async function until<T> (what: string, check: () => Promise<T | undefined>, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; placeguard up said:\n${upLog.slice(-3000)}`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

async function alertsOf (deviceId: string, policy: string): Promise<Alert[]> {
  const { body } = await api<{ items: Alert[] }>(`/api/alerts?deviceId=${deviceId}&policy=${policy}`)
  return body.items
}

async function openPage (context: BrowserContext): Promise<Page> {
  const page = await context.newPage()
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) pageProblems.push(message.text())
  })
  page.on('pageerror', (error) => pageProblems.push(error.message))
  return page
}

/** A property of the focused element (evaluated in the page, whose DOM types this Node project does not load). */
function focused (page: Page, property: string): Promise<string | undefined> {
  return page.evaluate(`document.activeElement?.${property}`)
}

async function signIn (page: Page, token: string): Promise<void> {
  await page.goto(base)
  await page.getByLabel('API token').fill(token)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#connection[data-state="live"]').waitFor({ timeout: 10_000 })
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'placeguard-web-'))
  const pki = new FleetPki(dataDir)
  await pki.init()
  await pki.issueMany([HOSTILE])
  pki.close()
  const scenario = join(dataDir, 'web-test.yaml')
  writeFileSync(scenario, [
    'name: web dashboard test',
    'incidents:',
    `  - { policy: acl-violation, mode: wildcard-subscribe, select: { ids: [${ACL_DEVICE}] }, at: ${INCIDENT_AT_S}s }`,
    // Background for the screenshots: alerts that open before the page loads.
    '  - { policy: firmware-vulnerable, fw: 5.2.2, select: { ids: [energy-00003] } }',
    '  - { policy: firmware-outdated, fw: 2.9.0, select: { ids: [flood-00002] } }',
    '  - { policy: cert-expiry, expiresInDays: 5, select: { ids: [housing-00002] } }',
    '  - { policy: value-implausible, mode: jump, select: { ids: [flood-00004] }, at: 8s }',
  ].join('\n'))
  const httpPort = await freePort()
  mqttPort = await freePort()
  base = `http://127.0.0.1:${httpPort}/`
  up = spawn(process.execPath, [
    'bin/placeguard.js', 'up', '--data-dir', dataDir,
    '--http-port', String(httpPort), '--http-host', '127.0.0.1', '--mqtt-port', String(mqttPort), '--mqtt-host', '127.0.0.1',
    '--demo-devices', String(FLEET_SIZE), '--demo-scenario', scenario, '--demo-interval', '1s',
  ], { env: { ...process.env, PLACEGUARD_API_TOKENS: `${OPERATOR}:operator,${VIEWER}:viewer`, PLACEGUARD_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] })
  up.stdout!.on('data', (chunk: Buffer) => { upLog = (upLog + chunk.toString()).slice(-20_000) })
  up.stderr!.on('data', (chunk: Buffer) => { upLog = (upLog + chunk.toString()).slice(-20_000) })
  await until('GET /healthz', async () => (await fetch(new URL('/healthz', base))).ok || undefined, 30_000)
  // The whole simulated fleet has reported (the hostile device stays never-seen until it speaks).
  await until('the demo fleet to report', async () => {
    const { body } = await api<{ devices: number, neverSeen: number }>('/api/fleet')
    return body.devices === FLEET_SIZE + 1 && body.neverSeen === 1 ? true : undefined
  }, 40_000)
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } })
  operator = { context, page: await openPage(context) }
  mkdirSync(SCREENSHOTS, { recursive: true })
}, 90_000)

afterAll(async () => {
  await browser?.close()
  if (up && up.exitCode === null) {
    const exited = new Promise((resolve) => up.once('exit', resolve))
    up.kill('SIGTERM')
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))])
    if (up.exitCode === null) up.kill('SIGKILL')
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

describe('web dashboard (chromium)', () => {
  it('refuses a wrong token, signs an operator in and shows the fleet size, without putting the token in the URL', async () => {
    const { page } = operator
    await page.goto(base)
    const tokenInput = page.getByLabel('API token')
    expect(await tokenInput.getAttribute('type')).toBe('password')
    await tokenInput.fill('not-a-token-of-this-fleet')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await expect.poll(() => page.locator('#login-error').textContent()).toBe('That token was not accepted.')

    await signIn(page, OPERATOR)
    const { body: fleet } = await api<{ devices: number }>('/api/fleet')
    expect(fleet.devices).toBe(FLEET_SIZE + 1)
    await expect.poll(() => page.locator('#fleet-size').textContent()).toBe(`${fleet.devices} devices`)
    await expect.poll(() => page.locator('.cards .card-value').first().textContent()).toBe(String(fleet.devices))
    await expect.poll(() => page.locator('#device-table tbody tr').count()).toBe(fleet.devices)
    expect(await page.locator('.paging-status').first().textContent()).toBe(`1–${fleet.devices} of ${fleet.devices}`)
    expect(page.url()).not.toContain(OPERATOR)
    expect(await page.evaluate(() => sessionStorage.getItem('placeguard.role'))).toBe('operator')
    const fcp = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime)
    console.error(`dashboard first contentful paint (${fleet.devices} devices): ${fcp?.toFixed(0)} ms`)
  })

  it('shows an alert the simulator causes in the live feed within 5 s of its opening, and the operator acknowledges it', async () => {
    const { page } = operator
    const pageReadyAt = Date.now()
    // The incident must not have fired yet, or this would test a reload, not the live feed.
    expect(await alertsOf(ACL_DEVICE, 'acl-violation'), 'the incident fired before the page was watching: raise INCIDENT_AT_S').toEqual([])
    const feed = page.locator('#alert-feed')
    expect(await feed.locator('ol').getAttribute('aria-live')).toBe('polite')
    const item = feed.locator(`li[data-policy="acl-violation"][data-device="${ACL_DEVICE}"]`)
    await item.waitFor({ timeout: (INCIDENT_AT_S + 20) * 1000 })
    const seenAt = Date.now()
    const [alert] = await alertsOf(ACL_DEVICE, 'acl-violation')
    expect(alert).toBeDefined()
    const openedAt = Date.parse(alert!.detectedAt)
    expect(openedAt).toBeGreaterThan(pageReadyAt)
    expect(seenAt - openedAt).toBeLessThan(5_000)
    console.error(`alert ${alert!.policy} on ${alert!.deviceId}: in the live feed ${seenAt - openedAt} ms after it opened`)
    await expect.poll(() => item.locator('.severity').textContent()).toBe('High')

    await item.getByRole('button', { name: 'Acknowledge' }).click()
    await expect.poll(async () => (await api<Alert>(`/api/alerts/${alert!.id}`)).body.status, { timeout: 5_000 }).toBe('acknowledged')
    await expect.poll(() => item.getAttribute('data-status')).toBe('acknowledged')
    expect(await item.getByRole('button', { name: 'Acknowledge' }).count()).toBe(0)
    expect(await item.getByRole('button', { name: 'Resolve' }).count()).toBe(1)
    // Focus stays on the alert (on its remaining action), not lost to the page.
    expect(await focused(page, "closest('li')?.dataset.policy")).toBe('acl-violation')
    // The headline count follows alert changes without waiting for the stream's 5 s fleet tick.
    await expect.poll(async () => {
      const { body } = await api<{ openAlerts: Record<string, number> }>('/api/fleet')
      const open = Object.values(body.openAlerts).reduce((sum, n) => sum + n, 0)
      return await page.locator('.card-alerts .card-value').textContent() === String(open)
    }, { timeout: 3_000 }).toBe(true)
    await page.screenshot({ path: join(SCREENSHOTS, 'overview.png') })
  }, 90_000)

  it('gives a viewer the feed but no Acknowledge or Resolve buttons', async () => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } })
    try {
      const page = await openPage(context)
      await signIn(page, VIEWER)
      expect(await page.locator('#role').textContent()).toBe('Viewer (read-only)')
      await page.locator(`#alert-feed li[data-policy="acl-violation"][data-device="${ACL_DEVICE}"]`).waitFor({ timeout: 5_000 })
      expect(await page.locator('#alert-feed li.alert').count()).toBeGreaterThan(0)
      expect(await page.getByRole('button', { name: 'Acknowledge' }).count()).toBe(0)
      expect(await page.getByRole('button', { name: 'Resolve' }).count()).toBe(0)
      // The server agrees: a viewer may not resolve.
      const [alert] = await alertsOf(ACL_DEVICE, 'acl-violation')
      const refused = await fetch(new URL(`/api/alerts/${alert!.id}/resolve`, base), { method: 'POST', headers: { authorization: `Bearer ${VIEWER}`, 'content-type': 'application/json' }, body: '{}' })
      expect(refused.status).toBe(403)
    } finally {
      await context.close()
    }
  })

  it('shows markup a device sends as text: nothing it sends becomes an element', async () => {
    const { page } = operator
    const markup = '<img src=x>'
    // The collector quotes the start of a payload that is not JSON in the alert (V8's parse error): device-supplied text.
    const published = await mosquittoPub(mqttPort, {
      cafile: join(dataDir, 'pki', 'ca.crt'), cert: join(dataDir, 'pki', 'devices', `${HOSTILE.deviceId}.crt`), key: join(dataDir, 'pki', 'devices', `${HOSTILE.deviceId}.key`),
    }, HOSTILE.deviceId, `places/${HOSTILE.site}/${HOSTILE.kind}/${HOSTILE.deviceId}/telemetry`, markup)
    expect(published.code, published.stderr).toBe(0)
    const item = page.locator(`#alert-feed li[data-policy="payload-invalid"][data-device="${HOSTILE.deviceId}"]`)
    await item.waitFor({ timeout: 10_000 })
    const [alert] = await alertsOf(HOSTILE.deviceId, 'payload-invalid')
    expect(alert!.summary).toContain(markup)
    expect(await item.locator('.alert-title').textContent()).toBe(alert!.summary)
    await item.getByText('Evidence and history').click()
    expect(await item.locator('.evidence').textContent()).toContain(markup)
    expect(await page.locator('main img, main script, main iframe, main svg').count()).toBe(0)
  })

  it('is keyboard operable: Tab reaches the search box, Enter on a column header sorts', async () => {
    const { page } = operator
    await page.goto(`${base}#/`)
    await page.reload() // focus starts at the top of a freshly loaded page
    await page.locator('#device-table tbody tr').first().waitFor()
    let tabs = 0
    while (await focused(page, 'id') !== 'device-search') {
      expect(++tabs, 'Tab presses to reach the device search').toBeLessThan(60)
      await page.keyboard.press('Tab')
    }
    // The focused control is visibly marked.
    expect(await page.evaluate('getComputedStyle(document.activeElement).outlineStyle')).not.toBe('none')
    await page.keyboard.type('energy')
    const { body: energy } = await api<{ total: number }>('/api/devices?q=energy')
    await expect.poll(() => page.locator('#device-table tbody th[scope="row"]').count()).toBe(energy.total)
    expect((await page.locator('#device-table tbody th[scope="row"]').allTextContents()).every((id) => id.startsWith('energy-'))).toBe(true)

    while (await focused(page, 'dataset.sort') !== 'lastSeenAt') {
      expect(++tabs, 'Tab presses to reach the Last seen header').toBeLessThan(80)
      await page.keyboard.press('Tab')
    }
    const header = page.locator('th:has(button[data-sort="lastSeenAt"])')
    expect(await header.getAttribute('aria-sort')).toBeNull()
    const sorted = page.waitForRequest((request) => request.url().includes('sort=lastSeenAt') && request.url().includes('order=desc'))
    await page.keyboard.press('Enter')
    await sorted
    await expect.poll(() => header.getAttribute('aria-sort')).toBe('descending')
    expect(await page.locator('th:has(button[data-sort="id"])').getAttribute('aria-sort')).toBeNull()
    const resorted = page.waitForRequest((request) => request.url().includes('sort=lastSeenAt') && request.url().includes('order=asc'))
    await page.keyboard.press('Enter')
    await resorted
    await expect.poll(() => header.getAttribute('aria-sort')).toBe('ascending')
    expect(await focused(page, 'dataset.sort')).toBe('lastSeenAt')
    await page.locator('#device-search').fill('')
  })

  it('shows a device page with its certificate, firmware, alerts and charts of its telemetry', async () => {
    const { page } = operator
    await page.goto(`${base}#/devices/${ACL_DEVICE}`)
    await expect.poll(() => page.locator('h1').textContent()).toBe(`Device ${ACL_DEVICE}`)
    await expect.poll(() => page.locator('.chart .uplot').count(), { timeout: 10_000 }).toBe(3) // power_kw, voltage_v, energy_kwh
    expect(await page.locator('figcaption').allTextContents()).toEqual(['Power (kW)', 'Voltage (V)', 'Energy meter (kWh)'])
    expect(await page.locator('.chart-summary').first().textContent()).toMatch(/^Latest [\d.,-]+ kW; over the last \d+ messages/)
    expect(await page.locator('section[aria-labelledby="cert-title"] dl').textContent()).toMatch(/Expiresin 36\d days/)
    expect(await page.locator(`li[data-policy="acl-violation"][data-device="${ACL_DEVICE}"]`).count()).toBe(1)
    await page.screenshot({ path: join(SCREENSHOTS, 'device.png'), fullPage: true })

    await page.goto(`${base}#/alerts`)
    await page.locator('#alert-feed li.alert').first().waitFor()
    await page.locator('#alerts-status').selectOption('acknowledged')
    await page.locator(`#alert-feed li[data-policy="acl-violation"][data-status="acknowledged"]`).waitFor()
    await page.locator('#alerts-status').selectOption('open')
    await page.locator('#alert-feed li.alert').first().waitFor()
    await page.screenshot({ path: join(SCREENSHOTS, 'alerts.png') })
  })

  it('ran without a Content-Security-Policy violation or a script error', () => {
    expect(pageProblems).toEqual([])
  })
})
