/**
 * aedes persistence on the built-in `node:sqlite`: the broker's session
 * state in `<data-dir>/broker.db`, so that a QoS 1 message the broker has
 * PUBACKed and queued for an offline persistent session (the collector,
 * clean=false) is still delivered after the broker is killed and restarted.
 * The in-memory default loses it (issue 11; STRIDE R and D: telemetry and
 * security events vanish without trace).
 *
 * It implements the async interface aedes 1.2 calls (aedes-persistence 11's
 * asyncPersistence.js is the reference; its abstract.js suite runs against
 * this class in test/broker/sqlite-persistence.test.ts), so the cluster mode
 * can put aedes-persistence-redis in its place without touching the broker.
 *
 * Durability. WAL journal: a commit appends to broker.db-wal.
 * - kill -9 / crash of the broker: every commit survives with either
 *   synchronous setting (the written pages are the kernel's, not the
 *   process's); so does everything PUBACKed, since the PUBACK follows it
 *   (aedes acknowledges first; broker/ack-after-store.ts puts it after).
 * - power loss / kernel panic: with synchronous FULL (the default) each
 *   commit that precedes an acknowledgment fsyncs the WAL, so every PUBACKed
 *   message survives; with NORMAL the WAL is synced only at checkpoints and
 *   the last commits before the cut may be lost (the database stays intact).
 *
 * Group commit: every write runs at once, synchronously, inside a
 * transaction that stays open until the end of the current turn of the event
 * loop (setImmediate); its promise resolves only after that COMMIT. aedes
 * sends PUBACK when the promise resolves, so an acknowledged message is
 * always committed, and a burst of publishes shares one commit (and one
 * fsync) instead of paying one each.
 */
import { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import { DatabaseSync } from 'node:sqlite'
import { deserialize, serialize } from 'node:v8'
import { CountedReport } from '../shared/counted-report.ts'
import { type Clock, systemClock } from '../shared/clock.ts'
import { PlaceGuardError } from '../shared/errors.ts'
import type { Logger } from '../shared/logger.ts'
import { SECURITY_EVENTS_PREFIX } from '../shared/topics.ts'
import type { SecurityEvent } from '../shared/security-events.ts'

// qlobber ships no types; aedes-persistence's own matcher, reused so topic
// matching is the reference implementation's ([MQTT-4.7]).
const require = createRequire(import.meta.url)
const QlobberSub = require('qlobber/aedes/qlobber-sub') as new (options: object) => SubscriptionTrie
const { QlobberTrue } = require('qlobber') as { QlobberTrue: new (options: object) => TopicTest }
const QLOBBER_OPTIONS = { wildcard_one: '+', wildcard_some: '#', separator: '/' }

interface SubscriptionTrie {
  subscriptionsCount: number
  add: (topic: string, value: object) => void
  remove: (topic: string, value: object) => void
  match: (topic: string) => TopicSubscription[]
}
interface TopicTest { add: (pattern: string) => void, test: (topic: string) => boolean }

/** A row of subscriptionsByTopic: who gets a message on that topic, at which QoS. */
export interface TopicSubscription { clientId: string, topic: string, qos: number, rh?: number, rap?: boolean, nl?: boolean }

/** The packet fields aedes hands over; kept whole (v8 serialization keeps Buffers and undefined). */
type AnyPacket = Record<string, unknown> & { cmd?: string, topic?: string, payload?: unknown, qos?: number, messageId?: number, brokerId?: string, brokerCounter?: number }
interface ClientRef { id: string }
interface SubscriptionRequest { topic: string, qos: number, rh?: number, rap?: boolean, nl?: boolean, subscriptionIdentifier?: number }
interface AedesLike { id: string, counter: number, publish: (packet: object, done: (error?: Error | null) => void) => void }

/** Rows per page when streaming a client's queue back: memory stays flat however long the queue is. */
const PAGE_ROWS = 256
const DROP_REPORT_EVERY_MS = 60_000
const ACKNOWLEDGED = 'acknowledged'
const BOOKKEEPING = 'bookkeeping'
type Durability = typeof ACKNOWLEDGED | typeof BOOKKEEPING
const QUEUE_OVERFLOW_TOPIC = `${SECURITY_EVENTS_PREFIX}queue-overflow`

export const BROKER_DB_FILE = 'broker.db'
export const DEFAULT_MAX_QUEUED_PER_CLIENT = 100_000
/**
 * 128 MiB: 100,000 telemetry messages take about 30 MB. A device may queue
 * for itself too (a persistent session subscribed to its own topic, echoes
 * left unacknowledged), and up to 256 KiB a message: without a byte bound
 * that is 25 GB of disk per device (STRIDE D).
 */
export const DEFAULT_MAX_QUEUED_BYTES_PER_CLIENT = 128 * 1024 * 1024

export interface SqlitePersistenceOptions {
  /** The database file (`<data-dir>/broker.db`); `:memory:` only for benches and tests. */
  path: string
  /** Messages kept for one offline client; further ones are dropped, counted and reported. */
  maxQueuedPerClient?: number
  /** Bytes (as stored) kept for one client; the same. */
  maxQueuedBytesPerClient?: number
  /**
   * FULL (default): each commit syncs the WAL, so acknowledged messages
   * survive power loss as well as kill -9. NORMAL: the WAL is synced only
   * at checkpoints; a process kill loses nothing (the OS holds the
   * written pages), a power cut may lose the last commits.
   */
  synchronous?: 'FULL' | 'NORMAL'
  logger?: Logger
  clock?: Clock
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, packet BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscriptions (
  client_id TEXT NOT NULL, topic TEXT NOT NULL, qos INTEGER NOT NULL, record BLOB NOT NULL,
  PRIMARY KEY (client_id, topic));
CREATE TABLE IF NOT EXISTS outgoing (
  id INTEGER PRIMARY KEY AUTOINCREMENT, client_id TEXT NOT NULL,
  broker_id TEXT, broker_counter INTEGER, message_id INTEGER, packet BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS outgoing_by_client ON outgoing (client_id, id);
CREATE INDEX IF NOT EXISTS outgoing_by_counter ON outgoing (client_id, broker_id, broker_counter);
CREATE INDEX IF NOT EXISTS outgoing_by_message_id ON outgoing (client_id, message_id);
CREATE TABLE IF NOT EXISTS incoming (
  client_id TEXT NOT NULL, message_id INTEGER NOT NULL, packet BLOB NOT NULL,
  PRIMARY KEY (client_id, message_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS wills (client_id TEXT PRIMARY KEY, broker_id TEXT, packet BLOB NOT NULL) WITHOUT ROWID;
`

interface Waiter { resolve: () => void, reject: (error: unknown) => void }
/** A row this run queued, as the maps of ClientRows hold it. */
interface QueuedRow { id: number, bytes: number, counter: number, messageId: number | null }
/**
 * Every row queued for one client, by this broker's counter and by the
 * packet id given on delivery; kept only while they are all of them (see
 * #rowsOf), so a hit is the row SQL would find.
 */
interface ClientRows { byCounter: Map<number, QueuedRow>, byMessageId: Map<number, QueuedRow> }
interface DropEpisode { count: number, since: number, reportedAt: number }

/** A store that keeps failing (a full disk) is logged once per this period. */
const LOG_FAILURES_EVERY_MS = 10_000
/** After a failed batch the store counts as failing until this long has passed without another (see whenStoring). */
export const STORE_SETTLED_MS = 5_000

export class SqlitePersistence extends EventEmitter<{ 'queue-overflow': [SecurityEvent] }> {
  readonly maxQueuedPerClient: number
  readonly maxQueuedBytesPerClient: number
  readonly #db: DatabaseSync
  readonly #logger: Logger | undefined
  readonly #clock: Clock
  readonly #sql: ReturnType<typeof prepareStatements>
  #trie: SubscriptionTrie = new QlobberSub(QLOBBER_OPTIONS)
  /** Subscribed topics per client (any QoS), for countOffline. */
  #topicsByClient = new Map<string, number>()
  /** Queued rows and their bytes per client, so the bound costs no COUNT(*) per message. */
  #queued = new Map<string, { count: number, bytes: number }>()
  readonly #drops = new Map<string, DropEpisode>()
  /** Queued rows given their packet id by this run (rows an earlier run numbered are not in it). */
  readonly #idsGivenThisRun = new Set<number>()
  /**
   * Clients that may still hold rows queued by an earlier run (those with a
   * queue when the indexes were loaded). Only such rows can hold a packet id
   * this run is about to give again; a client leaves the set once its queue
   * is empty, and never returns to it before the next load.
   */
  #earlierRunQueues = new Set<string>()
  /**
   * The rows of a client's queue in memory, so that a delivery and its
   * PUBACK (the two statements per message after the INSERT) find their row
   * without a lookup: two index searches a message were a tenth of the
   * broker's CPU to a persistent collector. Kept for a client only while
   * the maps hold *every* row of its queue — from an empty queue on, in this
   * run, each row queued under this broker's id with a counter and packet id
   * no other row of it holds — so a hit is the row the SQL lookup would
   * return. Anything else (an earlier run's rows, another broker's message,
   * a packet id given twice, a PUBREL's replacement) drops the client's maps
   * until its queue is empty again, and the SQL lookups answer as before. A
   * miss always asks SQL. Bounded by the queue caps (about 150 bytes a row).
   */
  #rows = new Map<string, ClientRows>()
  /** Clients whose maps were dropped until their queue is next empty. */
  #untracked = new Set<string>()
  #waiting: Waiter[] = []
  readonly #syncAcknowledged: boolean
  #commitScheduled = false
  /** Failed batches, logged once per LOG_FAILURES_EVERY_MS; whether a logged failure's recovery is still to be logged. */
  readonly #failures = new CountedReport(LOG_FAILURES_EVERY_MS)
  #failing = false
  #lastFailureAtMs = -Infinity
  #syncing: 'FULL' | 'NORMAL'
  #broker: AedesLike | undefined
  #destroyed = false
  /** Messages dropped at the cap since start, all clients. */
  droppedTotal = 0

  constructor (options: SqlitePersistenceOptions) {
    super()
    this.maxQueuedPerClient = options.maxQueuedPerClient ?? DEFAULT_MAX_QUEUED_PER_CLIENT
    this.maxQueuedBytesPerClient = options.maxQueuedBytesPerClient ?? DEFAULT_MAX_QUEUED_BYTES_PER_CLIENT
    for (const [name, value] of [['maxQueuedPerClient', this.maxQueuedPerClient], ['maxQueuedBytesPerClient', this.maxQueuedBytesPerClient]] as const) {
      if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer, got ${value}`)
    }
    this.#logger = options.logger
    this.#syncAcknowledged = (options.synchronous ?? 'FULL') === 'FULL'
    this.#syncing = options.synchronous ?? 'FULL'
    this.#clock = options.clock ?? systemClock
    try {
      this.#db = new DatabaseSync(options.path)
      // WAL: a commit is one append to the log; readers never block the writer.
      this.#db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${this.#syncing}; PRAGMA busy_timeout = 5000;`)
      this.#db.exec(SCHEMA)
    } catch (error) {
      throw new PlaceGuardError('PG_ERR_BROKER_STATE', `cannot open the broker state database ${options.path}: ${(error as Error).message}`, {
        hint: 'the data directory must exist and be writable (`placeguard pki init` creates it)', cause: error,
      })
    }
    this.#sql = prepareStatements(this.#db)
    this.#loadIndexes()
  }

  get broker (): AedesLike | undefined { return this.#broker }

  /** Messages queued for a client (delivered or not yet acknowledged). */
  queuedFor (clientId: string): number { return this.#queued.get(clientId)?.count ?? 0 }

  /** Bytes of the messages queued for a client, as stored. */
  queuedBytesFor (clientId: string): number { return this.#queued.get(clientId)?.bytes ?? 0 }

  /**
   * Whether nothing is queued for the client, answered from the counts kept
   * for the queue caps (loaded from broker.db at start). aedes, patched
   * (aedes-patches.ts), asks it at a clean session's CONNECT to skip
   * streaming a queue that cleanSubscriptions has just emptied.
   */
  outgoingEmpty (client: ClientRef): boolean { return this.queuedFor(client.id) === 0 }

  async setup (broker: AedesLike): Promise<void> {
    this.#broker = broker
    // aedes drops a packet whose brokerCounter is not above the last one seen
    // from that broker id. A broker restarted under a fixed id (cluster node
    // ids) starts counting at 0 again, so its new messages would be dropped
    // behind the queued ones: counting resumes after the highest stored.
    const { highest } = this.#db.prepare('SELECT MAX(broker_counter) AS highest FROM outgoing WHERE broker_id = ?').get(broker.id) as { highest: number | null }
    if (highest !== null && highest > broker.counter) broker.counter = highest
  }

  // --- retained (MQTT-3.3.1-5..11) ----------------------------------------------

  async storeRetained (packet: AnyPacket): Promise<void> {
    const topic = String(packet.topic)
    // [MQTT-3.3.1-10] a zero-length retained payload removes the retained message.
    const empty = packet.payload === undefined || (packet.payload as { length: number }).length === 0
    return this.#write(ACKNOWLEDGED, () => {
      if (empty) this.#sql.delRetained.run(topic)
      else this.#sql.putRetained.run(topic, encode({ ...packet }))
    })
  }

  createRetainedStream (pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern])
  }

  createRetainedStreamCombi (patterns: string[]): Readable {
    const matcher = new QlobberTrue(QLOBBER_OPTIONS)
    for (const pattern of patterns) matcher.add(pattern)
    const topics = (this.#sql.retainedTopics.all() as Array<{ topic: string }>).map((row) => row.topic).filter((topic) => matcher.test(topic))
    const sql = this.#sql
    return Readable.from((function * () {
      for (const topic of topics) {
        const row = sql.retainedPacket.get(topic) as { packet: Uint8Array } | undefined
        if (row) yield decode(row.packet)
      }
    })())
  }

  // --- subscriptions -----------------------------------------------------------

  async addSubscriptions (client: ClientRef, subs: SubscriptionRequest[]): Promise<void> {
    return this.#write(ACKNOWLEDGED, () => {
      for (const sub of subs) {
        const stored = this.#sql.getSub.get(client.id, sub.topic) as { qos: number } | undefined
        const record: Record<string, unknown> = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl }
        if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier
        // QoS 0 subscriptions are restored on reconnect but never queue messages (memory persistence does the same).
        if (sub.qos > 0) this.#trie.add(sub.topic, { clientId: client.id, topic: sub.topic, qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl })
        else if (stored && stored.qos > 0) this.#trie.remove(sub.topic, { clientId: client.id, topic: sub.topic })
        if (!stored) this.#topicsByClient.set(client.id, (this.#topicsByClient.get(client.id) ?? 0) + 1)
        this.#sql.putSub.run(client.id, sub.topic, sub.qos, encode(record))
      }
    })
  }

  async removeSubscriptions (client: ClientRef, topics: string[]): Promise<void> {
    return this.#write(ACKNOWLEDGED, () => {
      for (const topic of topics) {
        const stored = this.#sql.getSub.get(client.id, topic) as { qos: number } | undefined
        if (!stored) continue
        if (stored.qos > 0) this.#trie.remove(topic, { clientId: client.id, topic })
        this.#sql.delSub.run(client.id, topic)
        const left = (this.#topicsByClient.get(client.id) ?? 1) - 1
        if (left > 0) this.#topicsByClient.set(client.id, left)
        else this.#topicsByClient.delete(client.id)
      }
    })
  }

  async subscriptionsByClient (client: ClientRef): Promise<SubscriptionRequest[]> {
    return (this.#sql.subsOf.all(client.id) as Array<{ topic: string, record: Uint8Array }>)
      .map((row) => ({ topic: row.topic, ...decode(row.record) }) as SubscriptionRequest)
  }

  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> {
    return { subsCount: this.#trie.subscriptionsCount, clientsCount: this.#topicsByClient.size }
  }

  async subscriptionsByTopic (topic: string): Promise<TopicSubscription[]> {
    return this.#trie.match(topic)
  }

  /**
   * A client connecting with clean=true ends its previous session: its
   * subscriptions and the messages queued for it go ([MQTT-3.1.2-6]).
   * aedes would otherwise stream the whole old queue back only to discard it.
   */
  async cleanSubscriptions (client: ClientRef): Promise<void> {
    return this.#write(ACKNOWLEDGED, () => {
      for (const row of this.#sql.subsOf.all(client.id) as Array<{ topic: string, qos: number }>) {
        if (row.qos > 0) this.#trie.remove(row.topic, { clientId: client.id, topic: row.topic })
      }
      this.#sql.delSubsOf.run(client.id)
      this.#topicsByClient.delete(client.id)
      this.#sql.delOutgoingOf.run(client.id)
      this.#queued.delete(client.id)
      this.#earlierRunQueues.delete(client.id)
      this.#rows.delete(client.id)
      this.#untracked.delete(client.id)
    })
  }

  getClientList (topic: string): Readable {
    return Readable.from((this.#sql.clientsOf.all(topic) as Array<{ client_id: string }>).map((row) => row.client_id))
  }

  // --- outgoing queue per client -----------------------------------------------

  async outgoingEnqueue (sub: { clientId: string }, packet: AnyPacket): Promise<void> {
    return this.#write(ACKNOWLEDGED, () => this.#enqueue(sub.clientId, packet))
  }

  async outgoingEnqueueCombi (subs: Array<{ clientId: string }>, packet: AnyPacket): Promise<void> {
    // aedes calls this for every QoS > 0 publish: with no persistent subscriber, no commit (and no fsync).
    if (subs.length === 0) return
    return this.#write(ACKNOWLEDGED, () => {
      for (const sub of subs) this.#enqueue(sub.clientId, packet)
    })
  }

  /**
   * Records the packet id given to a queued message (same broker and
   * counter), or replaces the entry holding that packet id (e.g. a PUBLISH
   * by its PUBREL, [MQTT-4.3.3]). A PUBREL with nothing to replace rejects,
   * as memory does; a PUBLISH does not: it is one the bound kept out of the
   * queue, on its way to a connected client that is slow to acknowledge (a
   * collector whose spool is full). aedes disconnects a client on a
   * rejection, so rejecting would cut the collector off at every message
   * (STRIDE D); instead it gets the message live, without redelivery.
   */
  async outgoingUpdate (client: ClientRef, packet: AnyPacket): Promise<void> {
    // No row queued for this client (a clean session, such as a device or a
    // clean collector): nothing can match, and there is nothing to commit.
    // aedes calls this for every QoS 1 message it delivers live; a
    // transaction and two lookups each were a sixth of the broker's CPU per
    // message in the fleet bench (docs/perf/broker-fleet.md).
    if (!this.#destroyed && this.queuedFor(client.id) === 0) {
      if (packet.cmd !== 'publish') throw new Error('no such packet')
      return
    }
    return this.#write(BOOKKEEPING, () => {
      const rows = packet.brokerId !== undefined && packet.brokerId === this.#broker?.id ? this.#rowsOf(client.id) : undefined
      const row = typeof packet.brokerCounter === 'number' ? rows?.byCounter.get(packet.brokerCounter) : undefined
      if (rows && row) {
        const messageId = packet.messageId ?? null
        this.#sql.setMessageId.run(messageId, row.id)
        if (messageId !== null) this.#idsGivenThisRun.add(row.id)
        if (row.messageId !== null) rows.byMessageId.delete(row.messageId)
        row.messageId = messageId
        if (messageId === null) return
        if (rows.byMessageId.has(messageId)) this.#untrack(client.id) // a packet id on two rows: SQL's order decides
        else rows.byMessageId.set(messageId, row)
        return
      }
      if (packet.brokerId !== undefined && packet.brokerCounter !== undefined) {
        const same = this.#sql.byCounter.get(client.id, packet.brokerId, packet.brokerCounter) as { id: number } | undefined
        if (same) {
          this.#untrack(client.id) // the maps should have had it
          // A packet id names one queued message per client [MQTT-2.3.1-2]. After
          // a restart aedes numbers new messages from a random start while the
          // earlier run's queued ones keep their ids: one not yet resent may hold
          // this id. It gives the id up (it is resent with a fresh one), or the
          // PUBACK for this message would clear that one — and lose it. Ids given
          // in this run are aedes' own business and stay as they are, so a
          // client without rows of an earlier run skips the lookup.
          if (packet.messageId !== undefined && packet.messageId !== null && this.#earlierRunQueues.has(client.id)) {
            for (const { id } of this.#sql.holdersOfMessageId.all(client.id, packet.messageId, same.id) as Array<{ id: number }>) {
              if (!this.#idsGivenThisRun.has(id)) this.#sql.setMessageId.run(null, id)
            }
          }
          if (packet.messageId !== undefined && packet.messageId !== null) this.#idsGivenThisRun.add(same.id)
          this.#sql.setMessageId.run(packet.messageId ?? null, same.id)
          return
        }
      }
      if (packet.messageId !== undefined && packet.messageId !== null) {
        const other = this.#sql.byMessageIdOtherBroker.get(client.id, packet.messageId, packet.brokerId ?? null) as { id: number, bytes: number } | undefined
        if (other) {
          this.#untrack(client.id)
          const encoded = encode(withoutMessageId(packet))
          this.#sql.replace.run(packet.brokerId ?? null, packet.brokerCounter ?? null, packet.messageId, encoded, other.id)
          this.#countQueued(client.id, 0, encoded.length - other.bytes)
          return
        }
      }
      if (packet.cmd !== 'publish') throw new Error('no such packet')
    })
  }

  /**
   * Whether a message queued for the client holds this packet id, so that
   * aedes (patched: broker/aedes-patches.ts, `unused-packet-id`) gives a new
   * message another one [MQTT-2.3.1-2]. Asked once per message aedes
   * numbers: a clean session has no queue and answers from the counts, a
   * persistent one from its maps, and SQL answers only for a queue the maps
   * do not hold whole (an earlier run's rows).
   */
  outgoingIdHeld (client: ClientRef, messageId: number): boolean {
    if (this.#destroyed || this.queuedFor(client.id) === 0) return false
    const rows = this.#rowsOf(client.id)
    if (rows) return rows.byMessageId.has(messageId)
    return this.#sql.byMessageIdBytes.get(client.id, messageId) !== undefined
  }

  /** PUBACK / PUBCOMP: the message is delivered and leaves the queue. */
  async outgoingClearMessageId (client: ClientRef, packet: AnyPacket): Promise<AnyPacket | undefined> {
    const messageId = packet?.messageId
    if (messageId === undefined || messageId === null) return undefined
    // Nothing queued for this client: the PUBACK of a message it got live.
    if (!this.#destroyed && this.queuedFor(client.id) === 0) return undefined
    // aedes hands the cleared packet to its 'ack' event and nothing else; with
    // no listener (PlaceGuard has none) it is not read back and decoded, which
    // was a twentieth of the CPU per message to a persistent collector.
    if (!this.#ackListened()) {
      return this.#write(BOOKKEEPING, () => {
        const rows = this.#rowsOf(client.id)
        const known = rows?.byMessageId.get(messageId)
        if (rows && known) {
          this.#sql.delOutgoing.run(known.id)
          rows.byMessageId.delete(messageId)
          rows.byCounter.delete(known.counter)
          this.#idsGivenThisRun.delete(known.id)
          this.#countQueued(client.id, -1, -known.bytes)
          return undefined
        }
        const row = this.#sql.byMessageIdBytes.get(client.id, messageId) as { id: number, bytes: number } | undefined
        if (!row) return undefined
        this.#untrack(client.id) // the maps should have had it
        this.#sql.delOutgoing.run(row.id)
        this.#idsGivenThisRun.delete(row.id)
        this.#countQueued(client.id, -1, -row.bytes)
        return undefined
      })
    }
    return this.#write(BOOKKEEPING, () => {
      const row = this.#sql.byMessageId.get(client.id, messageId) as { id: number, message_id: number, packet: Uint8Array } | undefined
      if (!row) return undefined
      this.#sql.delOutgoing.run(row.id)
      // The packet is read back for aedes' 'ack': the row is found by SQL, and leaves the maps.
      const rows = this.#rowsOf(client.id)
      const known = rows?.byMessageId.get(messageId)
      if (rows && known?.id === row.id) {
        rows.byMessageId.delete(messageId)
        rows.byCounter.delete(known.counter)
      } else if (rows) this.#untrack(client.id)
      this.#idsGivenThisRun.delete(row.id)
      this.#countQueued(client.id, -1, -row.packet.length)
      return rowPacket(row)
    })
  }

  outgoingStream (client: ClientRef): Readable {
    const page = this.#sql.page
    // Paged by row id: rows cleared while the stream is read are skipped, and
    // a queue of 100,000 messages is never held in memory at once.
    return Readable.from((function * () {
      let after = 0
      for (;;) {
        const rows = page.all(client.id, after, PAGE_ROWS) as Array<{ id: number, message_id: number | null, packet: Uint8Array }>
        for (const row of rows) yield rowPacket(row)
        if (rows.length < PAGE_ROWS) return
        after = rows[rows.length - 1]!.id
      }
    })())
  }

  // --- incoming QoS 2 (MQTT-4.3.3) -----------------------------------------------

  async incomingStorePacket (client: ClientRef, packet: AnyPacket): Promise<void> {
    return this.#write(ACKNOWLEDGED, () => {
      this.#sql.putIncoming.run(client.id, packet.messageId!, encode(packetFields(packet, packet.messageId)))
    })
  }

  async incomingGetPacket (client: ClientRef, packet: AnyPacket): Promise<AnyPacket> {
    const row = this.#sql.getIncoming.get(client.id, packet.messageId ?? -1) as { packet: Uint8Array } | undefined
    if (!row) throw new Error('no such packet')
    return decode(row.packet)
  }

  async incomingDelPacket (client: ClientRef, packet: AnyPacket): Promise<void> {
    return this.#write(ACKNOWLEDGED, () => {
      const { changes } = this.#sql.delIncoming.run(client.id, packet.messageId ?? -1)
      if (changes === 0) throw new Error('no such packet')
    })
  }

  async cleanIncoming (client: ClientRef): Promise<void> {
    return this.#write(ACKNOWLEDGED, () => { this.#sql.delIncomingOf.run(client.id) })
  }

  // --- wills (MQTT-3.1.2-8) ---------------------------------------------------------

  async putWill (client: ClientRef, packet: AnyPacket): Promise<void> {
    packet.brokerId = this.#broker?.id
    packet.clientId = client.id
    return this.#write(ACKNOWLEDGED, () => { this.#sql.putWill.run(client.id, packet.brokerId ?? null, encode({ ...packet })) })
  }

  async getWill (client: ClientRef): Promise<AnyPacket | undefined> {
    const row = this.#sql.getWill.get(client.id) as { packet: Uint8Array } | undefined
    return row && decode(row.packet)
  }

  /**
   * Never rejects. aedes' CONNECT deletes the previous will with
   * `.finally()` and no handler, so a rejection (the store closing under a
   * connecting client, a full disk) would be an unhandled rejection, which
   * ends the process. A will that could not be deleted is logged, and the
   * CONNECT goes on, as aedes meant it to.
   */
  async delWill (client: ClientRef): Promise<AnyPacket | undefined> {
    try {
      return await this.#write(ACKNOWLEDGED, () => {
        const row = this.#sql.getWill.get(client.id) as { packet: Uint8Array } | undefined
        if (row) this.#sql.delWill.run(client.id)
        return row && decode(row.packet)
      })
    } catch (error) {
      if (!this.#destroyed) this.#logger?.warn({ clientId: client.id, err: (error as Error).message }, 'could not delete a will')
      return undefined
    }
  }

  /** Wills of clients whose broker is not among the live ones (after a crash, this broker's own). */
  streamWill (brokers: Record<string, unknown> = {}): Readable {
    const rows = this.#sql.allWills.all() as Array<{ broker_id: string | null, packet: Uint8Array }>
    return Readable.from(rows.filter((row) => !brokers[row.broker_id ?? '']).map((row) => decode(row.packet)))
  }

  async destroy (): Promise<void> {
    if (this.#destroyed) return
    this.#destroyed = true
    this.#commit()
    this.#db.close()
  }

  // --- internals -------------------------------------------------------------------

  #enqueue (clientId: string, packet: AnyPacket): void {
    const stored = packetFields(packet, undefined)
    const encoded = encodeQueued(stored)
    if (this.queuedFor(clientId) >= this.maxQueuedPerClient || this.queuedBytesFor(clientId) + encoded.length > this.maxQueuedBytesPerClient) {
      this.#dropped(clientId)
      return
    }
    this.#insert(clientId, stored, encoded)
    const episode = this.#drops.get(clientId)
    if (episode) {
      this.#drops.delete(clientId)
      this.#reportGapEnded(clientId, episode)
    }
  }

  #insert (clientId: string, stored: AnyPacket, encoded = encodeQueued(stored)): void {
    const { lastInsertRowid } = this.#sql.enqueue.run(clientId, stored.brokerId ?? null, stored.brokerCounter ?? null, encoded)
    const empty = this.queuedFor(clientId) === 0
    this.#countQueued(clientId, 1, encoded.length)
    if (empty) {
      // An empty queue: its maps start complete.
      this.#untracked.delete(clientId)
      this.#rows.set(clientId, { byCounter: new Map(), byMessageId: new Map() })
    }
    const rows = this.#rowsOf(clientId)
    if (!rows) return
    const counter = stored.brokerCounter
    if (stored.brokerId === undefined || stored.brokerId !== this.#broker?.id || typeof counter !== 'number' || rows.byCounter.has(counter)) this.#untrack(clientId)
    else rows.byCounter.set(counter, { id: Number(lastInsertRowid), bytes: encoded.length, counter, messageId: null })
  }

  /** The client's rows in memory, if they are all of its queue. */
  #rowsOf (clientId: string): ClientRows | undefined {
    if (this.#earlierRunQueues.has(clientId) || this.#untracked.has(clientId)) return undefined
    return this.#rows.get(clientId)
  }

  /** The maps no longer hold every row of the client's queue: SQL answers until it is empty. */
  #untrack (clientId: string): void {
    this.#rows.delete(clientId)
    this.#untracked.add(clientId)
  }

  /** Every queue is bounded and every drop counted (STYLE 5; STRIDE D: a collector kept away must not fill the disk). */
  #dropped (clientId: string): void {
    this.droppedTotal++
    const now = this.#clock.now()
    const episode = this.#drops.get(clientId) ?? { count: 0, since: now, reportedAt: -Infinity }
    episode.count++
    this.#drops.set(clientId, episode)
    if (now - episode.reportedAt < DROP_REPORT_EVERY_MS) return
    episode.reportedAt = now
    const event = this.#event(clientId, `the queue for ${clientId} is full (${this.#bounds()}): new messages for it are dropped (sent only if it is connected, never again)`, episode, false)
    // Published like the broker's own events, so other collectors store it;
    // the full queue itself drops it (and counts it).
    this.#broker?.publish({ cmd: 'publish', topic: QUEUE_OVERFLOW_TOPIC, payload: Buffer.from(JSON.stringify(event)), qos: 1, retain: false, dup: false }, () => {})
  }

  /**
   * The queue has room again: the client learns how many messages it
   * missed from an event placed in its own queue right after the first
   * message past the gap (beyond the bound by this one entry per episode).
   */
  #reportGapEnded (clientId: string, episode: DropEpisode): void {
    const event = this.#event(clientId, `${episode.count} messages for ${clientId} were dropped while its queue was full (${this.#bounds()}); it has room again`, episode, true)
    const subscribed = this.#trie.match(QUEUE_OVERFLOW_TOPIC).some((sub) => sub.clientId === clientId && !sub.topic.startsWith('#') && !sub.topic.startsWith('+'))
    if (!subscribed || !this.#broker) return
    // A fresh counter keeps aedes' per-broker de-duplication (brokerCounter must rise) from discarding it.
    this.#insert(clientId, packetFields({
      cmd: 'publish', topic: QUEUE_OVERFLOW_TOPIC, payload: Buffer.from(JSON.stringify(event)), qos: 1, retain: false, dup: false,
      brokerId: this.#broker.id, brokerCounter: ++this.#broker.counter,
    }, undefined))
  }

  /** Whether anyone listens to aedes' 'ack' (a broker that cannot tell is taken to have listeners). */
  #ackListened (): boolean {
    const broker = this.#broker as { listenerCount?: (event: string) => number } | undefined
    return typeof broker?.listenerCount !== 'function' || broker.listenerCount('ack') > 0
  }

  #bounds (): string {
    return `${this.maxQueuedPerClient} messages or ${Math.round(this.maxQueuedBytesPerClient / 1024)} KiB`
  }

  #event (clientId: string, reason: string, episode: DropEpisode, ended: boolean): SecurityEvent {
    const event: SecurityEvent = {
      type: 'queue-overflow', at: new Date(this.#clock.now()).toISOString(), deviceId: clientId, reason,
      details: { dropped: episode.count, limit: this.maxQueuedPerClient, limitBytes: this.maxQueuedBytesPerClient, since: new Date(episode.since).toISOString(), ended },
    }
    this.#logger?.warn({ event }, 'security event: queue-overflow')
    this.emit('queue-overflow', event)
    return event
  }

  #countQueued (clientId: string, messages: number, bytes: number): void {
    const count = this.queuedFor(clientId) + messages
    if (count > 0) this.#queued.set(clientId, { count, bytes: this.queuedBytesFor(clientId) + bytes })
    else {
      this.#queued.delete(clientId)
      this.#earlierRunQueues.delete(clientId)
      this.#rows.delete(clientId)
      this.#untracked.delete(clientId)
    }
  }

  /**
   * Runs `work` now in the open transaction; resolves after the COMMIT at
   * the end of this turn. With synchronous FULL, a batch is synced only if
   * it holds an ACKNOWLEDGED write (a queued message before its PUBACK, a
   * subscription before its SUBACK, a QoS 2 packet before its PUBREC).
   * BOOKKEEPING (a packet id given, a delivered message cleared) commits
   * without a sync: a power cut may undo it, and the message is sent again
   * (at least once, [MQTT-4.3.2]); a later synced commit makes it durable
   * too, since WAL frames are synced in order.
   */
  #write<T> (durability: Durability, work: () => T): Promise<T> {
    if (this.#destroyed) return Promise.reject(new Error('persistence destroyed'))
    const wanted = durability === ACKNOWLEDGED && this.#syncAcknowledged ? 'FULL' : 'NORMAL'
    if (this.#db.isTransaction && wanted === 'FULL' && this.#syncing === 'NORMAL') {
      // The safety level is fixed for a transaction: what the batch holds so
      // far commits now, unsynced (cheap); the FULL commit below syncs it too.
      this.#commitOrFail()
    }
    if (!this.#db.isTransaction) {
      if (wanted !== this.#syncing) {
        this.#db.exec(`PRAGMA synchronous = ${wanted}`)
        this.#syncing = wanted
      }
      this.#db.exec('BEGIN IMMEDIATE')
      if (!this.#commitScheduled) {
        this.#commitScheduled = true
        setImmediate(() => this.#commit())
      }
    }
    let result: T
    try {
      result = work()
    } catch (error) {
      // SQLite may roll back the whole open batch from inside a failed
      // statement (a full disk, an I/O error): the batch's earlier writes
      // would then still resolve at the end of the turn, acknowledged but
      // gone. Then the batch fails whole; its clients are disconnected and
      // resend. Any other refusal (a PUBREC for a packet id the client was
      // never sent: 'no such packet') is that write's alone — failing the
      // batch for it would let one hostile client fail everyone else's.
      if (!this.#db.isTransaction) this.#failBatch(error)
      return Promise.reject(error)
    }
    return new Promise<T>((resolve, reject) => this.#waiting.push({ resolve: () => resolve(result), reject }))
  }

  /**
   * Undefined while the store keeps writes; otherwise a Promise that
   * resolves once STORE_SETTLED_MS have passed without a failed batch. On a
   * full disk most batches fail, but one that needs no new page may still
   * commit, so one success says little: the broker's answer to the
   * collector's probe waits for this, and detection does not judge devices
   * silent whose messages the broker could not keep.
   */
  whenStoring (): Promise<void> | undefined {
    if (Date.now() - this.#lastFailureAtMs >= STORE_SETTLED_MS) return undefined
    return new Promise((resolve) => {
      const check = (): void => {
        const left = STORE_SETTLED_MS - (Date.now() - this.#lastFailureAtMs)
        if (left <= 0 || this.#destroyed) resolve()
        else setTimeout(check, left)
      }
      check()
    })
  }

  #commit (): void {
    this.#commitScheduled = false
    if (!this.#db.isOpen) return
    if (this.#db.isTransaction && !this.#commitOrFail()) return
    const waiting = this.#waiting
    this.#waiting = []
    if (this.#failing && waiting.length > 0) {
      this.#failing = false
      this.#logger?.info({ failedBatchesNotLogged: this.#failures.takeUnreported() }, 'broker state commits again')
    }
    for (const waiter of waiting) waiter.resolve()
  }

  #commitOrFail (): boolean {
    try {
      this.#db.exec('COMMIT')
      return true
    } catch (error) {
      this.#failBatch(error)
      return false
    }
  }

  /**
   * Disk full or I/O error: nothing of the open batch is acknowledged (its
   * waiters are rejected), and the in-memory indexes are rebuilt from what
   * the database really holds.
   */
  #failBatch (error: unknown): void {
    if (this.#db.isTransaction) this.#db.exec('ROLLBACK')
    this.#lastFailureAtMs = Date.now()
    // A full disk fails most batches, many a second (one that needs no new page may still commit): one line per
    // period with the count, and one when a batch commits again after a logged failure.
    const failedBatches = this.#failures.count(this.#lastFailureAtMs)
    if (failedBatches !== undefined) {
      this.#logger?.error({ err: (error as Error).message, failedBatches }, 'broker state not committed; the messages of failed batches are not acknowledged')
      this.#failing = true
    }
    this.#loadIndexes()
    const waiting = this.#waiting
    this.#waiting = []
    for (const waiter of waiting) waiter.reject(error)
  }

  #loadIndexes (): void {
    this.#trie = new QlobberSub(QLOBBER_OPTIONS)
    this.#topicsByClient = new Map()
    for (const row of this.#db.prepare('SELECT client_id, topic, record FROM subscriptions ORDER BY rowid').all() as Array<{ client_id: string, topic: string, record: Uint8Array }>) {
      const record = decode(row.record) as unknown as SubscriptionRequest
      this.#topicsByClient.set(row.client_id, (this.#topicsByClient.get(row.client_id) ?? 0) + 1)
      if (record.qos > 0) this.#trie.add(row.topic, { clientId: row.client_id, topic: row.topic, qos: record.qos, rh: record.rh, rap: record.rap, nl: record.nl })
    }
    this.#queued = new Map()
    for (const row of this.#db.prepare('SELECT client_id, COUNT(*) AS count, SUM(length(packet)) AS bytes FROM outgoing GROUP BY client_id').all() as Array<{ client_id: string, count: number, bytes: number }>) {
      this.#queued.set(row.client_id, { count: row.count, bytes: row.bytes })
    }
    this.#earlierRunQueues = new Set(this.#queued.keys())
    this.#rows = new Map()
    this.#untracked = new Set()
  }
}

export function createSqlitePersistence (options: SqlitePersistenceOptions): SqlitePersistence {
  return new SqlitePersistence(options)
}

/** Every statement, prepared once. */
function prepareStatements (db: DatabaseSync) {
  return {
    putRetained: db.prepare('INSERT INTO retained (topic, packet) VALUES (?, ?) ON CONFLICT (topic) DO UPDATE SET packet = excluded.packet'),
    delRetained: db.prepare('DELETE FROM retained WHERE topic = ?'),
    retainedTopics: db.prepare('SELECT topic FROM retained'),
    retainedPacket: db.prepare('SELECT packet FROM retained WHERE topic = ?'),
    putSub: db.prepare('INSERT INTO subscriptions (client_id, topic, qos, record) VALUES (?, ?, ?, ?) ON CONFLICT (client_id, topic) DO UPDATE SET qos = excluded.qos, record = excluded.record'),
    getSub: db.prepare('SELECT qos FROM subscriptions WHERE client_id = ? AND topic = ?'),
    delSub: db.prepare('DELETE FROM subscriptions WHERE client_id = ? AND topic = ?'),
    subsOf: db.prepare('SELECT topic, qos, record FROM subscriptions WHERE client_id = ? ORDER BY rowid'),
    delSubsOf: db.prepare('DELETE FROM subscriptions WHERE client_id = ?'),
    clientsOf: db.prepare('SELECT client_id FROM subscriptions WHERE topic = ? ORDER BY rowid'),
    enqueue: db.prepare('INSERT INTO outgoing (client_id, broker_id, broker_counter, message_id, packet) VALUES (?, ?, ?, NULL, ?)'),
    byCounter: db.prepare('SELECT id FROM outgoing WHERE client_id = ? AND broker_id = ? AND broker_counter = ? ORDER BY id LIMIT 1'),
    byMessageIdOtherBroker: db.prepare('SELECT id, length(packet) AS bytes FROM outgoing WHERE client_id = ? AND message_id = ? AND broker_id IS NOT ? ORDER BY id LIMIT 1'),
    setMessageId: db.prepare('UPDATE outgoing SET message_id = ? WHERE id = ?'),
    holdersOfMessageId: db.prepare('SELECT id FROM outgoing WHERE client_id = ? AND message_id = ? AND id <> ?'),
    replace: db.prepare('UPDATE outgoing SET broker_id = ?, broker_counter = ?, message_id = ?, packet = ? WHERE id = ?'),
    byMessageId: db.prepare('SELECT id, message_id, packet FROM outgoing WHERE client_id = ? AND message_id = ? ORDER BY id LIMIT 1'),
    byMessageIdBytes: db.prepare('SELECT id, length(packet) AS bytes FROM outgoing WHERE client_id = ? AND message_id = ? ORDER BY id LIMIT 1'),
    delOutgoing: db.prepare('DELETE FROM outgoing WHERE id = ?'),
    delOutgoingOf: db.prepare('DELETE FROM outgoing WHERE client_id = ?'),
    page: db.prepare('SELECT id, message_id, packet FROM outgoing WHERE client_id = ? AND id > ? ORDER BY id LIMIT ?'),
    putIncoming: db.prepare('INSERT INTO incoming (client_id, message_id, packet) VALUES (?, ?, ?) ON CONFLICT (client_id, message_id) DO UPDATE SET packet = excluded.packet'),
    getIncoming: db.prepare('SELECT packet FROM incoming WHERE client_id = ? AND message_id = ?'),
    delIncoming: db.prepare('DELETE FROM incoming WHERE client_id = ? AND message_id = ?'),
    delIncomingOf: db.prepare('DELETE FROM incoming WHERE client_id = ?'),
    putWill: db.prepare('INSERT INTO wills (client_id, broker_id, packet) VALUES (?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET broker_id = excluded.broker_id, packet = excluded.packet'),
    getWill: db.prepare('SELECT packet FROM wills WHERE client_id = ?'),
    delWill: db.prepare('DELETE FROM wills WHERE client_id = ?'),
    allWills: db.prepare('SELECT broker_id, packet FROM wills ORDER BY client_id'),
  }
}

/** The fields of aedes-packet's Packet (what the memory persistence keeps), with a given packet id. */
function packetFields (packet: AnyPacket, messageId: number | undefined): AnyPacket {
  const fields: AnyPacket = {}
  for (const key of ['clientId', 'nl', 'properties', 'messageExpiry'] as const) {
    if (Object.hasOwn(packet, key)) fields[key] = packet[key]
  }
  Object.assign(fields, {
    cmd: packet.cmd || 'publish', brokerId: packet.brokerId, brokerCounter: packet.brokerCounter || 0, topic: packet.topic,
    payload: packet.payload || Buffer.alloc(0), qos: packet.qos || 0, retain: packet.retain || false, dup: packet.dup || false,
  })
  // [MQTT-2.3.1-5] a packet id only for QoS > 0
  if ((fields.qos as number) > 0 || fields.cmd !== 'publish') fields.messageId = messageId
  return fields
}

function withoutMessageId (packet: AnyPacket): AnyPacket {
  const rest = { ...packet }
  delete rest.messageId
  return rest
}

function rowPacket (row: { message_id: number | null, packet: Uint8Array }): AnyPacket {
  const packet = decodeQueued(row.packet)
  packet.messageId = row.message_id ?? undefined
  return packet
}

/**
 * A queued message in its own layout: a publish from a device (no MQTT 5
 * properties, no expiry) is the flags, the broker counter, the topic and
 * broker id, then the payload as it is. v8 serialization of the same packet
 * (a JS callback for the Buffer, a copy in, a copy out) was a sixth of the
 * store's CPU per message to a persistent collector. Anything else keeps
 * v8's format; a v8 blob starts with its version tag (0xFF), this one with
 * QUEUED_FORMAT, so rows written by earlier runs read as they always did.
 *
 *   u8 QUEUED_FORMAT | u8 flags (qos, retain, dup, has broker id) | f64 broker counter
 *   | u32 topic bytes | topic | [u32 broker id bytes | broker id] | payload
 */
const QUEUED_FORMAT = 0x01
const HAS_BROKER_ID = 0x10

function encodeQueued (packet: AnyPacket): Uint8Array {
  const { topic, payload, brokerId, brokerCounter, qos, retain, dup } = packet
  if (packet.cmd !== 'publish' || typeof topic !== 'string' || !(payload instanceof Uint8Array) || typeof brokerCounter !== 'number' ||
    (brokerId !== undefined && typeof brokerId !== 'string') || (qos !== 0 && qos !== 1 && qos !== 2) || typeof retain !== 'boolean' || typeof dup !== 'boolean' ||
    Object.hasOwn(packet, 'clientId') || Object.hasOwn(packet, 'nl') || Object.hasOwn(packet, 'properties') || Object.hasOwn(packet, 'messageExpiry')) {
    return encode(packet)
  }
  const topicBytes = Buffer.byteLength(topic)
  const brokerIdBytes = brokerId === undefined ? 0 : 4 + Buffer.byteLength(brokerId)
  const bytes = Buffer.allocUnsafe(14 + topicBytes + brokerIdBytes + payload.length)
  bytes[0] = QUEUED_FORMAT
  bytes[1] = qos | (retain ? 0x04 : 0) | (dup ? 0x08 : 0) | (brokerId === undefined ? 0 : HAS_BROKER_ID)
  bytes.writeDoubleLE(brokerCounter, 2)
  bytes.writeUInt32LE(topicBytes, 10)
  let at = 14 + bytes.write(topic, 14)
  if (brokerId !== undefined) {
    at += 4 + bytes.write(brokerId, at + 4)
    bytes.writeUInt32LE(brokerIdBytes - 4, at - brokerIdBytes)
  }
  bytes.set(payload, at)
  return bytes
}

function decodeQueued (bytes: Uint8Array): AnyPacket {
  if (bytes[0] !== QUEUED_FORMAT) return decode(bytes)
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const flags = buffer[1]!
  const topicEnd = 14 + buffer.readUInt32LE(10)
  let at = topicEnd
  let brokerId: string | undefined
  if (flags & HAS_BROKER_ID) {
    const end = at + 4 + buffer.readUInt32LE(at)
    brokerId = buffer.toString('utf8', at + 4, end)
    at = end
  }
  // The fields and their order as packetFields makes them (and v8 gives them back).
  const packet: AnyPacket = {
    cmd: 'publish', brokerId, brokerCounter: buffer.readDoubleLE(2), topic: buffer.toString('utf8', 14, topicEnd),
    payload: buffer.subarray(at), qos: flags & 0x03, retain: (flags & 0x04) !== 0, dup: (flags & 0x08) !== 0,
  }
  if ((packet.qos as number) > 0) packet.messageId = undefined
  return packet
}

function encode (value: object): Uint8Array {
  return serialize(value)
}

function decode (bytes: Uint8Array): AnyPacket {
  return deserialize(bytes) as AnyPacket
}
