// The live stream (/api/stream, Server-Sent Events). EventSource cannot send
// an Authorization header, so this reads the response with fetch() and
// parses the event stream itself (WHATWG HTML, "Parsing an event stream"),
// reconnecting with exponential back-off and full jitter.

const MIN_RETRY_MS = 1000
const MAX_RETRY_MS = 30_000

/** Feeds text chunks in, calls onEvent({ event, data, id }) per dispatched event. */
export function createSseParser (onEvent) {
  let buffer = ''
  let event = ''
  let data = []
  let id = null
  const line = (text) => {
    if (text === '') {
      if (data.length > 0) onEvent({ event: event || 'message', data: data.join('\n'), id })
      event = ''
      data = []
      return
    }
    if (text.startsWith(':')) return // a comment: keep-alive
    const colon = text.indexOf(':')
    const field = colon === -1 ? text : text.slice(0, colon)
    let value = colon === -1 ? '' : text.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') event = value
    else if (field === 'data') data.push(value)
    else if (field === 'id') id = value
  }
  return (chunk) => {
    buffer += chunk
    // Lines end in \n or \r\n (a lone \r, which the spec also allows, is not
    // used by PlaceGuard's server); the last piece is incomplete until its \n.
    const lines = buffer.split('\n')
    buffer = lines.pop() ?? ''
    for (const text of lines) line(text.endsWith('\r') ? text.slice(0, -1) : text)
  }
}

/**
 * Keeps a stream open while the page lives. Handlers: onEvent(name, data),
 * onState('connecting'|'live'|'retrying'|'unauthorized', detail),
 * onOpen() after every (re)connect (to re-read what may have been missed).
 */
export function openStream ({ token, onEvent, onState, onOpen }) {
  const controller = new AbortController()
  let attempt = 0
  const run = async () => {
    while (!controller.signal.aborted) {
      onState('connecting')
      try {
        const response = await fetch('/api/stream', {
          headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' },
          signal: controller.signal,
          cache: 'no-store',
        })
        if (response.status === 401) {
          onState('unauthorized')
          return
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`)
        attempt = 0
        onState('live')
        onOpen()
        const parse = createSseParser(({ event, data }) => {
          let parsed
          try { parsed = JSON.parse(data) } catch { return }
          onEvent(event, parsed)
        })
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          parse(value)
        }
      } catch (error) {
        if (controller.signal.aborted) return
        console.error('live stream:', error.message)
      }
      if (controller.signal.aborted) return
      const ceiling = Math.min(MAX_RETRY_MS, MIN_RETRY_MS * 2 ** attempt++)
      const delay = Math.max(MIN_RETRY_MS / 2, Math.random() * ceiling)
      onState('retrying', Math.ceil(delay / 1000))
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay)
        controller.signal.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
      })
    }
  }
  run()
  return { close: () => controller.abort() }
}
