/**
 * Quarantine and lift, cluster-wide. A command reaches one node (from the
 * collector or an operator, on the control topic); that node acts on it
 * and passes it on here: the command is kept in a Redis hash (so a node
 * that starts later, or was cut off, finds the quarantines in force) and
 * announced on a channel, and every other node acts on it within moments.
 */
import { z } from 'zod'
import { quarantineCommandSchema, type QuarantineCommand } from '../shared/control.ts'
import type { Logger } from '../shared/logger.ts'
import type { ClusterKeys } from './keys.ts'
import type { Redis } from './redis.ts'

const envelopeSchema = z.strictObject({ origin: z.string(), at: z.number(), command: quarantineCommandSchema })
export type ControlEnvelope = z.infer<typeof envelopeSchema>

export interface ControlChannelOptions {
  redis: Redis
  subscriber: Redis
  keys: ClusterKeys
  nodeId: string
  /** Acts on a command another node passed on (never called for this node's own). */
  apply: (command: QuarantineCommand, envelope: ControlEnvelope) => void
  logger: Logger
  now?: () => number
}

export class ControlChannel {
  readonly #options: ControlChannelOptions & { now: () => number }

  constructor (options: ControlChannelOptions) {
    this.#options = { now: () => Date.now(), ...options }
  }

  /** Subscribes, then applies the quarantines still in force (as commands with what remains of their duration). */
  async start (): Promise<void> {
    const { subscriber, keys, logger } = this.#options
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== keys.controlChannel) return
      const envelope = parseEnvelope(message)
      if (!envelope) return logger.error({ channel }, 'unreadable control message in the cluster channel; ignored')
      if (envelope.origin !== this.#options.nodeId) this.#options.apply(envelope.command, envelope)
    })
    await subscriber.subscribe(keys.controlChannel)
    for (const envelope of await this.inForce()) this.#options.apply(envelope.command, envelope)
  }

  /** Passes on a command this node acted on. */
  async publish (command: QuarantineCommand): Promise<void> {
    const { redis, keys, nodeId } = this.#options
    const envelope: ControlEnvelope = { origin: nodeId, at: this.#options.now(), command }
    const json = JSON.stringify(envelope)
    const transaction = redis.multi()
    if (command.action === 'quarantine') transaction.hset(keys.quarantine, command.deviceId, json)
    else transaction.hdel(keys.quarantine, command.deviceId)
    const results = await transaction.publish(keys.controlChannel, json).exec()
    for (const [error] of results ?? []) if (error) throw error
  }

  /** Quarantines kept in Redis that have not ended, each with the duration left. */
  async inForce (): Promise<ControlEnvelope[]> {
    const { redis, keys } = this.#options
    const now = this.#options.now()
    const stored = await redis.hgetall(keys.quarantine)
    const result: ControlEnvelope[] = []
    for (const value of Object.values(stored)) {
      const envelope = parseEnvelope(value)
      if (envelope?.command.action !== 'quarantine') continue
      const left = envelope.at + envelope.command.durationMs - now
      if (left > 0) result.push({ ...envelope, command: { ...envelope.command, durationMs: left } })
    }
    return result
  }
}

function parseEnvelope (text: string): ControlEnvelope | undefined {
  try {
    const result = envelopeSchema.safeParse(JSON.parse(text))
    return result.success ? result.data : undefined
  } catch {
    return undefined
  }
}
