/**
 * What a broker node asks of the cluster it belongs to. The broker knows
 * nothing of Redis: app/ builds this link on the cluster room's pieces
 * (streams, session directory, heartbeats, control channel) and hands it
 * in. Without a link the broker is the single-process broker it always was.
 */
import type { QuarantineCommand } from '../shared/control.ts'

/** The facts about a session another node needs to recognise it. */
export interface ClusterSessionRecord {
  serial: string
  remoteAddress: string
  connectedAt: number
}

export interface BrokerClusterLink {
  /** This node's id, in events and in Redis. */
  nodeId: string
  /**
   * Hands an accepted telemetry message to the cluster's streams; the
   * device's PUBACK waits for it, and a rejection closes the connection
   * unacknowledged (the device sends it again).
   */
  handoff: (message: { partitionKey: string, topic: string, payload: Buffer, receivedAtMs: number }) => Promise<void>
  /** Records that this node holds the client id's session; resolves with the previous holder when it is another live node. */
  claimSession: (clientId: string, record: ClusterSessionRecord) => Promise<(ClusterSessionRecord & { node: string }) | undefined>
  /** The session ended here (a no-op if another node has claimed the id since). */
  releaseSession: (clientId: string, record: ClusterSessionRecord) => void
  /** Sessions the other live nodes hold, by role (`device`, `collector`) or in all. */
  othersSessions: (role?: string) => number
  /** Passes on a quarantine or lift this node acted on, for the other nodes. */
  shareQuarantine: (command: QuarantineCommand) => void
}
