// DOM building without innerHTML: every string becomes a text node, so
// device-supplied text (ids, sites, firmware, summaries, evidence) is
// shown as text and never parsed as markup (STRIDE T/E: stored XSS).

const BOOLEAN_ATTRIBUTES = new Set(['hidden', 'disabled', 'required', 'open', 'selected', 'checked'])

/**
 * h('a', { href: '#/', class: 'x' }, 'text', child) — attributes are set
 * with setAttribute (never `on*`: handlers are attached with `on` below),
 * children may be strings, numbers, nodes, arrays, null or false.
 */
export function h (tag, attributes = {}, ...children) {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue
    if (name.startsWith('on')) throw new Error(`h(): use on() for ${name}`)
    // Links stay inside the app: a hash route or a same-origin path, never javascript: or another site.
    if ((name === 'href' || name === 'src') && !/^(#|\/(?!\/))/.test(String(value))) throw new Error(`h(): ${name} must be in-app`)
    element.setAttribute(name, BOOLEAN_ATTRIBUTES.has(name) && value === true ? '' : String(value))
  }
  append(element, children)
  return element
}

export function append (parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return parent
}

/** Replaces an element's children. */
export function replace (parent, ...children) {
  parent.replaceChildren()
  return append(parent, children)
}

export function on (element, type, listener) {
  element.addEventListener(type, listener)
  return element
}

const numberFormat = new Intl.NumberFormat('en-GB')
export const formatNumber = (n) => (n === null || n === undefined ? '—' : numberFormat.format(n))

const absoluteFormat = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'medium' })

/** "12 s ago", "3 min ago", "in 5 days" — relative to now. */
export function relative (iso, now = Date.now()) {
  const ms = Date.parse(iso) - now
  const abs = Math.abs(ms)
  const [value, unit] = abs < 60_000
    ? [Math.round(abs / 1000), 's']
    : abs < 3_600_000
      ? [Math.round(abs / 60_000), 'min']
      : abs < 86_400_000
        ? [Math.round(abs / 3_600_000), 'h']
        : [Math.round(abs / 86_400_000), abs < 2 * 86_400_000 ? 'day' : 'days']
  return ms > 1000 ? `in ${value} ${unit}` : `${value} ${unit} ago`
}

/** A <time> showing relative time, with the exact time as its tooltip and datetime. */
export function timeElement (iso, { fallback = 'never', prefixAbsolute = false } = {}) {
  if (!iso) return h('span', { class: 'muted' }, fallback)
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return h('span', {}, String(iso))
  const exact = absoluteFormat.format(date)
  return h('time', { datetime: date.toISOString(), title: exact, 'data-relative': prefixAbsolute ? null : '' }, prefixAbsolute ? exact : relative(iso))
}

/** "12 s ago" goes stale: the app calls this every few seconds. */
export function refreshRelativeTimes (root = document) {
  const now = Date.now()
  for (const time of root.querySelectorAll('time[data-relative]')) {
    const text = relative(time.getAttribute('datetime'), now)
    if (time.textContent !== text) time.textContent = text
  }
}

/** A label/value list (<dl>) from [label, value] pairs; values may be nodes. */
export function definitionList (pairs, className = 'facts') {
  return h('dl', { class: className }, pairs.map(([label, value]) => h('div', {}, h('dt', {}, label), h('dd', {}, value))))
}

/** Visually hidden text for screen readers. */
export const srOnly = (text) => h('span', { class: 'sr-only' }, text)
