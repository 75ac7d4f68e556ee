/**
 * The brokers a benchmark compares, each in its own process on 127.0.0.1
 * with the same fleet certificates: PlaceGuard (`placeguard broker`),
 * Debian's mosquitto as the baseline, and three references on Node — its TLS
 * floor, that floor with the MQTT codec, and aedes as shipped.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import type { PkiPaths } from '../../pki/index.ts'

export interface BrokerProcess {
  name: 'placeguard' | 'mosquitto' | 'node-tls-floor' | 'mqtt-codec-floor' | 'aedes'
  port: number
  pid: number
  /** Resident memory of the broker process, KiB. */
  rssKiB: () => number
  /** User + system CPU seconds used so far. */
  cpuSeconds: () => number
  stop: () => Promise<void>
}

const ROOT = join(import.meta.dirname, '..', '..')

/** `--brokers a,b,…` of a bench: the names, each one of `allowed`, or a clear error naming the one that is not. */
export function parseBrokerNames<T extends string> (value: string, allowed: readonly T[]): T[] {
  return value.split(',').map((name) => {
    if (!(allowed as readonly string[]).includes(name)) throw new Error(`--brokers takes ${allowed.join(', ')}, not ${name}`)
    return name as T
  })
}

/** Node flags for PlaceGuard's broker: `--node-flags` (comma-separated) as given, and `--cpu-prof` into `profileDir` when set. */
export function placeGuardNodeArgs (nodeFlags: string, profileDir: string | undefined, profileName: string): string[] {
  return [...nodeFlags.split(',').filter(Boolean), ...profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', profileName] : []]
}

/**
 * `settings`: further top-level config keys, e.g. `{ brokerState: 'memory' }`;
 * `nodeArgs`: flags for the broker's Node, e.g. `--cpu-prof` to profile it.
 */
export async function startPlaceGuard (dataDir: string, port: number, limits: Record<string, number>, settings: Record<string, string> = {}, nodeArgs: string[] = []): Promise<BrokerProcess> {
  const config = join(dataDir, 'bench-broker.yaml')
  writeFileSync(config, `logLevel: warn\n${Object.entries(settings).map(([k, v]) => `${k}: ${v}\n`).join('')}broker:\n${Object.entries(limits).map(([k, v]) => `  ${k}: ${v}`).join('\n')}\n`)
  const child = spawn(process.execPath, [...nodeArgs, join(ROOT, 'bin', 'placeguard.js'), 'broker', '--data-dir', dataDir,
    '--mqtt-port', String(port), '--mqtt-host', '127.0.0.1', '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] })
  return track('placeguard', child, port)
}

export async function startMosquitto (paths: PkiPaths, dir: string, port: number): Promise<BrokerProcess> {
  const config = join(dir, 'mosquitto.conf')
  // Started as root, mosquitto drops to its own user and cannot read 0600 keys: `user root` keeps it able to.
  writeFileSync(config, [
    'user root', 'persistence false', 'log_dest none',
    `listener ${port} 127.0.0.1`, `cafile ${paths.caCert}`, `certfile ${paths.serverCert}`, `keyfile ${paths.serverKey}`,
    `crlfile ${paths.crl}`, 'require_certificate true', 'use_identity_as_username true', 'allow_anonymous false',
    'max_queued_messages 0', '',
  ].join('\n'))
  const child = spawn('/usr/sbin/mosquitto', ['-c', config], { stdio: ['ignore', 'ignore', 'inherit'] })
  return track('mosquitto', child, port)
}

/** Node's TLS floor (lib/tls-floor-broker.ts): what a message costs a broker on Node before any broker work. */
export async function startTlsFloor (paths: PkiPaths, port: number): Promise<BrokerProcess> {
  return await startScriptBroker('node-tls-floor', 'tls-floor-broker.ts', paths, port)
}

/** The TLS floor with mqtt-packet parsing and writing every packet (lib/mqtt-codec-floor-broker.ts): MQTT's least cost on Node. */
export async function startCodecFloor (paths: PkiPaths, port: number): Promise<BrokerProcess> {
  return await startScriptBroker('mqtt-codec-floor', 'mqtt-codec-floor-broker.ts', paths, port)
}

/** aedes as shipped on the same TLS (lib/aedes-broker.ts): what aedes costs without PlaceGuard around it. */
export async function startAedes (paths: PkiPaths, port: number): Promise<BrokerProcess> {
  return await startScriptBroker('aedes', 'aedes-broker.ts', paths, port)
}

/** A reference broker in lib/, run as `node <script> <port> <ca> <server cert> <server key>`. */
async function startScriptBroker (name: BrokerProcess['name'], script: string, paths: PkiPaths, port: number): Promise<BrokerProcess> {
  const child = spawn(process.execPath, [join(import.meta.dirname, script), String(port), paths.caCert, paths.serverCert, paths.serverKey],
    { stdio: ['ignore', 'ignore', 'inherit'] })
  return await track(name, child, port)
}

async function track (name: BrokerProcess['name'], child: ChildProcess, port: number): Promise<BrokerProcess> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  await waitForPort(port, child)
  const pid = child.pid!
  return {
    name, port, pid,
    rssKiB: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]),
    cpuSeconds: () => {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
      return (Number(fields[11]) + Number(fields[12])) / 100
    },
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    },
  }
}

async function waitForPort (port: number, child: ChildProcess): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null) throw new Error(`broker exited with code ${child.exitCode}`)
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (open) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`broker did not open port ${port}`)
}

export { freePort } from '../../test/helpers/free-port.ts'
