/**
 * `placeguard up` at a terminal: a compact live view (an alert per line, a
 * footer with the fleet and the dashboard's URL and token) instead of JSON
 * scrolling past; the JSON log goes to a file. Not at a terminal, JSON lines
 * on stdout as before.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, describe, expect, it } from 'vitest'
import { alertLine, startLiveView } from '../../cli/live-view.ts'
import type { Alert, AlertChange } from '../../shared/alert-contract.ts'
import { waitFor } from '../helpers/broker.ts'
import { freePort } from '../helpers/free-port.ts'

const ROOT = join(import.meta.dirname, '..', '..')
const dirs: string[] = []
afterAll(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }) })

const alert = (fields: Partial<Alert>): Alert => ({
  id: 'a1', policy: 'acl-violation', severity: 'high', deviceId: 'flood-001', site: 'riverside', kind: 'flood',
  summary: 'publish outside own topic', detectedAt: '2026-11-30T20:00:00.000Z', status: 'open', evidence: {}, ...fields,
} as Alert)

describe('the live view', () => {
  it('prints opened and resolved alerts above a footer with the fleet, the URL and the token', () => {
    let text = ''
    const out = new Writable({ write (chunk, _encoding, done) { text += String(chunk); done() } })
    const listeners: Array<(change: AlertChange) => void> = []
    const view = startLiveView(out, {
      onAlertChange: (listener) => { listeners.push(listener); return () => {} },
      fleet: () => ({ devices: 60, connected: 58, openAlerts: { high: 2, medium: 1 } }),
      received: () => 0,
    }, { url: 'http://localhost:8080/', token: 'tok-123', logFile: 'data/placeguard.log', refreshMs: 60_000 })
    listeners[0]!({ change: 'opened', alert: alert({}) })
    listeners[0]!({ change: 'commented', alert: alert({}) })
    listeners[0]!({ change: 'resolved', alert: alert({ severity: 'medium', policy: 'device-silent', summary: 'the device reported again' }) })
    view.stop()
    expect(text).toContain('Dashboard: http://localhost:8080/')
    expect(text).toMatch(/OPENED\s+high\s+acl-violation\s+flood-001\s+publish outside own topic/)
    expect(text).toMatch(/RESOLVED\s+medium\s+device-silent/)
    expect(text).not.toContain('COMMENTED')
    expect(text).toContain('● 58/60 devices connected')
    expect(text).toContain('open alerts: 2 high, 1 medium')
    expect(text).toContain('dashboard http://localhost:8080/  token tok-123')
  })

  it('never lets device text put control characters on the terminal', () => {
    const line = alertLine('opened', alert({ summary: 'fw "\x1b[2J\x1b[31mOK\x07" \n next' }), Date.parse('2026-11-30T20:00:00Z'))
    expect([...line].filter((c) => c.charCodeAt(0) < 0x20)).toEqual([])
    expect(line).toContain('\\u001b[2J')
  })
})

describe('placeguard up at a terminal', () => {
  it('shows the live view on the terminal and writes the JSON log to a file', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'placeguard-live-'))
    dirs.push(dataDir)
    const [mqttPort, httpPort] = [await freePort(), await freePort()]
    const command = [process.execPath, join(ROOT, 'bin', 'placeguard.js'), '--data-dir', dataDir, 'up', '--mqtt-host', '127.0.0.1',
      '--mqtt-port', String(mqttPort), '--http-host', '127.0.0.1', '--http-port', String(httpPort), '--demo-devices', '5', '--demo-interval', '1s']
    // util-linux `script` gives the process a pseudo-terminal, as a person's shell would.
    const child = spawn('script', ['-qfc', command.map((part) => `'${part}'`).join(' '), '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PLACEGUARD_API_TOKENS: '' } })
    let screen = ''
    child.stdout.on('data', (chunk: Buffer) => { screen += chunk.toString() })
    try {
      await waitFor(() => /devices connected/.test(screen) && /5\/5 devices connected/.test(screen), 60_000, 'the footer with the demo fleet connected')
      expect(screen).toContain(`Dashboard: http://127.0.0.1:${httpPort}/`)
      expect(screen).toMatch(/operator token: [\w-]{20,}/)
      expect(screen).not.toContain('"level":')
      const logFile = join(dataDir, 'placeguard.log')
      await waitFor(() => existsSync(logFile) && readFileSync(logFile, 'utf8').includes('broker listening'), 10_000, 'the JSON log file')
      expect(JSON.parse(readFileSync(logFile, 'utf8').split('\n')[0]!)).toHaveProperty('level')
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.stdin.write('\x03') // Ctrl-C, through the terminal
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref()
      await exited
    }
  }, 90_000)
})
