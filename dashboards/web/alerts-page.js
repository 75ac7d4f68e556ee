// All alerts (#/alerts): by status and severity, newest first, a page at a
// time; alerts that open or change while shown arrive live.
import { api } from './api.js'
import { createAlertList, SEVERITIES } from './alert-item.js'
import { formatNumber, h, on, replace } from './dom.js'
import { subscribe } from './live.js'

const PAGE = 50
const filters = { status: 'open', severity: '' }

export function mountAlertsPage (main) {
  const statusSelect = h('select', { id: 'alerts-status' },
    [['open', 'Open'], ['acknowledged', 'Acknowledged'], ['resolved', 'Resolved']].map(([value, text]) =>
      h('option', { value, selected: filters.status === value }, text)))
  const severitySelect = h('select', { id: 'alerts-severity' },
    h('option', { value: '' }, 'All'),
    SEVERITIES.map((value) => h('option', { value, selected: filters.severity === value }, value[0].toUpperCase() + value.slice(1))))
  const count = h('p', { class: 'paging-status', role: 'status' })
  const error = h('p', { class: 'error', role: 'alert', hidden: true })
  const more = h('button', { type: 'button', class: 'button secondary', hidden: true }, 'Load more')
  const list = createAlertList({
    label: 'Alerts, newest first',
    accepts: (alert) => alert.status === filters.status && (!filters.severity || alert.severity === filters.severity),
    max: 10_000,
    emptyText: 'No alerts match.',
  })

  replace(main,
    h('h1', { id: 'page-title', tabindex: '-1' }, 'Alerts'),
    h('section', { class: 'panel', id: 'alert-feed', 'aria-labelledby': 'alerts-list-title' },
      h('h2', { id: 'alerts-list-title', class: 'sr-only' }, 'Alert list'),
      h('div', { class: 'filters' },
        h('div', { class: 'field' }, h('label', { for: 'alerts-status' }, 'Status'), statusSelect),
        h('div', { class: 'field' }, h('label', { for: 'alerts-severity' }, 'Severity'), severitySelect)),
      count, error, list.elements, more))

  let next = null
  let total = 0
  const load = async (append = false) => {
    try {
      const page = await api.alerts({ status: filters.status, severity: filters.severity, limit: PAGE, cursor: append ? next : undefined })
      if (append) page.items.forEach((alert) => list.put(alert))
      else list.reset(page.items)
      next = page.next
      total = page.total
      more.hidden = !next
      count.textContent = `Showing ${formatNumber(list.size)} of ${formatNumber(total)}`
      error.hidden = true
    } catch (failure) {
      error.textContent = `Could not load alerts: ${failure.message}`
      error.hidden = false
    }
  }
  on(statusSelect, 'change', () => { filters.status = statusSelect.value; load() })
  on(severitySelect, 'change', () => { filters.severity = severitySelect.value; load() })
  on(more, 'click', () => load(true))

  load()
  const unsubscribe = [
    subscribe('alert', ({ alert }) => {
      list.put(alert)
      count.textContent = `Showing ${formatNumber(list.size)}`
    }),
    subscribe('resync', () => load()),
  ]
  return () => unsubscribe.forEach((stop) => stop())
}
