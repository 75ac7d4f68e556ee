// The device table: server-side search, filters, sorting and paging, so a
// fleet of 10,000 devices costs one page of rows (GET /api/devices).
import { api } from './api.js'
import { formatNumber, h, on, replace, timeElement } from './dom.js'

const PAGE_SIZE = 100
const KINDS = ['flood', 'energy', 'housing']
const HEALTH = ['healthy', 'alerting', 'silent', 'quarantined', 'never-seen']
const HEALTH_LABEL = { healthy: 'Healthy', alerting: 'Alerting', silent: 'Silent', quarantined: 'Quarantined', 'never-seen': 'Never seen' }
const CERT_WARN_DAYS = 30

const COLUMNS = [
  { key: 'id', label: 'Device', sort: 'id' },
  { key: 'kind', label: 'Kind', sort: 'kind' },
  { key: 'site', label: 'Site', sort: 'site' },
  { key: 'health', label: 'Health', sort: 'health' },
  { key: 'connected', label: 'Connection' },
  { key: 'firmware', label: 'Firmware', sort: 'firmware' },
  { key: 'lastSeenAt', label: 'Last seen', sort: 'lastSeenAt' },
  { key: 'certNotAfter', label: 'Certificate expires' },
  { key: 'openAlerts', label: 'Open alerts', numeric: true },
  { key: 'messages', label: 'Messages', numeric: true },
]

export function healthBadge (health) {
  const known = HEALTH_LABEL[health] ? health : 'unknown'
  return h('span', { class: `health health-${known}` }, HEALTH_LABEL[health] ?? String(health))
}

export function connectionText (connected) {
  return connected
    ? h('span', { class: 'conn conn-on' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Connected')
    : h('span', { class: 'conn conn-off' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Not connected')
}

export function certificateExpiry (notAfter) {
  if (!notAfter) return h('span', { class: 'muted' }, '—')
  const days = (Date.parse(notAfter) - Date.now()) / 86_400_000
  const time = timeElement(notAfter)
  if (days < 0) return h('span', { class: 'warn' }, 'expired ', time)
  if (days < CERT_WARN_DAYS) return h('span', { class: 'warn' }, time)
  return time
}

function select (id, label, options, value) {
  const element = h('select', { id, name: id },
    h('option', { value: '' }, 'All'),
    options.map(([optionValue, text]) => h('option', { value: optionValue, selected: optionValue === value }, text)))
  return [h('label', { for: id }, label), element]
}

// Kept across views, so coming back from a device page finds the same page.
const state = { q: '', kind: '', site: '', health: '', connected: '', sort: 'id', order: 'asc', cursors: [null] }

/** Mounts the table; `sites` fills the site filter. Returns { element, refresh, setSites, destroy }. */
export function createDeviceTable ({ sites = [] } = {}) {
  let controller = null
  let lastPage = null
  const status = h('p', { class: 'paging-status', role: 'status', 'aria-live': 'polite' })
  const error = h('p', { class: 'error', role: 'alert', hidden: true })
  const search = h('input', { id: 'device-search', type: 'search', name: 'q', value: state.q, maxlength: '64', autocomplete: 'off', spellcheck: 'false', placeholder: 'id or site' })
  const [kindLabel, kindSelect] = select('filter-kind', 'Kind', KINDS.map((k) => [k, k]), state.kind)
  const [siteLabel, siteSelect] = select('filter-site', 'Site', sites.map((s) => [s, s]), state.site)
  const [healthLabel, healthSelect] = select('filter-health', 'Health', HEALTH.map((v) => [v, HEALTH_LABEL[v]]), state.health)
  const [connLabel, connSelect] = select('filter-connected', 'Connection', [['true', 'Connected'], ['false', 'Not connected']], state.connected)

  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Devices' },
    h('div', { class: 'field grow' }, h('label', { for: 'device-search' }, 'Search devices'), search),
    h('div', { class: 'field' }, kindLabel, kindSelect),
    h('div', { class: 'field' }, siteLabel, siteSelect),
    h('div', { class: 'field' }, healthLabel, healthSelect),
    h('div', { class: 'field' }, connLabel, connSelect),
    h('button', { type: 'submit', class: 'button secondary' }, 'Search'))

  const headRow = h('tr')
  const body = h('tbody')
  const table = h('table', { class: 'devices', id: 'device-table' },
    h('caption', { class: 'sr-only' }, 'Devices; column headers with buttons sort the table'),
    h('thead', {}, headRow), body)
  const prev = h('button', { type: 'button', class: 'button secondary' }, '← Previous')
  const next = h('button', { type: 'button', class: 'button secondary' }, 'Next →')
  const element = h('section', { class: 'panel device-panel', 'aria-labelledby': 'devices-title' },
    h('h2', { id: 'devices-title' }, 'Devices'),
    form, error,
    h('div', { class: 'table-scroll' }, table),
    h('div', { class: 'paging' }, prev, status, next))

  const renderHead = () => {
    replace(headRow, COLUMNS.map((column) => {
      const th = h('th', { scope: 'col', class: column.numeric ? 'num' : null })
      if (!column.sort) return append1(th, column.label)
      const active = state.sort === column.sort
      if (active) th.setAttribute('aria-sort', state.order === 'asc' ? 'ascending' : 'descending')
      const button = h('button', { type: 'button', class: 'sort', 'data-sort': column.sort },
        column.label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' }, active ? (state.order === 'asc' ? '▲' : '▼') : '↕'))
      on(button, 'click', () => {
        if (state.sort === column.sort) state.order = state.order === 'asc' ? 'desc' : 'asc'
        else {
          state.sort = column.sort
          state.order = column.sort === 'lastSeenAt' ? 'desc' : 'asc'
        }
        state.cursors = [null]
        renderHead()
        headRow.querySelector(`[data-sort="${column.sort}"]`).focus()
        load()
      })
      return append1(th, button)
    }))
  }

  const renderRows = (items) => {
    const fragment = document.createDocumentFragment()
    for (const device of items) {
      fragment.append(h('tr', {},
        h('th', { scope: 'row' }, h('a', { href: `#/devices/${encodeURIComponent(device.id)}` }, device.id)),
        h('td', {}, device.kind),
        h('td', {}, device.site),
        h('td', {}, healthBadge(device.health)),
        h('td', {}, connectionText(device.connected)),
        h('td', { class: 'mono' }, device.firmware ?? '—'),
        h('td', {}, timeElement(device.lastSeenAt)),
        h('td', {}, certificateExpiry(device.certNotAfter)),
        h('td', { class: 'num' }, device.openAlerts > 0 ? h('span', { class: 'count-alert' }, formatNumber(device.openAlerts)) : '0'),
        h('td', { class: 'num' }, formatNumber(device.messages))))
    }
    if (items.length === 0) fragment.append(h('tr', {}, h('td', { colspan: String(COLUMNS.length), class: 'empty muted' }, 'No devices match.')))
    body.replaceChildren(fragment)
  }

  const load = async () => {
    controller?.abort()
    controller = new AbortController()
    table.setAttribute('aria-busy', 'true')
    const cursor = state.cursors[state.cursors.length - 1]
    try {
      const page = await api.devices({
        limit: PAGE_SIZE, cursor, q: state.q.trim(), kind: state.kind, site: state.site, health: state.health,
        connected: state.connected, sort: state.sort, order: state.order,
      }, controller.signal)
      lastPage = page
      error.hidden = true
      // Rows are replaced only if focus is not inside them (a refresh must not steal the keyboard).
      if (!body.contains(document.activeElement)) renderRows(page.items)
      const first = (state.cursors.length - 1) * PAGE_SIZE
      status.textContent = page.total === 0
        ? 'No devices'
        : `${formatNumber(first + 1)}–${formatNumber(first + page.items.length)} of ${formatNumber(page.total)}`
      prev.disabled = state.cursors.length <= 1
      next.disabled = !page.next
      // For bench/dashboard.ts: when rows reached the screen (only the latest mark is kept).
      performance.clearMarks('placeguard:devices-rendered')
      performance.mark('placeguard:devices-rendered')
    } catch (failure) {
      if (failure.name === 'AbortError') return
      error.textContent = `Could not load devices: ${failure.message}`
      error.hidden = false
    } finally {
      table.removeAttribute('aria-busy')
    }
  }

  const restart = () => {
    state.cursors = [null]
    load()
  }
  let debounce = null
  on(search, 'input', () => {
    clearTimeout(debounce)
    debounce = setTimeout(() => {
      if (state.q === search.value) return
      state.q = search.value
      restart()
    }, 300)
  })
  on(form, 'submit', (event) => {
    event.preventDefault()
    clearTimeout(debounce)
    state.q = search.value
    restart()
  })
  for (const [control, key] of [[kindSelect, 'kind'], [siteSelect, 'site'], [healthSelect, 'health'], [connSelect, 'connected']]) {
    on(control, 'change', () => {
      state[key] = control.value
      restart()
    })
  }
  on(prev, 'click', () => {
    if (state.cursors.length > 1) state.cursors.pop()
    load()
  })
  on(next, 'click', () => {
    if (!lastPage?.next) return
    state.cursors.push(lastPage.next)
    load()
  })

  renderHead()
  load()
  return {
    element,
    refresh: load,
    setSites (names) {
      const current = siteSelect.value
      const known = [...siteSelect.options].slice(1).map((o) => o.value)
      if (known.join() === names.join()) return
      replace(siteSelect, h('option', { value: '' }, 'All'), names.map((name) => h('option', { value: name, selected: name === current }, name)))
    },
    destroy: () => controller?.abort(),
  }
}

function append1 (parent, child) {
  parent.append(child)
  return parent
}
