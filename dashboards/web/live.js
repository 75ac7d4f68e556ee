// What the live stream brings, for whichever view is showing: `fleet`
// (detail: the /api/fleet object), `alert` (detail: { change, alert }) and
// `resync` (the stream reconnected: re-read anything that may have been missed).
export const live = new EventTarget()

/** The latest fleet summary, from GET /api/fleet or the stream. */
export let latestFleet = null

export function publishFleet (fleet) {
  latestFleet = fleet
  live.dispatchEvent(new CustomEvent('fleet', { detail: fleet }))
}

/** Subscribes; returns the unsubscribe function (views call it when they leave). */
export function subscribe (type, listener) {
  const handler = (event) => listener(event.detail)
  live.addEventListener(type, handler)
  return () => live.removeEventListener(type, handler)
}
