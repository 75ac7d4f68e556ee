/**
 * deploy/haproxy/haproxy.cfg, the load balancer for several broker nodes:
 * HAProxy itself must accept it (`haproxy -c`), and it must keep what the
 * brokers rely on — TLS passed through (never terminated: the device's
 * certificate is its identity), no PROXY protocol header (the broker would
 * take it for a broken ClientHello), layer-4 checks only (a TLS check is a
 * refused handshake, i.e. a security event, at every interval).
 * test/agent-sim/load-balancer.test.ts runs the same settings live.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const FILE = join(resolve(import.meta.dirname, '..', '..'), 'deploy', 'haproxy', 'haproxy.cfg')

/** Section header ("backend brokers") → its directives, comments and blank lines left out. */
function sections (text: string): Map<string, string[]> {
  const result = new Map<string, string[]>()
  let current: string[] = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim()
    if (line === '') continue
    if (/^\S/.test(raw)) result.set(line, current = [])
    else current.push(line.replace(/\s+/g, ' '))
  }
  return result
}

describe('deploy/haproxy/haproxy.cfg', () => {
  const config = sections(readFileSync(FILE, 'utf8'))
  const all = [...config.values()].flat()

  it('is valid for HAProxy (broker-N names need not resolve here)', () => {
    const check = spawnSync('/usr/sbin/haproxy', ['-c', '-f', FILE], { encoding: 'utf8' })
    expect(check.status, check.stdout + check.stderr).toBe(0)
    expect(check.stderr).not.toMatch(/\[ALERT\]/)
  })

  it('passes MQTT over TLS through in TCP mode to broker-1..3, least connections first', () => {
    expect(config.get('defaults')).toEqual(expect.arrayContaining([
      'mode tcp', 'timeout connect 5s', 'timeout client 10m', 'timeout server 10m', 'option redispatch 1',
    ]))
    expect(config.get('frontend mqtt')).toContain('bind :8883')
    const backend = config.get('backend brokers')!
    expect(backend).toContain('balance leastconn')
    expect(backend.filter((line) => line.startsWith('server '))).toEqual(['server broker-1 broker-1:8883', 'server broker-2 broker-2:8883', 'server broker-3 broker-3:8883'])
    // Checked on each node's /healthz (its metrics port), never on the MQTT port.
    expect(backend.find((line) => line.startsWith('default-server '))).toMatch(/^default-server check port 8080 inter 2s fall 2 rise 2 /)
    expect(backend).toEqual(expect.arrayContaining(['option httpchk', 'http-check send meth GET uri /healthz', 'http-check expect status 200']))
  })

  it('neither terminates TLS, nor sends a PROXY header, nor checks over TLS', () => {
    for (const line of all) {
      expect(line).not.toMatch(/\b(ssl|crt|check-ssl|send-proxy|send-proxy-v2|check-send-proxy)\b/)
      expect(line).not.toMatch(/^mode http\b/)
    }
  })
})
