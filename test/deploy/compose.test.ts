/**
 * docker-compose.yml as Debian's docker-compose 1.29 reads it
 * (`docker-compose config`): services, healthchecks, the load and cluster
 * profiles, images, ports, volumes, and secrets that come only from the env
 * file. There is no Docker engine here; `config` needs none. The scripts
 * the services run (PKI one-shot, CRL publisher, a node's PKI copy, the
 * password checks in front of Redis and PostgreSQL), the Redis service's
 * command line and PostgreSQL's healthcheck run here for real.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import { parse as parseYaml } from 'yaml'
import { loadConfig } from '../../app/config.ts'
import { clusterKeys } from '../../cluster/index.ts'
import { freePort } from '../helpers/free-port.ts'
import { startPostgres } from '../helpers/postgres.ts'

const ROOT = resolve(import.meta.dirname, '..', '..')
const COMPOSE_FILE = join(ROOT, 'docker-compose.yml')

/** What .env must provide; a value the test can recognise in the rendered file. */
const SECRETS = {
  INFLUXDB_ADMIN_PASSWORD: 'test-influx-password-7f3a',
  INFLUXDB_ADMIN_TOKEN: 'test-influx-token-91c2',
  GRAFANA_INFLUX_PASSWORD: 'test-grafana-influx-password-5d10',
  GRAFANA_ADMIN_PASSWORD: 'test-grafana-admin-password-c4e8',
  PLACEGUARD_API_TOKENS: 'test-operator-token-2b6f:operator,test-viewer-token-8a01:viewer',
}
/**
 * What .env must provide for the cluster profile alone. Compose reads every
 * service, profile or not, so these cannot be ${VAR:?…} without being
 * demanded of the single broker too: Redis and PostgreSQL refuse an empty
 * one at start instead. Hex and dashes only: they go into URLs.
 */
const CLUSTER_SECRETS = {
  PLACEGUARD_REDIS_PASSWORD: 'test-redis-password-6e9d',
  PLACEGUARD_POSTGRES_PASSWORD: 'test-postgres-password-3c71',
}
const NODES = ['broker-1', 'broker-2', 'broker-3']
const COLLECTORS = ['collector-cluster', 'collector-cluster-2']
const CLUSTER_SERVICES = ['redis', 'postgres', 'pki-cluster', 'haproxy', ...NODES, ...COLLECTORS]
const PLACEGUARD_SERVICES = ['pki', 'pki-crl', 'broker', 'collector', 'sim', 'pki-cluster', ...NODES, ...COLLECTORS]
/** Services that run once and exit: no healthcheck, and their dependants wait for them to complete. */
const ONE_SHOTS = ['influxdb-init', 'pki']

interface Healthcheck { test?: string[] | string, disable?: boolean }
interface Service {
  image?: string
  build?: { context: string }
  command?: string[]
  entrypoint?: string[]
  user?: string
  environment?: Record<string, string>
  healthcheck?: Healthcheck
  profiles?: string[]
  ports?: Array<string | { published: number | string, target: number, host_ip?: string }>
  volumes?: string[]
  depends_on?: Record<string, { condition: string }>
  stop_grace_period?: string
}
interface ComposeConfig { services: Record<string, Service>, volumes: Record<string, unknown> }

let dir: string
let config: ComposeConfig

function composeConfig (env: Record<string, string>, options: string[] = []): { status: number | null, stdout: string, stderr: string } {
  const envFile = join(dir, `env-${Object.keys(env).length}-${Math.random().toString(36).slice(2)}`)
  writeFileSync(envFile, Object.entries(env).map(([name, value]) => `${name}=${value}\n`).join(''))
  // A clean environment: only the env file may supply the variables.
  const result = spawnSync('docker-compose', ['--env-file', envFile, '-f', COMPOSE_FILE, ...options, 'config'], {
    cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
  })
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error('docker-compose is not installed: these tests validate docker-compose.yml with Debian\'s docker-compose 1.29 ' +
      '(apt-get install docker-compose; .ci/run installs it). No Docker engine is needed.')
  }
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

function ports (service: Service): Array<{ host?: string, published: number, target: number }> {
  return (service.ports ?? []).map((port) => {
    if (typeof port !== 'string') return { ...(port.host_ip ? { host: port.host_ip } : {}), published: Number(port.published), target: port.target }
    const [spec] = port.split('/')
    const parts = spec!.split(':')
    const [host, published, target] = parts.length === 3 ? parts : [undefined, ...parts]
    return { ...(host ? { host } : {}), published: Number(published), target: Number(target) }
  })
}

/** SIGTERM, then waits for the exit (redis-server writes its files on the way out). */
async function stopProcess (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

/**
 * Runs a service's password check (`/bin/sh -c <check> <name> <command…>`)
 * here with `env`. The image's docker-entrypoint.sh it hands over to is
 * not here: a directory first on PATH holds one that runs its arguments,
 * as the images' do for a command they do not know.
 */
function runPasswordCheck (service: Service, env: Record<string, string>, command: string[]): ReturnType<typeof spawnSync> {
  const bin = join(dir, 'entrypoint-bin')
  mkdirSync(bin, { recursive: true })
  writeFileSync(join(bin, 'docker-entrypoint.sh'), '#!/bin/sh\nexec "$@"\n', { mode: 0o755 })
  const [shell, flag, script, name] = service.entrypoint!
  expect([shell, flag]).toEqual(['/bin/sh', '-c'])
  return spawnSync(shell!, [flag!, script!.replaceAll('$$', '$'), name!, ...command], {
    encoding: 'utf8', env: { PATH: `${bin}${delimiter}${process.env.PATH ?? '/usr/bin:/bin'}`, ...env },
  })
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'placeguard-compose-'))
  const result = composeConfig({ ...SECRETS, ...CLUSTER_SECRETS })
  expect(result.stderr).not.toMatch(/ERROR/)
  expect(result.status).toBe(0)
  config = parseYaml(result.stdout) as ComposeConfig
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('docker-compose.yml', () => {
  // docker-compose 1.29's `config` lists every service, whatever its profile.
  it('runs InfluxDB, Grafana, the PKI, the broker and the collector, the simulator, and the cluster variant', () => {
    expect(Object.keys(config.services).sort()).toEqual(
      ['broker', 'collector', 'grafana', 'influxdb', 'influxdb-init', 'pki', 'pki-crl', 'sim', ...CLUSTER_SERVICES].sort())
  })

  it('gives every long-running service a healthcheck; only the one-shots have none', () => {
    for (const [name, service] of Object.entries(config.services)) {
      if (ONE_SHOTS.includes(name)) {
        expect(service.healthcheck, `${name} runs once and exits`).toBeUndefined()
        continue
      }
      const test = service.healthcheck?.test
      expect(test, `${name} has a healthcheck`).toBeDefined()
      expect(service.healthcheck?.disable, name).not.toBe(true)
      expect(Array.isArray(test) ? test[0] : test, name).not.toBe('NONE')
    }
  })

  it('starts the simulator only under the load profile, and the cluster variant only under the cluster profile', () => {
    expect(config.services.sim!.profiles).toEqual(['load'])
    for (const name of CLUSTER_SERVICES) expect(config.services[name]!.profiles, name).toEqual(['cluster'])
    for (const [name, service] of Object.entries(config.services)) {
      if (name !== 'sim' && !CLUSTER_SERVICES.includes(name)) expect(service.profiles, `${name} starts by default`).toBeUndefined()
    }
    expect(config.services.sim!.command).toEqual(expect.arrayContaining(['sim', '--devices', '1000', '--broker', 'mqtts://broker:8883', '--duration', '0']))
  })

  it('uses influxdb:2.7, a pinned Grafana, and PlaceGuard\'s own image built from this repository', () => {
    expect(config.services.influxdb!.image).toBe('influxdb:2.7')
    expect(config.services['influxdb-init']!.image).toBe('influxdb:2.7')
    expect(config.services.grafana!.image).toMatch(/^grafana\/grafana(-oss)?:\d+\.\d+\.\d+$/)
    for (const name of PLACEGUARD_SERVICES) {
      expect(config.services[name]!.build?.context, name).toBe(ROOT)
      expect(config.services[name]!.image, name).toBe('placeguard:local')
    }
  })

  it('sets InfluxDB up on first run with a retention, and points the collector and Grafana at it', () => {
    const influx = config.services.influxdb!.environment!
    expect(influx.DOCKER_INFLUXDB_INIT_MODE).toBe('setup')
    expect(influx.DOCKER_INFLUXDB_INIT_RETENTION).toMatch(/^\d+[hdw]$/)
    const collector = config.services.collector!.environment!
    expect(collector.PLACEGUARD_INFLUX_URL).toBe('http://influxdb:8086')
    expect(collector.PLACEGUARD_INFLUX_ORG).toBe(influx.DOCKER_INFLUXDB_INIT_ORG)
    expect(collector.PLACEGUARD_INFLUX_BUCKET).toBe(influx.DOCKER_INFLUXDB_INIT_BUCKET)
    expect(collector.PLACEGUARD_INFLUX_TOKEN).toBe(influx.DOCKER_INFLUXDB_INIT_ADMIN_TOKEN)
    expect(collector.PLACEGUARD_HTTP_HOST).toBe('0.0.0.0')
    expect(config.services.grafana!.environment!.PLACEGUARD_INFLUX_BUCKET).toBe(influx.DOCKER_INFLUXDB_INIT_BUCKET)
    const init = config.services['influxdb-init']!.environment!
    expect(init.INFLUX_HOST).toBe('http://influxdb:8086')
    expect(init.INFLUX_TOKEN).toBe(influx.DOCKER_INFLUXDB_INIT_ADMIN_TOKEN)
    expect(init.INFLUX_ORG).toBe(influx.DOCKER_INFLUXDB_INIT_ORG)
    expect(init.PLACEGUARD_INFLUX_BUCKET).toBe(influx.DOCKER_INFLUXDB_INIT_BUCKET)
    expect(config.services.grafana!.environment!.GRAFANA_INFLUX_PASSWORD).toBe(init.GRAFANA_INFLUX_PASSWORD)
    expect(config.services.grafana!.environment!.GRAFANA_INFLUX_USERNAME).toBe(init.GRAFANA_INFLUX_USERNAME)
  })

  // influxdata-docker #542: a failing /docker-entrypoint-initdb.d script makes
  // the 2.7 entrypoint delete the data but keep the CLI config, and every
  // restart then fails with `config name "default" already exists`.
  it('runs no init script inside InfluxDB: Grafana\'s login comes from a one-shot after InfluxDB is healthy', () => {
    const influx = config.services.influxdb!
    expect(influx.volumes!.some((volume) => volume.includes('/docker-entrypoint-initdb.d')), 'no init scripts mounted').toBe(false)
    expect(Object.keys(influx.environment!).filter((name) => name.startsWith('GRAFANA_'))).toEqual([])
    const init = config.services['influxdb-init']!
    expect(init.entrypoint).toEqual(['/bin/bash', '/placeguard-init/grafana-reader.sh'])
    expect(init.volumes).toEqual([`${ROOT}/dashboards/grafana/influxdb-init:/placeguard-init:ro`])
    expect(init.user, 'not root').toBe('influxdb')
    expect(ports(init)).toEqual([])
  })

  // While the first-run setup runs, the CLI config can point at the
  // temporary server on :9999, and a bare `influx ping` passes too early.
  it('checks InfluxDB\'s health on port 8086 by address', () => {
    expect(config.services.influxdb!.healthcheck!.test).toEqual(['CMD', 'influx', 'ping', '--host', 'http://localhost:8086'])
  })

  it('publishes the broker to the network and the plain-HTTP services on loopback only', () => {
    expect(ports(config.services.broker!)).toEqual([{ published: 8883, target: 8883 }])
    expect(ports(config.services.collector!)).toEqual([{ host: '127.0.0.1', published: 8080, target: 8080 }])
    expect(ports(config.services.grafana!)).toEqual([{ host: '127.0.0.1', published: 3000, target: 3000 }])
    expect(ports(config.services.influxdb!)).toEqual([{ host: '127.0.0.1', published: 8086, target: 8086 }])
    expect(ports(config.services.sim!)).toEqual([])
    // The cluster variant: devices reach HAProxy, the API the cluster's collector; nothing else.
    expect(ports(config.services.haproxy!)).toEqual([{ published: 8883, target: 8883 }])
    expect(ports(config.services['collector-cluster']!)).toEqual([{ host: '127.0.0.1', published: 8080, target: 8080 }])
    expect(ports(config.services['collector-cluster-2']!)).toEqual([{ host: '127.0.0.1', published: 8081, target: 8080 }])
    for (const name of ['redis', 'postgres', 'pki-cluster', ...NODES]) expect(ports(config.services[name]!), name).toEqual([])
  })

  it('keeps state in named volumes and mounts the Grafana provisioning from the repository', () => {
    expect(Object.keys(config.volumes).sort()).toEqual(['broker-1-data', 'broker-2-data', 'broker-3-data', 'broker-data', 'collector-cluster-2-data', 'grafana-data',
      'influxdb-config', 'influxdb-data', 'node-pki', 'pki-public', 'placeguard-data', 'postgres-data', 'redis-data'])
    for (const name of ['pki', 'collector', 'sim', 'collector-cluster']) expect(config.services[name]!.volumes, name).toEqual(['placeguard-data:/data:rw'])
    expect(config.services['collector-cluster-2']!.volumes).toEqual(['collector-cluster-2-data:/data:rw'])
    expect(config.services.redis!.volumes).toEqual(['redis-data:/data:rw'])
    expect(config.services.postgres!.volumes).toEqual(['postgres-data:/var/lib/postgresql/data:rw'])
    expect(config.services.influxdb!.volumes).toContain('influxdb-data:/var/lib/influxdb2:rw')
    const binds = Object.values(config.services).flatMap((service) => service.volumes ?? []).filter((volume) => volume.startsWith('/'))
    expect(binds).toEqual(expect.arrayContaining([
      `${ROOT}/dashboards/grafana/provisioning:/etc/grafana/provisioning:ro`,
      `${ROOT}/dashboards/grafana/dashboards:/etc/grafana/dashboards/placeguard:ro`,
      `${ROOT}/dashboards/grafana/influxdb-init:/placeguard-init:ro`,
      `${ROOT}/deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro`,
    ]))
    for (const bind of binds) {
      expect(bind, 'bind mounts are read-only').toMatch(/:ro$/)
      expect(existsSync(bind.split(':')[0]!), bind).toBe(true)
    }
  })

  it('starts each service after what it needs', () => {
    const dependsOn = (name: string) => Object.fromEntries(Object.entries(config.services[name]!.depends_on ?? {}).map(([on, { condition }]) => [on, condition]))
    expect(dependsOn('pki-crl')).toEqual({ pki: 'service_completed_successfully' })
    expect(dependsOn('broker')).toEqual({ 'pki-crl': 'service_healthy' })
    expect(dependsOn('collector')).toEqual({ broker: 'service_healthy', influxdb: 'service_healthy' })
    expect(dependsOn('influxdb-init')).toEqual({ influxdb: 'service_healthy' })
    expect(dependsOn('grafana')).toEqual({ 'influxdb-init': 'service_completed_successfully' })
    expect(dependsOn('sim')).toEqual({ broker: 'service_healthy' })
    expect(dependsOn('redis')).toEqual({})
    expect(dependsOn('pki-cluster')).toEqual({ pki: 'service_completed_successfully', redis: 'service_healthy', postgres: 'service_healthy' })
    for (const node of NODES) expect(dependsOn(node), node).toEqual({ 'pki-cluster': 'service_healthy', redis: 'service_healthy' })
    // Not after the nodes' health: HAProxy takes each node in as its own check passes.
    expect(dependsOn('haproxy')).toEqual(Object.fromEntries(NODES.map((node) => [node, 'service_started'])))
    expect(dependsOn('postgres')).toEqual({})
    for (const collector of COLLECTORS) expect(dependsOn(collector), collector).toEqual({ redis: 'service_healthy', postgres: 'service_healthy', influxdb: 'service_healthy' })
  })

  it('runs the pki one-shot idempotently: a second start keeps the CA and succeeds', () => {
    const pki = config.services.pki!
    expect(pki.entrypoint).toEqual(['/bin/sh', '-c'])
    const script = pki.command![0]!.replaceAll('$$', '$') // compose's escape for a literal $
    expect(script).toContain('pki init --server-name broker')
    const data = join(dir, 'data')
    // The same script on this machine, with the data directory moved and Node 24 first on PATH.
    const run = () => spawnSync('/bin/sh', ['-c', script.replaceAll('/data', data)], {
      cwd: ROOT, encoding: 'utf8',
      env: { PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}`, PLACEGUARD_DATA_DIR: data, PLACEGUARD_BROKER_DNS_NAMES: 'mqtt.example.org' },
    })
    const first = run()
    expect(first.status, first.stderr).toBe(0)
    const ca = readFileSync(join(data, 'pki', 'ca.crt'), 'utf8')
    const second = run()
    expect(second.status, second.stderr).toBe(0)
    expect(readFileSync(join(data, 'pki', 'ca.crt'), 'utf8')).toBe(ca)
    const names = spawnSync('openssl', ['x509', '-in', join(data, 'pki', 'server.crt'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' })
    expect(names.stdout).toContain('DNS:broker')
    expect(names.stdout).toContain('DNS:mqtt.example.org')
  })

  // pki/fleet-pki.ts counts the PKI as initialised only when ca.key exists
  // (written last by `pki init`): the one-shot must not take a ca.crt alone
  // for a CA and let the broker start on a PKI nothing can sign with.
  it('does not take a ca.crt without ca.key for a fleet CA: the pki one-shot fails, naming the problem', () => {
    const script = config.services.pki!.command![0]!.replaceAll('$$', '$')
    const data = join(dir, 'data-half')
    const env = { PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}`, PLACEGUARD_DATA_DIR: data, PLACEGUARD_BROKER_DNS_NAMES: '' }
    const init = spawnSync(process.execPath, ['bin/placeguard.js', '--data-dir', data, 'pki', 'init'], { cwd: ROOT, encoding: 'utf8', env })
    expect(init.status, init.stderr).toBe(0)
    rmSync(join(data, 'pki', 'ca.key'))
    const run = spawnSync('/bin/sh', ['-c', script.replaceAll('/data', data)], { cwd: ROOT, encoding: 'utf8', env })
    expect(run.status, 'a half PKI is not skipped as initialised').not.toBe(0)
    expect(run.stderr).toContain('PG_ERR_PKI_CA_EXISTS')
  })

  it('keeps the CA key away from the broker: its PKI files come read-only from pki-public, its state from its own volume', () => {
    expect(config.services.broker!.volumes!.sort()).toEqual(['broker-data:/data:rw', 'pki-public:/data/pki:ro'])
    const withKey = Object.entries(config.services).filter(([, service]) => (service.volumes ?? []).some((volume) => volume.startsWith('placeguard-data:'))).map(([name]) => name).sort()
    // The collector reads the inventory, which FleetPki opens only where ca.key is (see docs/deploy.md).
    expect(withKey).toEqual(['collector', 'collector-cluster', 'pki', 'pki-cluster', 'pki-crl', 'sim'])
    expect(config.services['pki-crl']!.volumes!.sort()).toEqual(['pki-public:/pki-public:rw', 'placeguard-data:/data:rw'])
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')
    expect(dockerfile, 'a new pki-public volume must be writable by the node user').toMatch(/chown node:node [^\n]*\/pki-public/)
  })

  it('publishes the PKI without ca.key to pki-public, and a revocation reaches the copy', async () => {
    const crlJob = config.services['pki-crl']!
    expect(crlJob.entrypoint).toEqual(['/bin/sh', '-c'])
    const data = join(dir, 'data-crl')
    const published = join(dir, 'pki-public')
    const script = crlJob.command![0]!.replaceAll('$$', '$').replaceAll('/pki-public', published).replaceAll('/data', data)
    const env = { PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}`, PLACEGUARD_DATA_DIR: data }
    const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/placeguard.js', '--data-dir', data, ...args], { cwd: ROOT, encoding: 'utf8', env })
    expect(cli('pki', 'init').status).toBe(0)
    expect(cli('pki', 'issue', 'flood-00001', '--kind', 'flood', '--site', 'riverside').status).toBe(0)
    spawnSync('mkdir', ['-p', published])
    const job = spawn('/bin/sh', ['-c', script], { cwd: ROOT, env, detached: true, stdio: 'ignore' })
    /** Polls until `done` holds; a generous deadline, not a timing assertion. */
    const until = async (done: () => boolean) => {
      for (let i = 0; i < 600 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 100))
      return done()
    }
    const same = (file: string) => existsSync(join(published, file)) && readFileSync(join(published, file), 'utf8') === readFileSync(join(data, 'pki', file), 'utf8')
    try {
      // The ticket secret goes with the server key: every broker resumes devices' sessions with it.
      expect(await until(() => ['ca.crt', 'server.crt', 'server.key', 'tls-ticket.key', 'crl.pem'].every(same))).toBe(true)
      expect(readdirSync(published).sort()).toEqual(['ca.crt', 'crl.pem', 'server.crt', 'server.key', 'tls-ticket.key'])
      const before = readFileSync(join(published, 'crl.pem'), 'utf8')
      expect(cli('pki', 'revoke', 'flood-00001').status).toBe(0)
      expect(await until(() => readFileSync(join(published, 'crl.pem'), 'utf8') !== before && same('crl.pem'))).toBe(true)
      expect(readdirSync(published)).not.toContain('ca.key')
    } finally {
      process.kill(-job.pid!, 'SIGTERM')
    }
  }, 120_000)

  it('refuses a Grafana InfluxDB password outside 8–72 characters before asking InfluxDB, naming the variable', () => {
    const init = config.services['influxdb-init']!
    const script = init.entrypoint![1]!.replace('/placeguard-init', join(ROOT, 'dashboards', 'grafana', 'influxdb-init'))
    for (const password of ['seven77', 'x'.repeat(73)]) {
      const run = spawnSync('/bin/bash', [script], {
        encoding: 'utf8', env: { ...init.environment, GRAFANA_INFLUX_PASSWORD: password, PATH: process.env.PATH ?? '/usr/bin:/bin' },
      })
      expect(run.status, `${password.length} characters`).not.toBe(0)
      expect(run.stderr).toContain('GRAFANA_INFLUX_PASSWORD')
      expect(run.stderr).toContain('8 to 72')
    }
  })
})

// The cluster profile as `docker-compose --profile cluster config` renders it.
describe('docker-compose.yml, cluster profile', () => {
  let cluster: ComposeConfig
  const redisUrl = `redis://:${CLUSTER_SECRETS.PLACEGUARD_REDIS_PASSWORD}@redis:6379`
  const databaseUrl = `postgres://placeguard:${CLUSTER_SECRETS.PLACEGUARD_POSTGRES_PASSWORD}@postgres:5432/placeguard`
  const service = (name: string) => cluster.services[name]!
  const dependsOn = (name: string) => Object.keys(cluster.services[name]!.depends_on ?? {})
  /** `names` and everything they pull in through depends_on: what `docker compose up <names>` starts. */
  const startedBy = (names: string[]) => {
    const started = new Set<string>()
    const pending = [...names]
    while (pending.length > 0) {
      const name = pending.pop()!
      expect(cluster.services[name], `service ${name}`).toBeDefined()
      if (!started.has(name)) pending.push(...dependsOn(name))
      started.add(name)
    }
    return [...started].sort()
  }
  /** The volumes a service mounts, by name (bind mounts left out). */
  const namedVolumes = (name: string) => (service(name).volumes ?? []).filter((volume) => !volume.startsWith('/')).map((volume) => volume.split(':')[0]!)

  beforeAll(() => {
    const result = composeConfig({ ...SECRETS, ...CLUSTER_SECRETS }, ['--profile', 'cluster'])
    expect(result.stderr).not.toMatch(/ERROR/)
    expect(result.status, result.stderr).toBe(0)
    cluster = parseYaml(result.stdout) as ComposeConfig
  })

  it('validates, with Redis, PostgreSQL, HAProxy, three nodes, two collectors and the PKI publisher beside InfluxDB and Grafana', () => {
    for (const name of [...CLUSTER_SERVICES, 'influxdb', 'influxdb-init', 'grafana', 'pki']) expect(cluster.services[name], name).toBeDefined()
  })

  it('starts from the documented command without the single broker, its collector or pki-crl', () => {
    const command = /docker compose --profile cluster up -d ([a-z0-9 -]+)/
    const documented = command.exec(readFileSync(join(ROOT, 'docs', 'deploy.md'), 'utf8'))?.[1]
    expect(documented, 'docs/deploy.md gives the command').toBeDefined()
    expect(command.exec(readFileSync(COMPOSE_FILE, 'utf8'))?.[1], 'docker-compose.yml gives the same').toBe(documented)
    expect(command.exec(readFileSync(join(ROOT, 'docs', 'cluster.md'), 'utf8'))?.[1], 'docs/cluster.md gives the same').toBe(documented)
    expect(startedBy(documented!.trim().split(/\s+/))).toEqual([...CLUSTER_SERVICES, 'grafana', 'influxdb', 'influxdb-init', 'pki'].sort())
  })

  // Services without a profile always start: a bare `--profile cluster up`
  // starts the single broker and collector too. Their ports then collide with
  // HAProxy's and the cluster collector's, so the two variants cannot both run.
  it('gives the single and the cluster variant the same published ports, so they never run side by side', () => {
    expect(ports(service('haproxy'))).toEqual(ports(service('broker')))
    expect(ports(service('collector-cluster'))).toEqual(ports(service('collector')))
  })

  it('runs Redis 7 with the append-only file fsynced every second, a password from .env, no published port, and its own volume', () => {
    const redis = service('redis')
    expect(redis.image).toMatch(/^redis:7\.\d+(\.\d+)?$/)
    const args = redis.command!
    const option = (name: string) => args[args.indexOf(name) + 1]
    expect(args[0]).toBe('redis-server')
    expect(option('--appendonly')).toBe('yes')
    expect(option('--appendfsync')).toBe('everysec')
    expect(option('--maxmemory-policy')).toBe('noeviction')
    expect(option('--requirepass')).toBe(CLUSTER_SECRETS.PLACEGUARD_REDIS_PASSWORD)
    expect(redis.environment!.REDISCLI_AUTH).toBe(CLUSTER_SECRETS.PLACEGUARD_REDIS_PASSWORD)
    expect(ports(redis)).toEqual([])
    expect(redis.volumes).toEqual(['redis-data:/data:rw'])
  })

  it('runs Redis\' command line for real, through its password check: a password is required, the AOF is on, and the healthcheck passes only with the password', async () => {
    const redis = service('redis')
    const port = await freePort()
    const data = join(dir, 'redis')
    mkdirSync(data)
    // The check's script, then the image's entrypoint (here: one that runs its arguments), then redis-server, as in the container.
    expect(runPasswordCheck(redis, { REDISCLI_AUTH: redis.environment!.REDISCLI_AUTH! }, ['true']).status, 'the check lets a password through').toBe(0)
    const [shell, flag, script, name] = redis.entrypoint!
    const bin = join(dir, 'entrypoint-bin')
    const server = spawn(shell!, [flag!, script!.replaceAll('$$', '$'), name!, ...redis.command!, '--port', String(port), '--bind', '127.0.0.1', '--dir', data], {
      stdio: 'ignore', env: { PATH: `${bin}${delimiter}${process.env.PATH ?? '/usr/bin:/bin'}`, REDISCLI_AUTH: redis.environment!.REDISCLI_AUTH! },
    })
    const cli = (env: Record<string, string>, ...args: string[]) => spawnSync('redis-cli', ['-p', String(port), ...args], {
      encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    })
    const healthcheck = (env: Record<string, string>) => spawnSync('/bin/sh', ['-c', redis.healthcheck!.test![1]!.replace('redis-cli', `redis-cli -p ${port}`)], {
      encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    })
    try {
      for (let i = 0; i < 100 && !/NOAUTH|PONG/.test(cli({}, 'ping').stdout); i++) await new Promise((resolve) => setTimeout(resolve, 50))
      expect(cli({}, 'ping').stdout, 'no password, no access').toMatch(/NOAUTH/)
      expect(healthcheck({}).status, 'the healthcheck fails without the password').not.toBe(0)
      expect(healthcheck({ REDISCLI_AUTH: 'wrong' }).status, 'and with a wrong one').not.toBe(0)
      expect(healthcheck({ REDISCLI_AUTH: redis.environment!.REDISCLI_AUTH! }).status, 'and passes with the service\'s').toBe(0)
      expect(cli({ REDISCLI_AUTH: redis.environment!.REDISCLI_AUTH! }, 'config', 'get', 'appendonly').stdout.split('\n')).toContain('yes')
    } finally {
      await stopProcess(server)
    }
  }, 30_000)

  it('runs three broker nodes with distinct node ids on the default MQTT port, each with the Redis URL', () => {
    const ids = NODES.map((node) => {
      const { command, environment } = service(node)
      expect(command, node).toEqual(['broker', '--node-id', node])
      expect(environment, node).toEqual({ PLACEGUARD_DATA_DIR: '/data', PLACEGUARD_LOG_LEVEL: 'info', PLACEGUARD_REDIS_URL: redisUrl })
      expect(service(node).healthcheck, `${node}: the broker's socket-table check`).toEqual(service('broker').healthcheck)
      expect(service(node).image, node).toBe('placeguard:local')
      return command![2]
    })
    expect(new Set(ids).size).toBe(NODES.length)
  })

  it('puts exactly the nodes behind HAProxy: the cfg\'s servers are the node services, on the port they listen on', () => {
    const cfg = readFileSync(join(ROOT, 'deploy', 'haproxy', 'haproxy.cfg'), 'utf8')
    const servers = [...cfg.matchAll(/^\s*server\s+(\S+)\s+([^\s:]+):(\d+)/gm)].map((m) => ({ name: m[1], host: m[2], port: Number(m[3]) }))
    const nodes = Object.entries(cluster.services).filter(([, { command }]) => command?.[0] === 'broker' && command.includes('--node-id')).map(([name]) => name).sort()
    expect(nodes).toEqual(NODES)
    expect(servers.map((server) => server.host).sort()).toEqual(nodes)
    for (const server of servers) {
      // No node changes the MQTT port from its default, 8883.
      expect(server.port).toBe(8883)
      expect(service(server.host!).command).not.toContain('--mqtt-port')
      expect(service(server.host!).environment).not.toHaveProperty('PLACEGUARD_MQTT_PORT')
    }
  })

  it('runs a pinned HAProxy on deploy/haproxy/haproxy.cfg, read-only, on 8883, checked without connecting to 8883', () => {
    const haproxy = service('haproxy')
    expect(haproxy.image).toMatch(/^haproxy:\d+\.\d+(\.\d+)?$/)
    expect(haproxy.volumes).toEqual([`${ROOT}/deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro`])
    expect(ports(haproxy)).toEqual([{ published: 8883, target: 8883 }])
    // A probe through HAProxy would reach a node as a connection without a TLS handshake: a security event.
    const [kind, check] = haproxy.healthcheck!.test as string[]
    expect(kind).toBe('CMD-SHELL')
    expect(check).toContain('/proc/net/tcp')
    expect(check).toContain(`:${(8883).toString(16).toUpperCase()} `)
  })

  it('runs HAProxy\'s healthcheck for real: it passes while something listens on the port, and fails when nothing does', async () => {
    const check = (service('haproxy').healthcheck!.test as string[])[1]!
    const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, '0')
    // The same check on a free port (8883 may be taken here), listening on every IPv4 address as HAProxy's `bind :8883`.
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve))
    const port = (server.address() as AddressInfo).port
    const run = () => spawnSync('/bin/sh', ['-c', check.replace(hex(8883), hex(port))], { encoding: 'utf8' }).status
    try {
      expect(run(), 'listening').toBe(0)
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
    expect(run(), 'closed').not.toBe(0)
  })

  it('keeps the CA key from the nodes: each mounts its own state volume and the key-less node-pki, read-only', () => {
    // Where ca.key is: the volume the pki one-shot makes the CA on.
    const keyVolumes = namedVolumes('pki')
    expect(keyVolumes).toEqual(['placeguard-data'])
    for (const node of NODES) {
      expect(service(node).volumes!.sort(), node).toEqual([`${node}-data:/data:rw`, 'node-pki:/pki-public:ro'])
      expect(namedVolumes(node).filter((volume) => keyVolumes.includes(volume)), node).toEqual([])
    }
    expect(new Set(NODES.map((node) => namedVolumes(node)[0])).size, 'no two nodes share a state volume').toBe(NODES.length)
    // node-pki is written by pki-cluster alone, with pki-crl's publisher, which copies four named files and never ca.key (tested above).
    const writers = Object.entries(cluster.services).filter(([, { volumes }]) => (volumes ?? []).some((volume) => volume.startsWith('node-pki:') && !volume.endsWith(':ro'))).map(([name]) => name)
    expect(writers).toEqual(['pki-cluster'])
    expect(service('pki-cluster').volumes!.sort()).toEqual(['node-pki:/pki-public:rw', 'placeguard-data:/data:rw'])
    expect(service('pki-cluster').entrypoint).toEqual(service('pki-crl').entrypoint)
    expect(service('pki-cluster').command).toEqual(service('pki-crl').command)
    expect(service('pki-cluster').healthcheck).toEqual(service('pki-crl').healthcheck)
  })

  it('copies the PKI into a node\'s own data directory at start, without ca.key, then runs its command', () => {
    const entrypoints = NODES.map((node) => JSON.stringify(service(node).entrypoint))
    expect(new Set(entrypoints).size, 'one entrypoint for every node').toBe(1)
    const [shell, flag, script, name] = service('broker-1').entrypoint!
    expect([shell, flag, name]).toEqual(['/bin/sh', '-c', 'placeguard'])
    const source = join(dir, 'node-pki')
    const data = join(dir, 'node-data')
    mkdirSync(source)
    for (const file of ['ca.crt', 'server.crt', 'server.key', 'crl.pem', 'ca.key']) writeFileSync(join(source, file), `${file} 1\n`)
    chmodSync(join(source, 'server.key'), 0o600)
    const run = () => spawnSync('/bin/sh', ['-c', script!.replaceAll('$$', '$').replaceAll('/pki-public', source).replaceAll('/data', data), 'placeguard', '--version'], {
      cwd: ROOT, encoding: 'utf8', env: { PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}` },
    })
    const first = run()
    expect(first.status, first.stderr).toBe(0)
    expect(first.stdout.trim(), 'the command ran: placeguard --version').toBe((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version)
    expect(readdirSync(join(data, 'pki')).sort()).toEqual(['ca.crt', 'crl.pem', 'server.crt', 'server.key'])
    expect(statSync(join(data, 'pki', 'server.key')).mode & 0o777).toBe(0o600)
    // A CRL renewed while the node was down reaches it at its next start.
    writeFileSync(join(source, 'crl.pem'), 'crl.pem 2\n')
    expect(run().status).toBe(0)
    expect(readFileSync(join(data, 'pki', 'crl.pem'), 'utf8')).toBe('crl.pem 2\n')
    expect(readdirSync(join(data, 'pki'))).not.toContain('ca.key')
  })

  it('runs two collectors on the Redis Streams, without --broker, each with its own name, both on PostgreSQL, otherwise as the single collector', () => {
    for (const name of COLLECTORS) {
      const collector = service(name)
      expect(collector.command, name).toEqual(['collector'])
      expect(collector.environment, name).toEqual({
        ...service('collector').environment, PLACEGUARD_REDIS_URL: redisUrl, PLACEGUARD_DATABASE_URL: databaseUrl, PLACEGUARD_COLLECTOR_NAME: name,
      })
      expect(collector.healthcheck, name).toEqual(service('collector').healthcheck)
      expect(collector.stop_grace_period, name).toBe(service('collector').stop_grace_period)
      expect(collector.image, name).toBe('placeguard:local')
    }
    // Two collectors sharing a data directory would share one spool, outbox and fleet file.
    expect(new Set(COLLECTORS.map((name) => namedVolumes(name).join())).size, 'no two collectors share a data volume').toBe(COLLECTORS.length)
    expect(namedVolumes('collector-cluster-2')).toEqual(['collector-cluster-2-data'])
  })

  it('gives PlaceGuard a configuration it accepts: distinct collector names, the database and Redis URLs', () => {
    const configs = COLLECTORS.map((name) => loadConfig({ env: service(name).environment! }))
    expect(configs.map((config) => config.cluster.collectorName)).toEqual(COLLECTORS)
    for (const config of configs) {
      expect(config.databaseUrl).toBe(databaseUrl)
      expect(config.redisUrl).toBe(redisUrl)
      expect(config.dataDir).toBe('/data')
    }
  })

  it('runs PostgreSQL 15 or newer, pinned to a major, with a password from .env, no published port, and its own volume', () => {
    const postgres = service('postgres')
    const major = /^postgres:(\d+)$/.exec(postgres.image ?? '')?.[1]
    expect(Number(major), postgres.image).toBeGreaterThanOrEqual(15)
    expect(postgres.environment).toEqual({ POSTGRES_USER: 'placeguard', POSTGRES_DB: 'placeguard', POSTGRES_PASSWORD: CLUSTER_SECRETS.PLACEGUARD_POSTGRES_PASSWORD })
    // Replacing the image's entrypoint drops its command: the server must be named.
    expect(postgres.command).toEqual(['postgres'])
    expect(ports(postgres)).toEqual([])
    expect(postgres.volumes).toEqual(['postgres-data:/var/lib/postgresql/data:rw'])
    // The collectors' URL names this service, its user and its database.
    const url = new URL(databaseUrl)
    expect([url.hostname, url.username, url.password, url.pathname]).toEqual(['postgres', 'placeguard', CLUSTER_SECRETS.PLACEGUARD_POSTGRES_PASSWORD, '/placeguard'])
  })

  // On its first start the image runs a temporary server on the Unix socket
  // alone while it sets the database up: a check over the socket would pass then.
  it('runs PostgreSQL\'s healthcheck for real, over TCP: it passes while the server accepts connections, and fails once it is gone', async () => {
    const test = service('postgres').healthcheck!.test as string[]
    expect(test.slice(0, 2)).toEqual(['CMD', 'pg_isready'])
    expect(test[test.indexOf('-h') + 1], 'by address, not the socket').toBe('127.0.0.1')
    expect(test[test.indexOf('-p') + 1]).toBe('5432')
    const server = await startPostgres({ database: 'placeguard' })
    const run = () => spawnSync(test[1]!, test.slice(2).map((arg) => arg === '5432' ? String(server.port) : arg), { encoding: 'utf8' }).status
    try {
      expect(run(), 'accepting connections').toBe(0)
    } finally {
      await server.stop()
    }
    expect(run(), 'stopped').not.toBe(0)
  }, 60_000)

  it('keeps Redis and PostgreSQL from starting without their password, naming the .env variable', () => {
    const checks = [
      { name: 'redis', variable: 'REDISCLI_AUTH', secret: 'PLACEGUARD_REDIS_PASSWORD' },
      { name: 'postgres', variable: 'POSTGRES_PASSWORD', secret: 'PLACEGUARD_POSTGRES_PASSWORD' },
    ]
    for (const { name, variable, secret } of checks) {
      const environment = service(name).environment!
      expect(environment[variable], `${name} takes ${variable} from ${secret}`).toBe(CLUSTER_SECRETS[secret as keyof typeof CLUSTER_SECRETS])
      const marker = join(dir, `${name}-started`)
      for (const env of [{}, { [variable]: '' }]) {
        const refused = runPasswordCheck(service(name), env, ['touch', marker])
        expect(refused.status, `${name} without ${variable}`).not.toBe(0)
        expect(refused.stderr, name).toContain(`set ${secret} in .env`)
        expect(existsSync(marker), `${name}: nothing ran`).toBe(false)
      }
      const started = runPasswordCheck(service(name), { [variable]: environment[variable]! }, ['touch', marker])
      expect(started.status, String(started.stderr)).toBe(0)
      expect(existsSync(marker), `${name}: its command ran`).toBe(true)
    }
  })

  it('sends a revocation made in pki-cluster to the nodes through Redis', async () => {
    const pki = service('pki-cluster')
    expect(pki.environment!.PLACEGUARD_REDIS_URL).toBe(redisUrl)
    const port = await freePort()
    const redisDir = join(dir, 'redis-revoke')
    mkdirSync(redisDir)
    const server = spawn('redis-server', [...service('redis').command!.slice(1), '--port', String(port), '--bind', '127.0.0.1', '--dir', redisDir], { stdio: 'ignore' })
    const url = redisUrl.replace('@redis:6379', `@127.0.0.1:${port}`)
    const data = join(dir, 'data-cluster')
    // The commands record themselves in the group's trail, in the collectors' PostgreSQL (test/audit/cli-actions.test.ts
    // runs that part against a real one); this test is about Redis, so they keep their trail in the data directory.
    expect(pki.environment!.PLACEGUARD_DATABASE_URL).toBe(service('collector-cluster').environment!.PLACEGUARD_DATABASE_URL)
    const pkiEnvironment = { ...pki.environment }
    delete pkiEnvironment.PLACEGUARD_DATABASE_URL
    const env = { ...pkiEnvironment, PLACEGUARD_REDIS_URL: url, PLACEGUARD_DATA_DIR: data, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}` }
    const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/placeguard.js', ...args], { cwd: ROOT, encoding: 'utf8', env })
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
    try {
      for (let i = 0; i < 100 && spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout === ''; i++) await new Promise((resolve) => setTimeout(resolve, 50))
      await redis.connect()
      expect(cli('pki', 'init').status).toBe(0)
      expect(cli('pki', 'issue', 'flood-00001', '--kind', 'flood', '--site', 'riverside').status).toBe(0)
      const revoke = cli('pki', 'revoke', 'flood-00001')
      expect(revoke.status, revoke.stderr).toBe(0)
      expect(revoke.stdout).toContain('CRL sent to the cluster')
      expect(await redis.get(clusterKeys().crl)).toBe(readFileSync(join(data, 'pki', 'crl.pem'), 'utf8'))
    } finally {
      redis.disconnect()
      await stopProcess(server)
    }
  }, 60_000)
})

describe('deployment documentation', () => {
  it('names Compose v2 as the supported client (docker-compose 1.29 breaks on recreate, docker/compose #11742)', () => {
    const deploy = readFileSync(join(ROOT, 'docs', 'deploy.md'), 'utf8')
    expect(deploy).toContain('docker compose up -d')
    expect(deploy).toContain('ContainerConfig')
    expect(readFileSync(COMPOSE_FILE, 'utf8')).toContain('docs/deploy.md')
  })

  it('says in .env.example that changing a secret later breaks things, and how to rotate', () => {
    const example = readFileSync(join(ROOT, '.env.example'), 'utf8')
    expect(example).not.toMatch(/changing them\s+here later does not change them there/)
    expect(example).toMatch(/NOT harmless/)
    expect(example).toMatch(/8 to 72/)
    expect(example).toContain('Rotating secrets')
    expect(readFileSync(join(ROOT, 'docs', 'deploy.md'), 'utf8')).toContain('## Rotating secrets')
  })
})

describe('secrets', () => {
  const raw = readFileSync(COMPOSE_FILE, 'utf8')

  it('are never written in docker-compose.yml: every secret is a required ${VAR:?…} from the env file', () => {
    const file = parseYaml(raw, { merge: true }) as { services: Record<string, { environment?: Record<string, string> }> }
    const secretNames = /PASSWORD|TOKEN|SECRET|ROUTING_KEY/
    let checked = 0
    for (const [service, { environment = {} }] of Object.entries(file.services)) {
      for (const [name, value] of Object.entries(environment)) {
        if (!secretNames.test(name)) continue
        checked++
        expect(String(value), `${service}.${name}`).toMatch(/^\$\{[A-Z0-9_]+(:\?[^}]+|:-)\}$/)
      }
    }
    expect(checked).toBeGreaterThanOrEqual(Object.keys(SECRETS).length)
    for (const name of Object.keys(SECRETS)) {
      expect(raw, name).toMatch(new RegExp(`\\$\\{${name}:\\?[^}]*\\.env`))
      // Wherever it is used (a command line, a URL): required there too, never a default.
      for (const [use] of raw.matchAll(new RegExp(`\\$\\{${name}\\b[^}]*\\}`, 'g'))) expect(use, name).toMatch(new RegExp(`^\\$\\{${name}:\\?[^}]*\\.env`))
    }
    // The cluster's: empty when unset, never a default value (Redis and PostgreSQL refuse an empty one).
    for (const name of Object.keys(CLUSTER_SECRETS)) {
      const uses = [...raw.matchAll(new RegExp(`\\$\\{${name}\\b[^}]*\\}`, 'g'))].map(([use]) => use)
      expect(uses.length, name).toBeGreaterThan(0)
      for (const use of uses) expect(use, name).toBe(`\${${name}:-}`)
    }
  })

  it('reach the services from the env file', () => {
    const rendered = JSON.stringify(config)
    for (const [name, value] of Object.entries({ ...SECRETS, ...CLUSTER_SECRETS })) {
      expect(rendered, name).toContain(value)
      expect(raw, name).not.toContain(value)
    }
  })

  it('stop docker-compose with the missing variable\'s name when one is unset', () => {
    for (const missing of Object.keys(SECRETS)) {
      const result = composeConfig(Object.fromEntries(Object.entries(SECRETS).filter(([name]) => name !== missing)))
      expect(result.status, missing).not.toBe(0)
      expect(result.stderr, missing).toContain(`set ${missing} in .env`)
    }
  })

  it('are not needed for the single broker: docker-compose config passes without the cluster\'s passwords', () => {
    for (const options of [[], ['--profile', 'load']]) {
      const result = composeConfig(SECRETS, options)
      expect(result.status, `${options.join(' ')}: ${result.stderr}`).toBe(0)
      expect(result.stderr, options.join(' ')).not.toMatch(/PLACEGUARD_(REDIS|POSTGRES)_PASSWORD/)
    }
  })

  it('are placeholders in .env.example, which lists every one and says how to generate them', () => {
    const example = readFileSync(join(ROOT, '.env.example'), 'utf8')
    expect(example).toContain('openssl rand -base64 32')
    expect(example).toContain('openssl rand -hex 32')
    const values = Object.fromEntries(example.split('\n').filter((line) => /^[A-Z_]+=/.test(line)).map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]))
    for (const name of Object.keys(SECRETS)) expect(values[name], name).toMatch(/change-me/)
    // Empty, so that the cluster does not start on a placeholder password.
    for (const name of Object.keys(CLUSTER_SECRETS)) expect(values[name], name).toBe('')
    const result = composeConfig(values)
    expect(result.status, result.stderr).toBe(0)
  })

  it('stay out of the image build context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim())
    for (const entry of ['.env', '.env.*', '.git', 'node_modules', 'data', 'scratch', 'bench/results']) expect(ignored, entry).toContain(entry)
  })
})
