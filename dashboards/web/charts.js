// Telemetry charts with uPlot (served by the API at /vendor/uplot/). The
// library is loaded on the first device page only, so the fleet overview
// paints without it. Each chart has a text summary beside it: a chart
// alone says nothing to a screen reader.
import { h } from './dom.js'

export const READINGS = {
  level_cm: { label: 'Water level', unit: 'cm' },
  battery_v: { label: 'Battery', unit: 'V' },
  power_kw: { label: 'Power', unit: 'kW' },
  voltage_v: { label: 'Voltage', unit: 'V' },
  energy_kwh: { label: 'Energy meter', unit: 'kWh' },
  temp_c: { label: 'Temperature', unit: '°C' },
  humidity_pct: { label: 'Relative humidity', unit: '%' },
  co2_ppm: { label: 'CO₂', unit: 'ppm' },
}
const COLOURS = ['#0550ae', '#8a4600', '#116329', '#8250df']
const HEIGHT = 170

let loading = null
/** Loads uPlot's script and stylesheet once (same-origin files: the CSP allows them). */
export function loadUplot () {
  if (window.uPlot) return Promise.resolve(window.uPlot)
  loading ??= new Promise((resolve, reject) => {
    document.head.append(h('link', { rel: 'stylesheet', href: '/vendor/uplot/uPlot.min.css' }))
    const script = h('script', { src: '/vendor/uplot/uPlot.iife.min.js' })
    script.addEventListener('load', () => resolve(window.uPlot))
    script.addEventListener('error', () => {
      loading = null
      reject(new Error('could not load the chart library'))
    })
    document.head.append(script)
  })
  return loading
}

const number = new Intl.NumberFormat('en-GB', { maximumFractionDigits: 2 })

function summary (values, unit) {
  const finite = values.filter(Number.isFinite)
  if (finite.length === 0) return 'No readings yet.'
  const last = finite[finite.length - 1]
  return `Latest ${number.format(last)} ${unit}; over the last ${finite.length} messages min ${number.format(Math.min(...finite))}, max ${number.format(Math.max(...finite))} ${unit}.`
}

/**
 * A figure per reading; `update(telemetry)` redraws them. Keys come from
 * the telemetry itself (validated per kind by the collector).
 */
/** Room for the widest y-axis label (a meter reads 13,667.325 kWh), so none is clipped. */
function axisWidth (_self, values) {
  const longest = Math.max(4, ...(values ?? []).map((value) => String(value).length))
  return Math.ceil(longest * 7.5) + 18
}

const clock = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' })
const clockLegend = new Intl.DateTimeFormat('en-GB', { dateStyle: 'short', timeStyle: 'medium' })

/**
 * A figure per reading; `update(telemetry)` redraws them. Keys come from
 * the telemetry itself (validated per kind by the collector).
 */
export function createCharts (container) {
  const charts = new Map() // key → { plot, summaryElement, figure, plotArea }
  let uPlot = null
  let failed = null

  const widthOf = (chart) => Math.max(200, Math.floor(chart.plotArea.clientWidth))
  const resize = new ResizeObserver(() => {
    for (const chart of charts.values()) chart.plot?.setSize({ width: widthOf(chart), height: HEIGHT })
  })
  resize.observe(container)

  const plotFor = (chart, meta, index, data) => new uPlot({
    width: widthOf(chart),
    height: HEIGHT,
    scales: { x: { time: true } },
    cursor: { drag: { x: false, y: false } },
    series: [
      { label: 'Time', value: (_, seconds) => (seconds === null ? '—' : clockLegend.format(seconds * 1000)) },
      { label: `${meta.label} (${meta.unit})`, stroke: COLOURS[index % COLOURS.length], width: 2, points: { show: false } },
    ],
    axes: [
      { stroke: '#3d444d', values: (_, splits) => splits.map((seconds) => clock.format(seconds * 1000)) },
      { stroke: '#3d444d', size: axisWidth },
    ],
  }, data, chart.plotArea)

  const update = async (telemetry) => {
    const keys = [...new Set(telemetry.flatMap((point) => Object.keys(point.readings ?? {})))]
    if (keys.length === 0) {
      if (charts.size === 0) container.replaceChildren(h('p', { class: 'muted' }, 'No telemetry received yet.'))
      return
    }
    if (!uPlot && !failed) {
      try { uPlot = await loadUplot() } catch (error) { failed = error }
    }
    // First every figure, so the grid has its final layout before a chart measures its width.
    const fresh = []
    keys.forEach((key, index) => {
      if (charts.has(key)) return
      const meta = READINGS[key] ?? { label: key, unit: '' }
      const titleId = `chart-${key}`
      const plotArea = h('div', { class: 'plot', 'aria-hidden': 'true' })
      const summaryElement = h('p', { class: 'chart-summary' })
      const figure = h('figure', { class: 'chart', 'aria-labelledby': titleId },
        h('figcaption', { id: titleId }, `${meta.label} (${meta.unit || key})`), plotArea, summaryElement)
      if (charts.size === 0) container.replaceChildren()
      container.append(figure)
      charts.set(key, { plot: null, summaryElement, figure, plotArea, meta, index })
      fresh.push(key)
    })
    const times = telemetry.map((point) => point.ts / 1000)
    for (const key of keys) {
      const chart = charts.get(key)
      const values = telemetry.map((point) => point.readings?.[key] ?? null)
      if (fresh.includes(key)) {
        if (uPlot) chart.plot = plotFor(chart, chart.meta, chart.index, [times, values])
        else chart.plotArea.append(h('p', { class: 'muted' }, `Chart unavailable: ${failed?.message ?? 'no chart library'}.`))
      } else {
        chart.plot?.setData([times, values])
      }
      chart.summaryElement.textContent = summary(values, chart.meta.unit)
    }
  }

  return {
    update,
    destroy () {
      resize.disconnect()
      for (const { plot } of charts.values()) plot?.destroy()
      charts.clear()
    },
  }
}
