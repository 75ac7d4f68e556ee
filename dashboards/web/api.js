// The HTTP API client. The bearer token lives in sessionStorage (gone when
// the tab closes) and travels only in the Authorization header, never in a
// URL, where it would end up in logs and history.

const TOKEN_KEY = 'placeguard.token'
const ROLE_KEY = 'placeguard.role'

export const session = {
  get token () { return sessionStorage.getItem(TOKEN_KEY) },
  get role () { return sessionStorage.getItem(ROLE_KEY) },
  get isOperator () { return sessionStorage.getItem(ROLE_KEY) === 'operator' },
  save (token, role) {
    sessionStorage.setItem(TOKEN_KEY, token)
    sessionStorage.setItem(ROLE_KEY, role)
  },
  clear () {
    sessionStorage.removeItem(TOKEN_KEY)
    sessionStorage.removeItem(ROLE_KEY)
  },
}

/** An API error with the server's code and message (`{ statusCode, code, error, message }`). */
export class ApiError extends Error {
  constructor (status, body) {
    super(body?.message ?? `HTTP ${status}`)
    this.status = status
    this.code = body?.code ?? null
  }
}

const listeners = { unauthorized: [] }
/** Called when the server refuses the token (401): the app returns to the login form. */
export function onUnauthorized (listener) { listeners.unauthorized.push(listener) }

export async function request (method, path, { body, token = session.token, signal } = {}) {
  const headers = { Accept: 'application/json' }
  if (token) headers.Authorization = `Bearer ${token}`
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' })
  const text = await response.text()
  let parsed
  try { parsed = text ? JSON.parse(text) : null } catch { parsed = { message: text } }
  if (!response.ok) {
    const error = new ApiError(response.status, parsed)
    if (response.status === 401 && token === session.token) listeners.unauthorized.forEach((listener) => listener(error))
    throw error
  }
  return parsed
}

/** Builds a query string from the defined, non-empty values. */
export function query (params) {
  const search = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value))
  }
  const text = search.toString()
  return text ? `?${text}` : ''
}

export const api = {
  whoami: (token) => request('GET', '/api/whoami', { token }),
  fleet: (signal) => request('GET', '/api/fleet', { signal }),
  devices: (params, signal) => request('GET', `/api/devices${query(params)}`, { signal }),
  device: (id, signal) => request('GET', `/api/devices/${encodeURIComponent(id)}`, { signal }),
  alerts: (params, signal) => request('GET', `/api/alerts${query(params)}`, { signal }),
  acknowledge: (id, comment) => request('POST', `/api/alerts/${encodeURIComponent(id)}/ack`, { body: comment ? { comment } : {} }),
  resolve: (id, comment) => request('POST', `/api/alerts/${encodeURIComponent(id)}/resolve`, { body: comment ? { comment } : {} }),
  comment: (id, text) => request('POST', `/api/alerts/${encodeURIComponent(id)}/comments`, { body: { text } }),
  liftQuarantine: (deviceId) => request('DELETE', `/api/quarantine/${encodeURIComponent(deviceId)}`),
}
