// One alert, as a list item: severity as text and colour (never colour
// alone), what happened, where, when, and — for operators — the actions.
import { api, session } from './api.js'
import { definitionList, h, on, timeElement } from './dom.js'

export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info']
const SEVERITY_LABEL = { critical: 'Critical', high: 'High', medium: 'Medium', low: 'Low', info: 'Info' }
const STATUS_LABEL = { open: 'Open', acknowledged: 'Acknowledged', resolved: 'Resolved' }

export function severityBadge (severity) {
  const known = SEVERITIES.includes(severity) ? severity : 'info'
  return h('span', { class: `severity severity-${known}` }, SEVERITY_LABEL[known] ?? String(severity))
}

export function statusBadge (status) {
  return h('span', { class: `status status-${STATUS_LABEL[status] ? status : 'open'}` }, STATUS_LABEL[status] ?? String(status))
}

/** A device link, unless the alert is about something that is not a device (a sink, a claimed id, an address). */
export function deviceLink (deviceId) {
  return /^[a-z0-9-]{1,64}$/.test(deviceId)
    ? h('a', { href: `#/devices/${encodeURIComponent(deviceId)}` }, deviceId)
    : h('span', { class: 'mono' }, deviceId)
}

function evidenceValue (value) {
  if (value === null || value === undefined) return h('span', { class: 'muted' }, '—')
  if (typeof value === 'object') return h('code', {}, JSON.stringify(value))
  return h('span', { class: 'mono' }, String(value))
}

function responseText (response) {
  if (!response) return null
  const until = response.until ? ` until ${new Date(response.until).toLocaleString('en-GB')}` : ''
  return `${response.action} ${response.status}${until}${response.detail ? ` (${response.detail})` : ''}`
}

/**
 * Renders an alert as <li>. `onChanged(alert)` receives the alert the
 * server returns after an action, so the list can update at once (the
 * stream brings the same change to every other open dashboard).
 */
export function alertItem (alert, { onChanged } = {}) {
  const item = h('li', {
    class: `alert alert-${SEVERITIES.includes(alert.severity) ? alert.severity : 'info'} alert-${alert.status}`,
    'data-alert-id': alert.id,
    'data-policy': alert.policy,
    'data-device': alert.deviceId,
    'data-status': alert.status,
    tabindex: '-1',
  })
  const headingId = `alert-${alert.id}-title`
  item.setAttribute('aria-labelledby', headingId)
  const error = h('p', { class: 'error', role: 'alert', hidden: true })

  const actions = h('div', { class: 'actions' })
  if (session.isOperator && alert.status !== 'resolved') {
    // Busy buttons are aria-disabled, not disabled: a disabled button drops
    // the keyboard focus to <body>, and the list moves focus along instead.
    const run = async (button, action) => {
      if (button.getAttribute('aria-disabled') === 'true') return
      button.setAttribute('aria-disabled', 'true')
      error.hidden = true
      try {
        const updated = await action()
        onChanged?.(updated)
      } catch (failure) {
        error.textContent = `Could not ${button.dataset.action} this alert: ${failure.message}`
        error.hidden = false
        button.removeAttribute('aria-disabled')
      }
    }
    if (alert.status === 'open') {
      const ack = h('button', { type: 'button', class: 'button', 'data-action': 'acknowledge' }, 'Acknowledge')
      on(ack, 'click', () => run(ack, () => api.acknowledge(alert.id)))
      actions.append(ack)
    }
    const resolve = h('button', { type: 'button', class: 'button secondary', 'data-action': 'resolve' }, 'Resolve')
    on(resolve, 'click', () => run(resolve, () => api.resolve(alert.id)))
    actions.append(resolve)
  }

  const evidence = alert.evidence && typeof alert.evidence === 'object' ? Object.entries(alert.evidence) : []
  const comments = Array.isArray(alert.comments) ? alert.comments : []
  const details = h('details', { class: 'alert-details' },
    h('summary', {}, 'Evidence and history'),
    definitionList([
      ['Policy', h('span', { class: 'mono' }, alert.policy)],
      ['Threat', [alert.stride ?? '—', alert.attack ? ` · ATT&CK for ICS ${alert.attack}` : '']],
      ['First detected', timeElement(alert.detectedAt, { prefixAbsolute: true })],
      ['Last seen', timeElement(alert.lastSeenAt, { prefixAbsolute: true })],
      ['Occurrences', String(alert.occurrences ?? 1)],
      alert.acknowledgedBy ? ['Acknowledged by', alert.acknowledgedBy] : null,
      alert.resolvedAt ? ['Resolved', [timeElement(alert.resolvedAt, { prefixAbsolute: true }), alert.resolution ? ` — ${alert.resolution}` : '']] : null,
      alert.response ? ['Response', responseText(alert.response)] : null,
    ].filter(Boolean), 'facts compact'),
    evidence.length > 0
      ? [h('h4', {}, 'Evidence'), definitionList(evidence.map(([key, value]) => [key, evidenceValue(value)]), 'facts compact evidence')]
      : null,
    comments.length > 0
      ? [h('h4', {}, 'Comments'), h('ul', { class: 'comments' }, comments.map((comment) =>
          h('li', {}, h('span', { class: 'muted' }, comment.by ?? 'unknown', ', ', timeElement(comment.at), ': '), comment.text ?? '')))]
      : null,
    session.isOperator && alert.status !== 'resolved' ? commentForm(alert, onChanged) : null,
  )

  item.append(
    h('div', { class: 'alert-head' },
      severityBadge(alert.severity),
      h('h3', { id: headingId, class: 'alert-title' }, alert.summary ?? alert.policy),
    ),
    h('p', { class: 'alert-meta' },
      h('span', { class: 'mono policy' }, alert.policy), ' · ',
      deviceLink(alert.deviceId),
      alert.site ? [' · ', alert.site] : null,
      ' · ', timeElement(alert.detectedAt),
      alert.occurrences > 1 ? ` · ×${alert.occurrences}` : null,
      ' · ', statusBadge(alert.status),
      alert.acknowledgedBy ? h('span', { class: 'muted' }, ` by ${alert.acknowledgedBy}`) : null,
    ),
    actions.childElementCount > 0 ? actions : null,
    error,
    details,
  )
  return item
}

function commentForm (alert, onChanged) {
  const inputId = `comment-${alert.id}`
  const input = h('input', { id: inputId, type: 'text', maxlength: '2000', autocomplete: 'off', required: true })
  const status = h('p', { class: 'error', role: 'alert', hidden: true })
  const form = h('form', { class: 'comment-form' },
    h('label', { for: inputId }, 'Add a comment'),
    h('div', { class: 'inline' }, input, h('button', { type: 'submit', class: 'button secondary' }, 'Add')),
    status)
  on(form, 'submit', async (event) => {
    event.preventDefault()
    const text = input.value.trim()
    if (!text) return
    try {
      onChanged?.(await api.comment(alert.id, text), { keepOpen: true })
    } catch (failure) {
      status.textContent = `Could not add the comment: ${failure.message}`
      status.hidden = false
    }
  })
  return form
}

/**
 * A live list of alerts, newest first. `accepts(alert)` says whether an
 * alert belongs in it (e.g. not resolved); others are removed when they
 * change. Keeps focus on the same alert when it is re-rendered.
 */
export function createAlertList ({ label, accepts, max = 100, emptyText = 'No alerts.' }) {
  const list = h('ol', { class: 'alert-list', 'aria-label': label, 'aria-live': 'polite', 'aria-relevant': 'additions' })
  const empty = h('p', { class: 'empty muted' }, emptyText)
  const items = new Map()
  const order = new Map() // id → detectedAt, for insertion order

  const refreshEmpty = () => { empty.hidden = items.size > 0 }
  const put = (alert, options = {}) => {
    const old = items.get(alert.id)
    if (!accepts(alert)) {
      if (old) {
        const hadFocus = old.contains(document.activeElement)
        const next = old.nextElementSibling ?? old.previousElementSibling
        old.remove()
        items.delete(alert.id)
        order.delete(alert.id)
        if (hadFocus) (next ?? list.closest('section') ?? list).focus?.()
      }
      refreshEmpty()
      return
    }
    const openDetails = old?.querySelector('details')?.open || options.keepOpen
    const item = alertItem(alert, { onChanged: put })
    if (openDetails) item.querySelector('details').open = true
    items.set(alert.id, item)
    if (old) {
      const focused = old.contains(document.activeElement) ? document.activeElement : null
      old.replaceWith(item)
      if (focused) {
        const same = focused.dataset?.action ? item.querySelector(`[data-action="${focused.dataset.action}"]`) : null
        ;(same ?? item.querySelector('button') ?? item).focus()
      }
    } else {
      // Newest first: before the first item detected earlier than this one.
      let before = null
      for (const [id, at] of order) {
        if (at < alert.detectedAt) { before = items.get(id) ?? null; break }
      }
      list.insertBefore(item, before)
      order.set(alert.id, alert.detectedAt)
      // Keep `order` sorted newest first, as the DOM is.
      const sorted = [...order].sort((a, b) => (a[1] < b[1] ? 1 : a[1] > b[1] ? -1 : 0))
      order.clear()
      for (const [id, at] of sorted) order.set(id, at)
      while (order.size > max) {
        const [lastId] = [...order.keys()].slice(-1)
        items.get(lastId)?.remove()
        items.delete(lastId)
        order.delete(lastId)
      }
    }
    refreshEmpty()
  }

  return {
    elements: [empty, list],
    put,
    /** Replaces the whole list (after a (re)connect or a filter change). */
    reset (alerts) {
      list.replaceChildren()
      items.clear()
      order.clear()
      for (const alert of alerts) put(alert)
      refreshEmpty()
    },
    get size () { return items.size },
  }
}
