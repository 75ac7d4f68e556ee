/**
 * The broker URLs a simulated fleet connects to: one (a single broker, or a
 * load balancer in front of several), or a list of broker nodes. Device i
 * starts on url[i % n] and moves along the list when a connection attempt
 * fails (sim-device.ts).
 */
import { invalidInput } from '../shared/errors.ts'

export interface BrokerTarget {
  url: string
  /** As mqtt.js and tls.connect want them: the hostname without IPv6 brackets. */
  hostname: string
  port: number
}

const MQTTS_HINT = 'devices speak MQTT over mutual TLS, e.g. mqtts://localhost:8883'

/**
 * Checks a list of broker URLs; `field` names the option at fault
 * (`--broker`, `brokerUrls`). Each must be mqtts:// with a host; none may be
 * listed twice (that would quietly send that node twice its share).
 */
export function parseBrokerUrls (field: string, urls: readonly string[]): BrokerTarget[] {
  if (urls.length === 0) throw invalidInput(field, 'needs at least one broker URL', MQTTS_HINT)
  const seen = new Set<string>()
  return urls.map((url) => {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw invalidInput(field, `"${url}" is not a URL`, MQTTS_HINT)
    }
    if (parsed.protocol !== 'mqtts:') throw invalidInput(field, `"${url}" is not an mqtts:// URL`, MQTTS_HINT)
    if (parsed.hostname === '') throw invalidInput(field, `"${url}" names no host`, MQTTS_HINT)
    const target = { url, hostname: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port: parsed.port === '' ? 8883 : Number(parsed.port) }
    const key = `${target.hostname.toLowerCase()}:${target.port}`
    if (seen.has(key)) throw invalidInput(field, `"${url}" is listed twice`, 'give each broker node once')
    seen.add(key)
    return target
  })
}
