/**
 * The broker process, assembled: the PlaceGuard broker on the fleet PKI
 * with its durable state in the data directory, and the CRL kept fresh by
 * a short-lived child that alone may open the CA key.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { AddressInfo } from 'node:net'
import { BROKER_DB_FILE, type BrokerLimits, createSqlitePersistence, DEFAULT_BROKER_LIMITS, DEFAULT_MAX_QUEUED_PER_CLIENT, PlaceGuardBroker, QUARANTINE_FILE, SESSION_OWNERS_FILE } from '../broker/index.ts'
import { FleetPki, pkiPaths, type SupplierGrant, SupplierGrantsFile } from '../pki/index.ts'
import type { Config } from './config.ts'
import { fitToDescriptors, openFileLimit } from './descriptor-budget.ts'
import type { Logger } from '../shared/logger.ts'
import { PlaceGuardError } from '../shared/errors.ts'

export interface BrokerProcess {
  broker: PlaceGuardBroker
  address: AddressInfo
  stop: () => Promise<void>
}

/** Starts the broker (a cluster node when `redisUrl` is set) and its CRL upkeep; `stop` ends both. */
export async function startBrokerProcess (config: Config, logger: Logger): Promise<BrokerProcess> {
  if (config.redisUrl) return await startClusterNode(config, config.redisUrl, logger)
  const broker = brokerFor(config, logger)
  const address = await broker.listen()
  const stopCrl = keepCrlFresh(config.dataDir, logger)
  return {
    broker, address,
    stop: async () => {
      stopCrl()
      await broker.close()
    },
  }
}

/**
 * A broker node of a cluster: sessions, routing, telemetry and the CRL go
 * through Redis. The node keeps only its quarantine file locally (a copy of
 * what Redis holds); its data directory's pki/ needs no CA key.
 */
async function startClusterNode (config: Config, redisUrl: string, logger: Logger): Promise<BrokerProcess> {
  if (!config.nodeId) throw new PlaceGuardError('PG_ERR_CONFIG_INVALID', 'nodeId: a broker node of a cluster needs a name (redisUrl is set)', { field: 'nodeId', hint: 'give each node its own, e.g. broker-1' })
  // Loaded here, not at the top: a single broker carries no Redis client, metrics registry or HTTP code.
  const [{ createClusterNode }, { startNodeHealth }] = await Promise.all([import('./cluster-node.ts'), import('./node-health.ts')])
  const paths = pkiPaths(config.dataDir)
  // The queue limits are the SQLite persistence's; in Redis a returning session is given up to maxQueuedPerClient at once.
  const { maxQueuedPerClient, ...rest } = config.broker
  const limits = fitted(Object.fromEntries(Object.entries(rest).filter(([key]) => key in DEFAULT_BROKER_LIMITS)), config, logger)
  const node = createClusterNode({
    redisUrl, nodeId: config.nodeId, partitions: config.cluster.partitions, waitReplicas: config.cluster.waitReplicas, maxSessionDelivery: maxQueuedPerClient ?? DEFAULT_MAX_QUEUED_PER_CLIENT,
    mqtt: `mqtts://${config.mqttHost}:${config.mqttPort}`, metrics: `http://${config.httpHost}:${config.httpPort}/metrics`, logger, caCertFile: paths.caCert, crlFile: paths.crl,
  })
  const broker = new PlaceGuardBroker({
    tls: { caCert: paths.caCert, serverCert: paths.serverCert, serverKey: paths.serverKey, crl: paths.crl },
    host: config.mqttHost, port: config.mqttPort, limits, logger: logger.child({ node: config.nodeId }),
    quarantineFile: join(config.dataDir, QUARANTINE_FILE), aedes: node.state, cluster: node.link,
    // A node holds no inventory: suppliers' grants come through Redis from where the CA key is kept.
    supplierGrant: node.supplierGrant,
  })
  const address = await broker.listen()
  await node.start(broker)
  const health = await startNodeHealth({
    nodeId: config.nodeId, host: config.httpHost, port: config.httpPort, tokens: config.apiTokens, logger,
    connections: { maxConnections: config.httpMaxConnections, maxConnectionsPerAddress: config.httpMaxConnectionsPerAddress },
    figures: () => ({ ...node.figures(), sessions: broker.connectionsByRole(), quarantined: broker.quarantined().length }),
  }).catch((error: Error) => {
    throw new PlaceGuardError('PG_ERR_API_LISTEN', `the node's /healthz and /metrics cannot listen on ${config.httpHost}:${config.httpPort}: ${error.message}`, { field: 'httpPort', cause: error })
  })
  logger.info({ url: health.url }, 'node health and metrics listening (/healthz, /metrics)')
  const stopCrl = keepCrlFresh(config.dataDir, logger)
  return {
    broker, address,
    stop: async () => {
      stopCrl()
      await health.close()
      await broker.close()
      await node.stop()
    },
  }
}

/**
 * The broker's limits with its connection table fitted to the process's
 * open-file limit (descriptor-budget.ts). The API's connections are counted
 * whether this process serves the API (`up`), a node's /healthz, or neither
 * (`broker`): then they are spare descriptors.
 */
function fitted<T extends Partial<BrokerLimits>> (limits: T, config: Config, logger: Logger): T {
  const table = { maxConnections: limits.maxConnections ?? DEFAULT_BROKER_LIMITS.maxConnections, reservedConnections: limits.reservedConnections ?? DEFAULT_BROKER_LIMITS.reservedConnections }
  return { ...limits, ...fitToDescriptors(table, config.httpMaxConnections, logger, openFileLimit()) }
}

export function brokerFor (config: Config, logger: Logger): PlaceGuardBroker {
  const paths = pkiPaths(config.dataDir)
  const { maxQueuedPerClient, maxQueuedBytesPerClient, ...configured } = config.broker
  const limits = fitted(configured, config, logger)
  // Sessions, subscriptions, retained and queued QoS 1 messages outlive a broker restart or crash
  // (`memory`: the same store, in memory, lost at a restart). The broker destroys the persistence when it closes.
  const path = config.brokerState === 'memory' ? ':memory:' : join(config.dataDir, BROKER_DB_FILE)
  const persistence = createSqlitePersistence({ path, maxQueuedPerClient, maxQueuedBytesPerClient, logger })
  const broker = new PlaceGuardBroker({
    tls: { caCert: paths.caCert, serverCert: paths.serverCert, serverKey: paths.serverKey, crl: paths.crl },
    host: config.mqttHost, port: config.mqttPort, limits, logger,
    quarantineFile: join(config.dataDir, QUARANTINE_FILE), aedes: { persistence },
    sessionOwnersFile: join(config.dataDir, SESSION_OWNERS_FILE),
    supplierGrant: supplierGrants(config.dataDir, logger),
  })
  return broker
}

/**
 * Suppliers' grants (issue 17): from this data directory's inventory when
 * the broker has one (a single machine), else from the public
 * `pki/supplier-grants.json` published beside the CRL (a broker given only
 * the PKI's public part, as in docker-compose). A lookup that fails (a
 * locked or unreadable inventory) answers "no grant": the supplier is
 * refused, never let in unchecked. Cluster nodes follow the grants the CA's
 * side sends through Redis instead (app/cluster-node.ts).
 */
function supplierGrants (dataDir: string, logger: Logger): (supplierId: string) => SupplierGrant | undefined {
  const paths = pkiPaths(dataDir)
  if (!existsSync(paths.inventory)) {
    const file = new SupplierGrantsFile(paths.dir, { warn: (message) => logger.warn(message) })
    return (supplierId) => file.grant(supplierId)
  }
  const pki = new FleetPki(dataDir)
  return (supplierId) => {
    try {
      return pki.supplierGrant(supplierId)
    } catch (error) {
      logger.error({ err: (error as Error).message, supplierId }, 'supplier grant unreadable; supplier refused')
      return undefined
    }
  }
}

const CRL_CHECK_MS = 6 * 3_600_000
/** A re-signing that has not finished by then is stuck (a locked inventory, a hung disk). */
const CRL_CHILD_TIMEOUT_MS = 120_000
const PLACEGUARD_BIN = fileURLToPath(new URL('../bin/placeguard.js', import.meta.url))

/**
 * Keeps the CRL from lapsing while the broker runs: every 6 hours (and at
 * start) it is re-signed if it lapses within 7 days. Once a CRL lapses,
 * OpenSSL refuses every client — the whole fleet would be locked out. The
 * broker notices the new file by itself.
 *
 * The re-signing runs in a short-lived child process (`placeguard pki crl
 * --if-due 7`): the broker faces the network, and a memory disclosure or
 * code execution there must not yield the CA key (STRIDE I/E). Where the
 * data directory holds no `ca.key` (a broker node with a copy of pki/
 * without the key), the CRL is re-signed where the key lives, from cron.
 */
export function keepCrlFresh (dataDir: string, logger: Logger): () => void {
  let toldNoKey = false
  let running = false
  // The child, not this process, looks for the key: the broker neither opens nor stats it.
  const check = (): void => {
    if (running) return
    running = true
    runPlaceguard(['--data-dir', dataDir, 'pki', 'crl', '--if-due', '7']).then(
      (stdout) => { if (stdout.startsWith('CRL refreshed')) logger.info({ result: stdout.trim() }, 'CRL re-signed before it lapses') },
      (error: Error) => {
        if (!error.message.includes('PG_ERR_PKI_NO_CA')) return logger.error({ err: error.message }, 'CRL not re-signed; run `placeguard pki crl` before it lapses')
        if (!toldNoKey) logger.info('no CA key in this data directory: re-sign the CRL where the key is kept (`placeguard pki crl` from cron)')
        toldNoKey = true
      },
    ).finally(() => { running = false })
  }
  check()
  const timer = setInterval(check, CRL_CHECK_MS)
  timer.unref()
  return () => clearInterval(timer)
}

/** Runs a `placeguard` command in a child process; rejects with its stderr if it fails. */
export function runPlaceguard (args: string[], timeoutMs = CRL_CHILD_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [PLACEGUARD_BIN, ...args], { timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error((stderr.trim() || error.message).slice(0, 1_000)))
      else resolve(stdout)
    })
  })
}
