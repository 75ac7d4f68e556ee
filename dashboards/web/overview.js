// The fleet overview (#/): headline counts, health by kind and by site,
// the live alert feed and the device table. It asks for /api/fleet, one
// page of devices and the open alerts — never the whole fleet.
import { api } from './api.js'
import { createAlertList, SEVERITIES, severityBadge } from './alert-item.js'
import { createDeviceTable } from './device-table.js'
import { formatNumber, h, replace } from './dom.js'
import { latestFleet, subscribe } from './live.js'

const FEED_SIZE = 50
const KIND_LABEL = { flood: 'Flood sensors', energy: 'Energy systems', housing: 'Housing sensors' }

export function mountOverview (main) {
  const cards = h('ul', { class: 'cards', 'aria-label': 'Fleet at a glance' })
  const byKind = h('div', { class: 'table-scroll' })
  const bySite = h('div', { class: 'table-scroll' })
  const feed = createAlertList({
    label: 'Open and acknowledged alerts, newest first',
    accepts: (alert) => alert.status !== 'resolved',
    max: FEED_SIZE,
    emptyText: 'No open alerts.',
  })
  const feedError = h('p', { class: 'error', role: 'alert', hidden: true })
  const table = createDeviceTable({ sites: latestFleet ? Object.keys(latestFleet.bySite ?? {}).sort() : [] })

  replace(main,
    h('h1', { id: 'page-title', tabindex: '-1' }, 'Fleet overview'),
    h('div', { class: 'overview' },
      h('div', { class: 'overview-main' },
        h('section', { 'aria-labelledby': 'glance-title', class: 'panel' }, h('h2', { id: 'glance-title', class: 'sr-only' }, 'At a glance'), cards),
        h('div', { class: 'health-grid' },
          h('section', { class: 'panel', 'aria-labelledby': 'kind-title' }, h('h2', { id: 'kind-title' }, 'Health by kind'), byKind),
          h('section', { class: 'panel', 'aria-labelledby': 'site-title' }, h('h2', { id: 'site-title' }, 'Health by site'), bySite))),
      h('section', { class: 'panel feed', id: 'alert-feed', 'aria-labelledby': 'feed-title', tabindex: '-1' },
        h('div', { class: 'feed-head' }, h('h2', { id: 'feed-title' }, 'Live alerts'), h('a', { href: '#/alerts' }, 'All alerts')),
        feedError, feed.elements),
      table.element))

  const renderFleet = (fleet) => {
    const open = fleet.openAlerts ?? {}
    const totalOpen = SEVERITIES.reduce((sum, severity) => sum + (open[severity] ?? 0), 0)
    replace(cards,
      card('Devices', fleet.devices, 'in the inventory'),
      card('Connected', fleet.connected, percent(fleet.connected, fleet.devices), fleet.connected > 0 ? 'good' : 'bad'),
      card('Silent', fleet.silent, 'overdue telemetry', fleet.silent > 0 ? 'bad' : null),
      card('Quarantined', fleet.quarantined, 'refused by the broker', fleet.quarantined > 0 ? 'bad' : null),
      card('Never seen', fleet.neverSeen, 'issued, not yet connected'),
      h('li', { class: 'card card-alerts' },
        h('p', { class: 'card-label' }, 'Open alerts'),
        h('p', { class: 'card-value' }, formatNumber(totalOpen)),
        h('p', { class: 'card-note' }, 'open or acknowledged'),
        h('ul', { class: 'severity-counts', 'aria-label': 'Open alerts by severity' },
          SEVERITIES.map((severity) => h('li', {}, severityBadge(severity), ' ', h('span', { class: 'count' }, formatNumber(open[severity] ?? 0)))))))
    replace(byKind, healthTable('kind', 'Kind', Object.entries(fleet.byKind ?? {}).map(([kind, row]) => [KIND_LABEL[kind] ?? kind, row])))
    replace(bySite, healthTable('site', 'Site', Object.entries(fleet.bySite ?? {}).sort(([a], [b]) => a.localeCompare(b))))
    table.setSites(Object.keys(fleet.bySite ?? {}).sort())
    // For bench/dashboard.ts: when the fleet summary first reached the screen.
    if (performance.getEntriesByName('placeguard:fleet-rendered').length === 0) performance.mark('placeguard:fleet-rendered')
  }

  const loadFeed = async () => {
    try {
      const [open, acknowledged] = await Promise.all([
        api.alerts({ status: 'open', limit: FEED_SIZE }),
        api.alerts({ status: 'acknowledged', limit: FEED_SIZE }),
      ])
      feed.reset([...open.items, ...acknowledged.items])
      feedError.hidden = true
    } catch (failure) {
      feedError.textContent = `Could not load alerts: ${failure.message}`
      feedError.hidden = false
    }
  }

  if (latestFleet) renderFleet(latestFleet)
  loadFeed()
  // Rows (last seen, health, alert counts) go stale: re-read the current
  // page every 10 s, and soon after alerts change (once per burst).
  let lastTableRefresh = Date.now()
  let tableTimer = null
  const refreshTableSoon = () => {
    tableTimer ??= setTimeout(() => {
      tableTimer = null
      lastTableRefresh = Date.now()
      table.refresh()
    }, 1500)
  }
  const unsubscribe = [
    subscribe('fleet', (fleet) => {
      renderFleet(fleet)
      if (Date.now() - lastTableRefresh > 10_000) refreshTableSoon()
    }),
    subscribe('alert', ({ alert }) => {
      feed.put(alert)
      refreshTableSoon()
    }),
    subscribe('resync', loadFeed),
  ]
  return () => {
    unsubscribe.forEach((stop) => stop())
    clearTimeout(tableTimer)
    table.destroy()
  }
}

function percent (part, whole) {
  return whole > 0 ? `${Math.round((100 * part) / whole)} % of the fleet` : ''
}

function card (label, value, note, tone) {
  return h('li', { class: `card${tone ? ` card-${tone}` : ''}` },
    h('p', { class: 'card-label' }, label),
    h('p', { class: 'card-value' }, formatNumber(value ?? 0)),
    note ? h('p', { class: 'card-note' }, note) : null)
}

function healthTable (key, label, rows) {
  if (rows.length === 0) return h('p', { class: 'muted' }, 'No devices yet.')
  return h('table', { class: 'health-table' },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, label),
      h('th', { scope: 'col', class: 'num' }, 'Devices'),
      h('th', { scope: 'col', class: 'num' }, 'Connected'),
      h('th', { scope: 'col', class: 'num' }, 'Silent'),
      h('th', { scope: 'col', class: 'num' }, 'Alerting'))),
    h('tbody', {}, rows.map(([name, row]) => h('tr', { 'data-key': `${key}:${name}` },
      h('th', { scope: 'row' }, name),
      h('td', { class: 'num' }, formatNumber(row.total)),
      h('td', { class: 'num' }, formatNumber(row.connected)),
      h('td', { class: `num${row.silent > 0 ? ' warn' : ''}` }, formatNumber(row.silent)),
      h('td', { class: `num${row.alerting > 0 ? ' bad' : ''}` }, formatNumber(row.alerting))))))
}
