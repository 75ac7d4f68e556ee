// One device (#/devices/<id>): identity, certificate (or, for a LoRaWAN
// device, its integration and last uplink's radio), firmware, rate
// against its baseline, quarantine (lift, for operators), its alerts and
// charts of its recent telemetry. Re-read every few seconds while shown.
import { api, session } from './api.js'
import { createAlertList } from './alert-item.js'
import { createCharts, READINGS } from './charts.js'
import { certificateExpiry, connectionText, healthBadge } from './device-table.js'
import { definitionList, formatNumber, h, on, replace, timeElement } from './dom.js'
import { subscribe } from './live.js'

const REFRESH_MS = 5000
const TABLE_ROWS = 20
const rate = new Intl.NumberFormat('en-GB', { maximumFractionDigits: 1 })

export function mountDevicePage (main, deviceId) {
  const title = h('h1', { id: 'page-title', tabindex: '-1' }, 'Device ', h('span', { class: 'mono' }, deviceId))
  const error = h('p', { class: 'error', role: 'alert', hidden: true })
  const status = h('p', { class: 'device-status' })
  const identity = h('div')
  const certificate = h('div')
  const certTitle = h('h2', { id: 'cert-title' }, 'Certificate')
  const rateBox = h('div')
  const quarantine = h('div')
  const chartsBox = h('div', { class: 'charts' }, h('p', { class: 'muted' }, 'Loading telemetry…'))
  const dataTable = h('div', { class: 'table-scroll' })
  const alerts = createAlertList({
    label: `Alerts for ${deviceId}`,
    accepts: (alert) => alert.deviceId === deviceId && alert.status !== 'resolved',
    emptyText: 'No open alerts for this device.',
  })
  const charts = createCharts(chartsBox)

  replace(main,
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/' }, '← Fleet overview')),
    title, status, error,
    h('div', { class: 'device-grid' },
      h('section', { class: 'panel', 'aria-labelledby': 'identity-title' }, h('h2', { id: 'identity-title' }, 'Identity and firmware'), identity),
      h('section', { class: 'panel', 'aria-labelledby': 'cert-title' }, certTitle, certificate),
      h('section', { class: 'panel', 'aria-labelledby': 'rate-title' }, h('h2', { id: 'rate-title' }, 'Message rate'), rateBox),
      h('section', { class: 'panel', 'aria-labelledby': 'quarantine-title' }, h('h2', { id: 'quarantine-title', tabindex: '-1' }, 'Quarantine'), quarantine)),
    h('section', { class: 'panel', 'aria-labelledby': 'device-alerts-title' }, h('h2', { id: 'device-alerts-title' }, 'Open and acknowledged alerts'), alerts.elements),
    h('section', { class: 'panel', 'aria-labelledby': 'telemetry-title' },
      h('h2', { id: 'telemetry-title' }, 'Recent telemetry'), chartsBox,
      h('details', {}, h('summary', {}, `Latest ${TABLE_ROWS} messages as a table`), dataTable)))

  let controller = null
  let first = true
  let liftNotice = null
  const load = async () => {
    controller?.abort()
    controller = new AbortController()
    try {
      const device = await api.device(deviceId, controller.signal)
      error.hidden = true
      render(device)
    } catch (failure) {
      if (failure.name === 'AbortError') return
      error.textContent = failure.status === 404 ? `There is no device ${deviceId} in the inventory.` : `Could not load the device: ${failure.message}`
      error.hidden = false
    }
  }

  const render = (device) => {
    document.title = `${device.id} · PlaceGuard`
    replace(status, healthBadge(device.health), ' ', connectionText(device.connected))
    replace(identity, definitionList([
      ['Kind', device.kind],
      ['Site', device.site],
      ['Identity', device.identity === 'lorawan' ? ['LoRaWAN via ', h('span', { class: 'mono' }, device.integration)] : 'own certificate'],
      device.devEui ? ['DevEUI', h('span', { class: 'mono' }, device.devEui)] : null,
      ['Firmware', h('span', { class: 'mono' }, device.firmware ?? '—')],
      device.vendor ? ['Vendor and model', `${device.vendor} ${device.model}`] : null,
      // Synced advisories (docs/advisories.md) its firmware is affected by, and those a firmware update remediated.
      device.exposures?.length ? ['Advisories', device.exposures.map((e) => `${e.advisory} (${e.cvss === null ? 'no CVSS' : `CVSS ${e.cvss}`}${e.component ? `, in ${e.component.name} ${e.component.version}` : ''}${e.confidence === 'low' ? ', low-confidence match' : ''})`).join(', ')] : null,
      device.remediated?.length ? ['Remediated', device.remediated.map((r) => r.advisory).join(', ')] : null,
      ['Last seen', timeElement(device.lastSeenAt)],
      ['Messages', formatNumber(device.messages)],
      ['Open alerts', formatNumber(device.openAlerts)],
    ].filter(Boolean)))
    const cert = device.certificate
    // A LoRaWAN device has no certificate: its integration speaks for it, and the last uplink's radio is what there is to show.
    certTitle.textContent = device.identity === 'lorawan' ? 'LoRaWAN radio' : 'Certificate'
    const radio = device.radio
    if (device.identity === 'lorawan') {
      replace(certificate, radio
        ? definitionList([
            ['Gateways', h('span', { class: 'mono break' }, radio.gateways.join(', '))],
            ['RSSI', radio.rssi === null ? '—' : `${rate.format(radio.rssi)} dBm`],
            ['SNR', radio.snr === null ? '—' : `${rate.format(radio.snr)} dB`],
            ['Heard', timeElement(radio.at)],
          ])
        : h('p', { class: 'muted' }, `No uplink heard through ${device.integration} since the collector started.`))
    } else replace(certificate, cert
      ? definitionList([
          ['Status', cert.status],
          ['Expires', [certificateExpiry(cert.notAfter), ' ', h('span', { class: 'muted' }, `(${new Date(cert.notAfter).toLocaleDateString('en-GB')})`)]],
          ['Valid from', timeElement(cert.notBefore, { prefixAbsolute: true })],
          ['Key', cert.keyAlgorithm],
          ['Serial', h('span', { class: 'mono break' }, cert.serial)],
        ])
      : h('p', { class: 'muted' }, 'No certificate in the inventory.'))
    const r = device.rate
    replace(rateBox, r
      ? [definitionList([
          ['Last minute', `${rate.format(r.currentPerMinute)} / min`],
          ['Baseline', r.baselinePerMinute ? `${rate.format(r.baselinePerMinute)} / min` : 'still learning'],
          r.baselinePerMinute ? ['Ratio', `× ${rate.format(r.currentPerMinute / r.baselinePerMinute)}`] : null,
        ].filter(Boolean))]
      : h('p', { class: 'muted' }, 'No messages yet.'))
    renderQuarantine(device)
    if (first || !alertsHaveFocus()) alerts.reset(device.alerts ?? [])
    first = false
    const telemetry = Array.isArray(device.telemetry) ? device.telemetry : []
    charts.update(telemetry)
    renderDataTable(telemetry)
  }

  const alertsHaveFocus = () => main.querySelector('.alert-list')?.contains(document.activeElement)

  const renderQuarantine = (device) => {
    const q = device.quarantine
    if (!q) {
      replace(quarantine, h('p', { role: 'status' }, liftNotice ?? 'Not quarantined.'))
      return
    }
    const message = h('p', { role: 'status' })
    const lift = session.isOperator ? h('button', { type: 'button', class: 'button danger', id: 'lift-quarantine' }, 'Lift quarantine') : null
    if (lift) {
      on(lift, 'click', async () => {
        if (!window.confirm(`Lift the quarantine of ${device.id}? The broker will accept it again.`)) return
        if (lift.getAttribute('aria-disabled') === 'true') return
        lift.setAttribute('aria-disabled', 'true')
        try {
          await api.liftQuarantine(device.id)
          liftNotice = 'Quarantine lifted: the broker accepts the device again.'
          message.textContent = 'Lifting the quarantine…'
          document.getElementById('quarantine-title')?.focus()
          setTimeout(load, 1000)
        } catch (failure) {
          message.textContent = `Could not lift the quarantine: ${failure.message}`
          lift.removeAttribute('aria-disabled')
        }
      })
    }
    replace(quarantine,
      h('p', { class: 'bad' }, 'Quarantined: the broker refuses this device.'),
      definitionList([['Until', timeElement(q.until, { prefixAbsolute: true })], ['Reason', q.reason ?? '—'], ['By', q.by ?? '—']]),
      lift, message)
  }

  const renderDataTable = (telemetry) => {
    const rows = telemetry.slice(-TABLE_ROWS).reverse()
    const keys = [...new Set(rows.flatMap((point) => Object.keys(point.readings ?? {})))]
    if (rows.length === 0) {
      replace(dataTable, h('p', { class: 'muted' }, 'No telemetry yet.'))
      return
    }
    replace(dataTable, h('table', { class: 'data-table' },
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Device time'), h('th', { scope: 'col', class: 'num' }, 'seq'), h('th', { scope: 'col' }, 'Firmware'),
        keys.map((key) => h('th', { scope: 'col', class: 'num' }, `${READINGS[key]?.label ?? key} (${READINGS[key]?.unit ?? ''})`)))),
      h('tbody', {}, rows.map((point) => h('tr', {},
        h('th', { scope: 'row' }, new Date(point.ts).toLocaleTimeString('en-GB')),
        h('td', { class: 'num' }, String(point.seq)),
        h('td', { class: 'mono' }, point.fw ?? '—'),
        keys.map((key) => h('td', { class: 'num' }, point.readings?.[key] ?? '—')))))))
  }

  load()
  const timer = setInterval(load, REFRESH_MS)
  const unsubscribe = [
    subscribe('alert', ({ alert }) => { if (alert.deviceId === deviceId) alerts.put(alert) }),
    subscribe('resync', load),
  ]
  return () => {
    clearInterval(timer)
    controller?.abort()
    unsubscribe.forEach((stop) => stop())
    charts.destroy()
  }
}
