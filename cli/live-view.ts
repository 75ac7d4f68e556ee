/**
 * What `placeguard up` shows a person at a terminal: one line per alert
 * opened or resolved, and a two-line footer redrawn in place — the fleet at a
 * glance (devices connected, messages a second, open alerts) and the
 * dashboard URL with its token — so neither scrolls away under the log.
 * The JSON log still goes to a file; when stdout is not a terminal, `up`
 * prints JSON lines as before and this view is not used.
 */
import type { AlertChange } from '../shared/alert-contract.ts'

export interface LiveViewSource {
  /** Subscribes to alert changes; returns the unsubscribe. */
  onAlertChange: (listener: (change: AlertChange) => void) => () => void
  /** Devices known and connected, and open alerts by severity. */
  fleet: () => { devices: number, connected: number, openAlerts: Record<string, number> }
  /** Messages received so far (a running total). */
  received: () => number
}

export interface LiveViewOptions {
  url: string
  /** The demo token, when `up` made one; otherwise the tokens come from PLACEGUARD_API_TOKENS. */
  token: string | undefined
  logFile: string
  now?: () => number
  /** How often the footer is redrawn. */
  refreshMs?: number
}

const SEVERITY_ORDER = ['critical', 'high', 'medium', 'low', 'info']
const CLEAR_LINE = '\x1b[2K\r'
const UP = '\x1b[1A'
const SHOWN: ReadonlySet<AlertChange['change']> = new Set(['opened', 'resolved'])

export function startLiveView (out: NodeJS.WritableStream & { columns?: number }, source: LiveViewSource, options: LiveViewOptions): { stop: () => void } {
  const now = options.now ?? Date.now
  let footerDrawn = false
  let lastCount = source.received()
  let lastAt = now()
  let rate = 0
  const width = (): number => Math.max(40, (out.columns ?? 100) - 1)
  const fit = (line: string): string => (line.length > width() ? `${line.slice(0, width() - 1)}…` : line)

  const footer = (): string => {
    const fleet = source.fleet()
    const open = SEVERITY_ORDER.filter((s) => (fleet.openAlerts[s] ?? 0) > 0).map((s) => `${fleet.openAlerts[s]} ${s}`).join(', ') || 'none'
    const status = `● ${fleet.connected}/${fleet.devices} devices connected · ${rate.toFixed(1)} msg/s · open alerts: ${open}`
    const access = `dashboard ${options.url}${options.token ? `  token ${options.token}` : ''}  · log ${options.logFile}`
    return `${fit(status)}\n${fit(access)}`
  }
  const clearFooter = (): void => {
    if (footerDrawn) out.write(`${CLEAR_LINE}${UP}${CLEAR_LINE}`)
    footerDrawn = false
  }
  const drawFooter = (): void => {
    clearFooter()
    out.write(footer())
    footerDrawn = true
  }

  out.write(`PlaceGuard is running. Dashboard: ${options.url}${options.token ? `\n  operator token: ${options.token}` : ''}\n  JSON log: ${options.logFile}\n\n`)
  drawFooter()
  const unsubscribe = source.onAlertChange(({ change, alert }) => {
    if (!SHOWN.has(change)) return
    clearFooter()
    out.write(`${alertLine(change, alert, now())}\n`)
    drawFooter()
  })
  const timer = setInterval(() => {
    const count = source.received()
    const at = now()
    rate = at > lastAt ? (count - lastCount) * 1000 / (at - lastAt) : rate
    lastCount = count
    lastAt = at
    drawFooter()
  }, options.refreshMs ?? 1_000)
  timer.unref()
  return {
    stop: () => {
      clearInterval(timer)
      unsubscribe()
      clearFooter()
    },
  }
}

/** `20:41:03  OPENED    high      cert-rejected        flood-00364  1 × tls-rejected …`: device text printed escaped. */
export function alertLine (change: AlertChange['change'], alert: AlertChange['alert'], nowMs: number): string {
  const time = new Date(nowMs).toTimeString().slice(0, 8)
  // A summary can carry device-supplied text: no control characters reach the terminal (STRIDE T).
  const safe = (text: string): string => JSON.stringify(text).slice(1, -1)
  return `${time}  ${change.toUpperCase().padEnd(8)}  ${alert.severity.padEnd(8)}  ${alert.policy.padEnd(20)}  ${safe(alert.deviceId).padEnd(14)}  ${safe(alert.summary)}`
}
