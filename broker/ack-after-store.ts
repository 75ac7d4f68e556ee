/**
 * PUBACK after the message is kept, not before.
 *
 * aedes 1.2 answers a QoS 1 PUBLISH with PUBACK first and publishes it
 * afterwards (lib/handlers/publish.js: `write(PubAck)`, then
 * `broker.publish`). The publish is what stores the retained message and
 * queues a copy for each offline persistent session (the collector); a
 * broker killed between the two has acknowledged a message it never kept,
 * and the device, holding a PUBACK, will not send it again. Measured: a
 * retained QoS 1 message published just before `kill -9` was missing after
 * the restart in about one run in eight (test/broker/broker-restart.test.ts).
 * QoS 2 already stores before PUBREC.
 *
 * The fix upstream is to swap those two calls. Here, without patching
 * node_modules: the last step of authorizePublish runs aedes' own publish
 * pipeline (retained store, offline queues, delivery to connected
 * subscribers; each resolves after its commit) and only then lets aedes go
 * on; aedes writes the PUBACK and calls `publish` again with the same packet
 * object, which this shim answers at once. A failed store fails the
 * publish: aedes closes the connection, no PUBACK is sent, the device
 * resends. The PUBACK order per client is aedes' own (its publish pipeline
 * is FIFO through the group commit). aedes is pinned to ~1.2.0 for this.
 */
import type { Aedes } from 'aedes'

type PublishDone = (error?: Error | null) => void
type AedesPublish = (packet: object, client: unknown, done?: PublishDone) => void

export class AckAfterStore {
  /** Packets this shim has already published; aedes' second call for each is a no-op. */
  readonly #published = new WeakSet<object>()
  readonly #publish: AedesPublish

  constructor (aedes: Aedes) {
    const original = aedes.publish.bind(aedes) as unknown as AedesPublish
    this.#publish = original
    const published = this.#published
    ;(aedes as unknown as { publish: AedesPublish }).publish = function (packet, client, done) {
      if (typeof client === 'function') return original(packet, client)
      if (published.has(packet)) {
        published.delete(packet)
        done?.(null)
        return
      }
      original(packet, client, done)
    }
  }

  /**
   * The `done` to hand to the authorize hooks for a client's PUBLISH: when
   * they allow a QoS 1 message, it is published (and kept) before aedes is
   * told to go on and acknowledge it.
   */
  wrap (client: unknown, packet: { qos: number }, done: PublishDone): PublishDone {
    return (error) => {
      if (error || packet.qos !== 1) return done(error)
      this.#publish(packet, client, (publishError) => {
        if (publishError) return done(publishError)
        this.#published.add(packet)
        done(null)
      })
    }
  }
}
