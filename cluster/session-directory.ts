/**
 * Which node holds each identity's live session, so that the same
 * certificate connected to node A and then to node B is seen as such
 * (a clone, or a device that moved without closing its old connection).
 * aedes itself closes the older session across nodes (it announces new
 * clients on the shared emitter); this directory tells the new node where
 * the older one was, for the `duplicate-identity` event.
 *
 * Claim and release are Lua scripts, atomic in Redis: a release removes
 * the record only if it is still this session's, and a claim reports the
 * previous holder only if that node is alive (a node killed with its
 * sessions leaves records behind; its devices reconnecting elsewhere are
 * not clones).
 */
import type { ClusterKeys } from './keys.ts'
import type { Redis } from './redis.ts'

export interface SessionRecord {
  node: string
  serial: string
  remoteAddress: string
  connectedAt: number
}

const CLAIM = `
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
if previous then
  local ok, record = pcall(cjson.decode, previous)
  if ok and record.node and redis.call('EXISTS', ARGV[2] .. record.node) == 1 then return previous end
end
return false`

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/** A record outlives its session by at most this (a node that dies cannot release). */
const RECORD_TTL_MS = 7 * 86_400_000

export class SessionDirectory {
  readonly #redis: Redis
  readonly #keys: ClusterKeys
  /** What this node wrote per client id, to release only its own record. */
  readonly #mine = new Map<string, string>()

  constructor (redis: Redis, keys: ClusterKeys) {
    this.#redis = redis
    this.#keys = keys
  }

  /** Records `record` as the holder of `clientId`; resolves with the previous holder when it was on a live node. */
  async claim (clientId: string, record: SessionRecord): Promise<SessionRecord | undefined> {
    const json = JSON.stringify(record)
    this.#mine.set(clientId, json)
    const previous = await this.#redis.eval(CLAIM, 1, this.#keys.owner(clientId), json, this.#keys.node(''), RECORD_TTL_MS) as string | null
    return previous ? JSON.parse(previous) as SessionRecord : undefined
  }

  /** The session ended here: forget it, unless another node has claimed the id since. */
  async release (clientId: string, record: SessionRecord): Promise<void> {
    const json = JSON.stringify(record)
    if (this.#mine.get(clientId) === json) this.#mine.delete(clientId)
    await this.#redis.eval(RELEASE, 1, this.#keys.owner(clientId), json)
  }
}
