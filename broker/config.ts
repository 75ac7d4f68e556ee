/**
 * The broker's sections of the configuration: its limits (`broker`) and
 * where it keeps its state (`brokerState`). The `.describe()` texts are the
 * limits' one description (docs/configuration.md is generated from them);
 * app/config.ts composes the sections into the whole configuration.
 */
import { z } from 'zod'
import { positive } from '../shared/config-fields.ts'

/** The limits PlaceGuardBroker enforces itself (BrokerOptions.limits). */
const brokerLimits = z.strictObject({
  maxPacketBytes: positive.describe('largest MQTT packet accepted, bytes; a larger one closes the connection'),
  maxConnections: positive.describe('connections at once, authenticated or not; at the limit an unfinished TLS handshake is dropped (the oldest whose peer has sent nothing, or else the oldest), or else the new connection refused'),
  reservedConnections: z.coerce.number().int().min(0).describe('of maxConnections, slots only authenticated sessions may hold'),
  maxConnectionsPerAddress: positive.describe('connections from one source address (IPv6: one /64) not yet past their MQTT CONNECT; connected sessions do not count (devices behind one NAT share an address)'),
  maxHandshakesPerAddress: positive.describe('TLS handshakes in progress at once from one source address (IPv6: one /64)'),
  maxCollectorSessions: positive.describe('sessions at once holding the collector certificate'),
  publishRatePerSec: z.coerce.number().min(0).describe('sustained publishes per second per device; beyond it the device\'s socket is read more slowly; 0 = unlimited'),
  publishBurst: positive.describe('publishes back to back before the rate applies'),
  integrationPublishRatePerSec: z.coerce.number().min(0).describe('sustained publishes per second per LoRaWAN integration (a network server publishing for its whole fleet); beyond it its socket is read more slowly; 0 = unlimited'),
  integrationPublishBurst: positive.describe('publishes back to back a LoRaWAN integration may make before its rate applies'),
  maxThrottleMs: positive.describe('longest a publish is held by the rate limit before the device (or integration) is disconnected'),
  handshakeTimeoutMs: positive.describe('time to finish the TLS handshake, from the TCP accept; bytes trickling in do not extend it. While the broker itself is saturated (a reconnect storm), a peer that has sent bytes may take up to three times it'),
  connectTimeoutMs: positive.describe('time from the TLS handshake to the MQTT CONNECT'),
  crlPollMs: positive.describe('how often the CRL file is checked for changes'),
  tlsTicketLifetimeSec: positive.max(604_800).describe('how long a TLS session ticket lets a device resume without a full handshake, seconds (at most 7 days, RFC 8446); the ticket keys change every 12 h, or every lifetime if longer, and a ticket does not outlive its key'),
})

/** Derived from the schema, so each limit is described once, in its `.describe()` text above. */
export type BrokerLimits = z.infer<typeof brokerLimits>

export const DEFAULT_BROKER_LIMITS: Readonly<BrokerLimits> = Object.freeze({
  maxPacketBytes: 256 * 1024,
  maxConnections: 20_000,
  reservedConnections: 1_000,
  maxConnectionsPerAddress: 1_000,
  maxHandshakesPerAddress: 20,
  maxCollectorSessions: 4,
  publishRatePerSec: 5,
  publishBurst: 50,
  // One integration speaks for a whole LoRaWAN fleet: 10,000 sensors at one
  // uplink every 10–15 min is 11–17/s, so 200/s leaves over 10× headroom
  // (joins after an outage, several applications on one server); a burst of
  // 2,000 takes a gateway's backlog after its backhaul returns (minutes of a
  // site's uplinks) without holding reads. A device's 5/s and 50 would
  // throttle the fleet's first busy minute.
  integrationPublishRatePerSec: 200,
  integrationPublishBurst: 2_000,
  maxThrottleMs: 30_000,
  handshakeTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  crlPollMs: 1_000,
  // Resumption only helps a device whose ticket is still good when it
  // reconnects: an MQTT connection lives for days, so its ticket, issued at
  // connect, must too. 12 h covers a broker restart the same day; the
  // broker checks revocation and expiry on every resumed session itself.
  tlsTicketLifetimeSec: 43_200,
})

/**
 * The `broker` section: the limits above and those of the persistent-session
 * queues (SqlitePersistence), each optional; one left unset takes
 * DEFAULT_BROKER_LIMITS or SqlitePersistence's default.
 */
export const brokerLimitsSchema = brokerLimits.extend({
  maxQueuedPerClient: positive.describe('messages kept for one offline persistent session (the collector); beyond it they are dropped and reported'),
  maxQueuedBytesPerClient: positive.describe('bytes of messages kept for one persistent session; beyond it they are dropped and reported (broker default 134217728, 128 MiB)'),
}).partial().default({})

/** `brokerState`: SqlitePersistence in <data-dir>/broker.db, or the same store in memory. */
export const brokerStateSchema = z.enum(['sqlite', 'memory']).default('sqlite').describe('where the broker keeps sessions, subscriptions, retained and queued messages: sqlite (<data-dir>/broker.db) or memory (lost at a restart; for benches)')
