// PlaceGuard's web dashboard: plain ES modules, no build step. The app
// signs in with a token, opens the live stream, and routes by the URL
// hash: #/ (fleet overview), #/devices/<id>, #/alerts.
import { api, onUnauthorized, session } from './api.js'
import { mountAlertsPage } from './alerts-page.js'
import { mountDevicePage } from './device-page.js'
import { formatNumber, on, refreshRelativeTimes } from './dom.js'
import { live, publishFleet, subscribe } from './live.js'
import { mountLogin } from './login.js'
import { mountOverview } from './overview.js'
import { openStream } from './stream.js'

const main = document.getElementById('main')
const fleetSize = document.getElementById('fleet-size')
const connection = document.getElementById('connection')
const connectionText = connection.querySelector('.text')
const nav = document.getElementById('nav')
const sessionBox = document.getElementById('session')
const roleText = document.getElementById('role')

let unmount = null
let stream = null

const CONNECTION_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  retrying: (seconds) => `Reconnecting in ${seconds} s`,
  unauthorized: 'Signed out',
  offline: 'Not connected',
}

function setConnection (state, detail) {
  connection.dataset.state = state
  const text = CONNECTION_TEXT[state]
  connectionText.textContent = typeof text === 'function' ? text(detail) : text
}

function showFleetSize (fleet) {
  fleetSize.textContent = `${formatNumber(fleet.devices)} ${fleet.devices === 1 ? 'device' : 'devices'}`
}

// Counts of open alerts change with every alert: re-read the summary soon
// after one (once per burst) rather than wait for the stream's 5 s tick.
let fleetTimer = null
function refreshFleetSoon () {
  if (fleetTimer) return
  fleetTimer = setTimeout(() => {
    fleetTimer = null
    if (session.token) api.fleet().then(publishFleet, () => {})
  }, 1000)
}

function route () {
  const hash = location.hash || '#/'
  const device = /^#\/devices\/([^/?]+)$/.exec(hash)
  if (device) return { name: 'device', id: decodeURIComponent(device[1]) }
  if (hash.startsWith('#/alerts')) return { name: 'alerts' }
  return { name: 'overview' }
}

function render ({ focus = true } = {}) {
  unmount?.()
  unmount = null
  const where = route()
  for (const link of nav.querySelectorAll('a')) {
    const current = link.dataset.route === where.name || (where.name === 'device' && link.dataset.route === 'overview')
    if (current) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
  }
  if (where.name === 'device') {
    unmount = mountDevicePage(main, where.id)
  } else if (where.name === 'alerts') {
    document.title = 'Alerts · PlaceGuard'
    unmount = mountAlertsPage(main)
  } else {
    document.title = 'Fleet overview · PlaceGuard'
    unmount = mountOverview(main)
  }
  // After navigating, put the keyboard and screen reader at the new page's heading.
  if (focus) document.getElementById('page-title')?.focus()
}

function signOut (message) {
  stream?.close()
  stream = null
  unmount?.()
  unmount = null
  session.clear()
  setConnection('offline')
  fleetSize.textContent = ''
  nav.hidden = true
  sessionBox.hidden = true
  document.title = 'Sign in · PlaceGuard'
  mountLogin(main, { message, onSignedIn: start })
}

async function start () {
  nav.hidden = false
  sessionBox.hidden = false
  roleText.textContent = session.isOperator ? 'Operator' : 'Viewer (read-only)'
  stream = openStream({
    token: session.token,
    onState: (state, detail) => {
      setConnection(state, detail)
      if (state === 'unauthorized') signOut('Your token is no longer accepted; sign in again.')
    },
    onOpen: () => live.dispatchEvent(new CustomEvent('resync')),
    onEvent: (name, data) => {
      if (name === 'fleet') publishFleet(data)
      else if (name === 'alert' && data?.alert) {
        live.dispatchEvent(new CustomEvent('alert', { detail: data }))
        refreshFleetSoon()
      }
    },
  })
  // The first view asks for the fleet summary now, not at the stream's first tick.
  api.fleet().then(publishFleet, () => {})
  render({ focus: false })
}

subscribe('fleet', showFleetSize)
onUnauthorized(() => signOut('Your session has ended; sign in again.'))
on(window, 'hashchange', () => { if (session.token) render() })
on(document.getElementById('logout'), 'click', () => signOut())
on(document.querySelector('.skip-link'), 'click', (event) => {
  event.preventDefault()
  ;(document.getElementById('page-title') ?? main).focus()
})

setInterval(() => refreshRelativeTimes(main), 5000)

if (session.token) start()
else signOut()
