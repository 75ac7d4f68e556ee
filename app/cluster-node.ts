/**
 * A broker node of a cluster, assembled: the broker's MQTT state and
 * routing in Redis (broker/redis-state.ts), its link to the cluster
 * (telemetry handoff to the streams, the session directory, cluster-wide
 * limits, quarantines passed on), its heartbeat, the CRL and suppliers'
 * grants followed from Redis, and its security events handed to the
 * streams for the collectors.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import type { BrokerClusterLink, RedisState } from '../broker/index.ts'
import { createRedisState } from '../broker/redis-state.ts'
import {
  clusterKeys, connectRedis, ControlChannel, CrlFollower, NodeRegistry, SessionDirectory, StreamHandoff, SupplierGrantFollower, type ClusterKeys, type Redis,
} from '../cluster/index.ts'
import { readCrl, type SupplierGrant } from '../pki/index.ts'
import { assertAccessWindows } from '../shared/access-windows.ts'
import { invalidInput } from '../shared/errors.ts'
import { type DeviceKind, isDeviceKind } from '../shared/ids.ts'
import type { Logger } from '../shared/logger.ts'
import type { SecurityEvent } from '../shared/security-events.ts'
import { SECURITY_EVENTS_PREFIX } from '../shared/topics.ts'
import type { NodeFigures } from './node-health.ts'

export interface ClusterNodeOptions {
  redisUrl: string
  nodeId: string
  partitions: number
  waitReplicas: number
  /** Queued messages a returning persistent session is given at once. */
  maxSessionDelivery: number
  /** Where devices reach this node (for `cluster status`). */
  mqtt: string
  metrics?: string
  logger: Logger
  /** The node's CA certificate and CRL file (a copy of pki/ without the CA key). */
  caCertFile: string
  crlFile: string
}

/** What the broker process does with the node's parts. */
export interface ClusterNode {
  keys: ClusterKeys
  state: RedisState
  link: BrokerClusterLink
  /**
   * A supplier's grant as the cluster last sent it (`placeguard pki` where
   * the CA key is kept; cluster/supplier-grants.ts): the node has no
   * inventory. Undefined refuses the supplier.
   */
  supplierGrant: (supplierId: string) => SupplierGrant | undefined
  /** The node's own figures, for its /healthz and /metrics (sessions and quarantines are the broker's). */
  figures: () => Omit<NodeFigures, 'sessions' | 'quarantined'>
  /** Starts what needs the broker: quarantines in force, the CRL from Redis, the heartbeat. */
  start: (broker: ClusterBroker) => Promise<void>
  stop: () => Promise<void>
}

/** The broker as the node's parts see it. */
export interface ClusterBroker {
  applyQuarantineCommand: (command: Parameters<BrokerClusterLink['shareQuarantine']>[0]) => void
  reloadCrl: () => Promise<void>
  connectionsByRole: () => Record<string, number>
  on: (event: 'security-event', listener: (event: SecurityEvent) => void) => unknown
}

/** Security events waiting for Redis; beyond this the oldest are dropped (and counted; each is in the log already). */
const MAX_PENDING_EVENTS = 10_000
const EVENT_RETRY_MS = 1_000

export function createClusterNode (options: ClusterNodeOptions): ClusterNode {
  const { logger, nodeId } = options
  const keys = clusterKeys()
  const redis = connectRedis({ url: options.redisUrl, name: `placeguard-${nodeId}`, logger })
  const subscriber = connectRedis({ url: options.redisUrl, name: `placeguard-${nodeId}-sub`, logger, blocking: true })
  const connections: Redis[] = [redis, subscriber]
  const handoff = new StreamHandoff({ redis, keys, partitions: options.partitions, waitReplicas: options.waitReplicas })
  const directory = new SessionDirectory(redis, keys)
  let broker: ClusterBroker | undefined
  const registry = new NodeRegistry({
    redis, keys, nodeId, mqtt: options.mqtt, metrics: options.metrics, logger,
    connections: () => broker?.connectionsByRole() ?? {},
  })
  const control = new ControlChannel({
    redis, subscriber, keys, nodeId, logger,
    apply: (command, envelope) => {
      logger.info({ action: command.action, deviceId: command.deviceId, from: envelope.origin }, 'quarantine command from the cluster')
      broker?.applyQuarantineCommand(command)
    },
  })
  const crl = new CrlFollower({ redis, subscriber, keys, logger, apply: (pem) => installCrl(pem, options, () => broker?.reloadCrl()) })
  const events = new EventForwarder(handoff, nodeId, logger)
  const grants = new SupplierGrantFollower({ redis, subscriber, keys, logger, parse: supplierGrantOf })

  let handoffFailures = 0
  const link: BrokerClusterLink = {
    nodeId,
    handoff: async (message) => {
      try {
        await handoff.append({ ...message, node: nodeId })
      } catch (error) {
        handoffFailures++
        throw error
      }
    },
    claimSession: async (clientId, record) => await directory.claim(clientId, { ...record, node: nodeId }),
    releaseSession: (clientId, record) => {
      directory.release(clientId, { ...record, node: nodeId }).catch((error: Error) => logger.debug({ err: error.message, clientId }, 'session record not released; it expires'))
    },
    othersSessions: (role) => registry.othersConnections(role),
    shareQuarantine: (command) => {
      control.publish(command).catch((error: Error) => logger.error({ err: error.message, deviceId: command.deviceId }, 'quarantine command not passed to the other nodes; repeat it when Redis is back'))
    },
  }
  return {
    keys,
    figures: () => ({
      handedOff: handoff.appended, handoffFailures, eventsPending: events.pending,
      redisUp: redis.status === 'ready', heartbeatAgeMs: registry.heartbeatAgeMs(), heartbeatTtlMs: registry.ttlMs,
    }),
    state: createRedisState({ url: options.redisUrl, nodeId, maxSessionDelivery: options.maxSessionDelivery }),
    link,
    supplierGrant: (supplierId) => grants.grant(supplierId),
    start: async (node) => {
      broker = node
      node.on('security-event', (event) => events.forward(event))
      await control.start()
      await crl.start()
      await grants.start()
      await registry.start()
      logger.info({ node: nodeId, partitions: options.partitions }, 'cluster node registered')
    },
    stop: async () => {
      await registry.stop()
      await crl.stop()
      await grants.stop()
      await events.flush()
      for (const connection of connections) connection.disconnect()
    },
  }
}

/** A grant as `placeguard pki` sends it (app/cluster-admin.ts), checked as the inventory's would be. */
function supplierGrantOf (supplierId: string, stored: unknown): SupplierGrant {
  const { kinds, sites, windows } = (typeof stored === 'object' && stored !== null ? stored : {}) as Record<string, unknown>
  if (!Array.isArray(kinds) || kinds.length === 0 || !kinds.every((kind): kind is DeviceKind => typeof kind === 'string' && isDeviceKind(kind))) throw invalidInput('kinds', 'a supplier\'s kinds are a list of flood, energy, housing')
  if (!Array.isArray(sites) || sites.length === 0 || !sites.every((site) => typeof site === 'string' && site !== '')) throw invalidInput('sites', 'a supplier\'s sites are a list of site names')
  return { supplierId, kinds, sites, windows: assertAccessWindows('windows', windows) }
}

/**
 * A CRL from Redis becomes this node's CRL file only if the fleet CA signed
 * it and it is not older than the file's (Redis is a carrier, not an
 * authority: a forged or replayed CRL must not un-revoke anyone, now or
 * after a restart). Written atomically, then the broker reloads it.
 */
async function installCrl (pem: string, files: Pick<ClusterNodeOptions, 'caCertFile' | 'crlFile'>, reload: () => Promise<void> | undefined): Promise<void> {
  const caPem = readFileSync(files.caCertFile, 'utf8')
  const next = await readCrl(pem, caPem)
  let current: Awaited<ReturnType<typeof readCrl>> | undefined
  let currentPem: string | undefined
  try {
    currentPem = readFileSync(files.crlFile, 'utf8')
    current = await readCrl(currentPem, caPem)
  } catch {
    current = undefined // no CRL yet, or an unreadable one: the CA-signed one from Redis replaces it
  }
  if (currentPem === pem) return
  if (current?.crlNumber !== undefined && (next.crlNumber === undefined || next.crlNumber < current.crlNumber)) {
    throw new Error(`the cluster's CRL (number ${next.crlNumber ?? 'none'}) is older than this node's (number ${current.crlNumber})`)
  }
  if (current && next.thisUpdate.getTime() < current.thisUpdate.getTime()) throw new Error('the cluster\'s CRL was issued before this node\'s')
  const temporary = `${files.crlFile}.cluster-${process.pid}`
  writeFileSync(temporary, pem, { mode: 0o644 })
  renameSync(temporary, files.crlFile)
  await reload()
}

/** Hands the broker's security events to the streams, holding them (bounded) while Redis is away. */
class EventForwarder {
  readonly #handoff: StreamHandoff
  readonly #nodeId: string
  readonly #logger: Logger
  #pending: SecurityEvent[] = []
  #dropped = 0
  #timer: NodeJS.Timeout | undefined
  #sending: Promise<void> | undefined

  constructor (handoff: StreamHandoff, nodeId: string, logger: Logger) {
    this.#handoff = handoff
    this.#nodeId = nodeId
    this.#logger = logger
  }

  forward (event: SecurityEvent): void {
    this.#pending.push(event)
    if (this.#pending.length > MAX_PENDING_EVENTS) {
      this.#pending.shift()
      if (this.#dropped++ % 1_000 === 0) this.#logger.error({ dropped: this.#dropped }, 'security events not handed to the cluster (Redis unreachable); the oldest are dropped from memory, each is in this log')
    }
    this.#sending ??= this.#send().finally(() => { this.#sending = undefined })
  }

  get pending (): number {
    return this.#pending.length
  }

  async flush (): Promise<void> {
    clearTimeout(this.#timer)
    await this.#sending
  }

  async #send (): Promise<void> {
    while (this.#pending.length > 0) {
      const event = this.#pending[0]!
      try {
        await this.#handoff.append({
          partitionKey: event.deviceId ?? this.#nodeId, topic: `${SECURITY_EVENTS_PREFIX}${event.type}`,
          payload: Buffer.from(JSON.stringify({ ...event, node: this.#nodeId })), node: this.#nodeId, receivedAtMs: Date.parse(event.at),
        })
        this.#pending.shift()
      } catch (error) {
        this.#logger.warn({ err: (error as Error).message, pending: this.#pending.length }, 'security events wait for Redis')
        this.#timer = setTimeout(() => { this.#sending ??= this.#send().finally(() => { this.#sending = undefined }) }, EVENT_RETRY_MS)
        this.#timer.unref()
        return
      }
    }
  }
}
