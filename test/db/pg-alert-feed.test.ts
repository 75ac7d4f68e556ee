/**
 * The group's feed of alert changes (detection/pg-alert-feed.ts over
 * db/migrations/0002_alert_feed.sql), on a real PostgreSQL: two
 * collectors' alert books write, two collectors' feeds read. Every change
 * reaches every feed once and in its alert's order, also when the feed's
 * connection is cut or the server restarts meanwhile, and also when the
 * transactions committed out of seq order; garbage on the channel is
 * skipped.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { connectDatabaseClient } from '../../db/index.ts'
import { ALERT_FEED_CHANNEL, AlertBook, PgAlertFeed, type PgAlertFeedOptions, PgAlertStore } from '../../detection/index.ts'
import type { AlertChange } from '../../shared/alert-contract.ts'
import { createLogger, type Logger } from '../../shared/logger.ts'
import { waitFor } from '../helpers/broker.ts'
import { pgPlaces } from '../helpers/pg-place.ts'

const silent = createLogger({ level: 'silent' })
const where = { site: 'riverside', kind: 'flood' }
const finding = (deviceId: string) => ({ policy: 'acl-violation' as const, deviceId, severity: 'high' as const, summary: 'publish outside own topic', evidence: { topic: 'places/#' } })

const pg = pgPlaces('alert_feed')
const running: PgAlertFeed[] = []
afterEach(async () => { await Promise.all(running.splice(0).map((feed) => feed.stop())) })

const book = (name: string): AlertBook => new AlertBook({ asyncStore: new PgAlertStore({ pool: pg.pool(name) }), logger: silent })

interface TestFeed {
  feed: PgAlertFeed
  changes: AlertChange[]
  /** Until the returned function is called, the feed's next connection waits: a test knows the feed is away while it writes. */
  hold: () => () => void
}

function feedOn (applicationName: string, options: Partial<PgAlertFeedOptions> = {}): TestFeed {
  const changes: AlertChange[] = []
  let gate: Promise<void> = Promise.resolve()
  const feed = new PgAlertFeed({
    connect: async () => {
      await gate
      return connectDatabaseClient({ url: pg.url(), applicationName })
    },
    onChange: (change) => { changes.push(change) },
    logger: silent, retryMs: 50, ...options,
  })
  running.push(feed)
  return {
    feed, changes,
    hold: () => {
      let release = (): void => {}
      gate = new Promise((resolve) => { release = resolve })
      return release
    },
  }
}

/** [change, alert id] in the order a feed handed them on. */
const story = (changes: AlertChange[]) => changes.map(({ change, alert }) => [change, alert.id])

/** One alert's changes in the order they arrived, per alert. */
function byAlert (changes: AlertChange[]): Map<string, string[]> {
  const stories = new Map<string, string[]>()
  for (const { change, alert } of changes) stories.set(alert.id, [...stories.get(alert.id) ?? [], change])
  return stories
}

/**
 * Once a last change (a fresh alert's opening) has reached every feed,
 * nothing written before it is still on its way: each feed holds what it
 * will ever hold of those, so a test can count them exactly.
 */
async function drained (writer: AlertBook, feeds: TestFeed[]): Promise<void> {
  const { alert } = await writer.raise(finding(`flood-last-${Math.random().toString(36).slice(2, 8)}`), where)
  await waitFor(() => feeds.every((f) => f.changes.some((c) => c.alert.id === alert.id)), 15_000, 'the last change at every feed')
  for (const f of feeds) f.changes.splice(f.changes.findIndex((c) => c.alert.id === alert.id), 1)
}

describe('the alert feed on PostgreSQL', () => {
  it('notifies each change on commit with its seq, alert id and kind only, and repeats not at all', async () => {
    const a = book('collector-a')
    const listener = await connectDatabaseClient({ url: pg.url(), applicationName: 'test-listener' })
    const heard: unknown[] = []
    listener.on('notification', (message) => heard.push({ channel: message.channel, payload: JSON.parse(message.payload!) }))
    try {
      await listener.query(`LISTEN ${ALERT_FEED_CHANNEL}`)
      const { alert } = await a.raise(finding('flood-001'), where)
      await a.raise(finding('flood-001'), where)
      await a.acknowledge(alert.id, 'operator:ab12')
      await waitFor(() => heard.length === 2, 10_000, 'two notifications')
      const { rows } = await pg.pool('test-reader', 1).query<{ seq: string, change: string }>('SELECT seq::text, change FROM alert_changes ORDER BY seq')
      expect(rows.map((r) => r.change)).toEqual(['opened', 'updated', 'acknowledged'])
      expect(heard).toEqual([
        { channel: ALERT_FEED_CHANNEL, payload: { seq: Number(rows[0]!.seq), alertId: alert.id, change: 'opened' } },
        { channel: ALERT_FEED_CHANNEL, payload: { seq: Number(rows[2]!.seq), alertId: alert.id, change: 'acknowledged' } },
      ])
    } finally {
      await listener.end()
    }
  })

  it('hands every change of two collectors to both collectors\' feeds once, each alert\'s in order', async () => {
    const a = book('collector-a')
    const b = book('collector-b')
    const one = feedOn('feed-a')
    // Small pages: one read takes several queries.
    const two = feedOn('feed-b', { pageSize: 3 })
    await one.feed.start()
    await two.feed.start()
    const devices = Array.from({ length: 12 }, (_, i) => `flood-${String(i).padStart(3, '0')}`)
    // The alerts' lives interleave between the two collectors; each alert's steps follow one another.
    const ids = await Promise.all(devices.map(async (deviceId, i) => {
      const [mine, other] = i % 2 === 0 ? [a, b] : [b, a]
      const { alert } = await mine.raise(finding(deviceId), where)
      await other.raise(finding(deviceId), where) // a repeat: not news
      await other.acknowledge(alert.id, 'operator:ab12')
      await mine.comment(alert.id, 'operator:cd34', 'looked at it')
      await other.resolve(alert.id, 'operator:ab12')
      return alert.id
    }))
    await drained(a, [one, two])
    const expected = new Map(ids.map((id) => [id, ['opened', 'acknowledged', 'commented', 'resolved']]))
    expect(byAlert(one.changes)).toEqual(expected)
    expect(byAlert(two.changes)).toEqual(expected)
    expect(two.changes).toHaveLength(ids.length * 4)
    // Collector b's feed hears what collector a's operator did, with the alert as it now is.
    const acked = two.changes.find((c) => c.change === 'acknowledged' && c.alert.id === ids[1])
    expect(acked?.alert).toMatchObject({ id: ids[1], deviceId: 'flood-001', status: 'acknowledged', acknowledgedBy: 'operator:ab12', comments: [] })
    await a.settled()
    await b.settled()
  })

  it('catches up after its connection is cut, on a change that drew its seq before one it saw and committed after', async () => {
    const a = book('collector-a')
    const f = feedOn('feed-cut')
    await f.feed.start()
    const first = (await a.raise(finding('flood-001'), where)).alert
    const second = (await a.raise(finding('flood-002'), where)).alert
    await waitFor(() => f.changes.length === 2, 10_000, 'both openings')

    // Another collector's transaction draws a seq and stays open while a later one commits: seq is not the commit order.
    const slow = await pg.pool('collector-slow', 1).connect()
    try {
      await slow.query('BEGIN')
      const { rows: [drawn] } = await slow.query<{ seq: string }>('INSERT INTO alert_changes (alert_id, change, by, alert) SELECT id, \'commented\', \'operator:slow\', body FROM alerts WHERE id = $1 RETURNING seq::text', [first.id])
      await a.acknowledge(second.id, 'operator:ab12')
      await waitFor(() => f.changes.length === 3, 10_000, 'the acknowledge')
      const { rows: [acked] } = await pg.pool('test-reader', 1).query<{ seq: string }>('SELECT max(seq)::text AS seq FROM alert_changes')
      expect(BigInt(drawn!.seq)).toBeLessThan(BigInt(acked!.seq))

      // The feed loses its connection; while it is away the slow transaction commits and another change is made.
      const release = f.hold()
      await pg.pool('test-admin', 1).query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', ['feed-cut'])
      await waitFor(() => f.feed.counters.connectionsLost === 1, 10_000, 'the feed to notice')
      expect(f.feed.connected).toBe(false)
      await slow.query('COMMIT')
      await a.resolve(second.id, 'operator:ab12')
      // Back, the feed catches up by itself: no new change wakes it.
      release()
      await waitFor(() => f.changes.length === 5, 10_000, 'the changes made while the feed was away')
      await drained(a, [f])
    } finally {
      slow.release()
    }
    expect(story(f.changes)).toEqual([
      ['opened', first.id], ['opened', second.id], ['acknowledged', second.id],
      ['commented', first.id], ['resolved', second.id],
    ])
    expect(f.feed.connected).toBe(true)
  })

  it('reads a long catch-up in pages, each alert\'s changes in seq order once (seq 9 before 10 before 11)', async () => {
    const a = book('collector-a')
    const f = feedOn('feed-paged', { pageSize: 4 })
    await f.feed.start()
    const release = f.hold()
    await pg.pool('test-admin', 1).query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', ['feed-paged'])
    await waitFor(() => f.feed.counters.connectionsLost === 1, 10_000, 'the feed to notice')
    const { alert } = await a.raise(finding('flood-001'), where)
    for (let n = 1; n <= 11; n++) await a.comment(alert.id, 'operator:ab12', `note ${n}`)
    release()
    await drained(a, [f])
    expect(f.changes.map((c) => c.change)).toEqual(['opened', ...Array<string>(11).fill('commented')])
    expect(f.changes.map((c) => c.alert.comments.length)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
  })

  it('misses nothing across a restart of PostgreSQL', async () => {
    const a = book('collector-a')
    const f = feedOn('feed-restart')
    await f.feed.start()
    const opened = (await a.raise(finding('flood-001'), where)).alert
    await waitFor(() => f.changes.length === 1, 10_000, 'the opening')
    const release = f.hold()
    await pg.server().restart()
    await waitFor(() => f.feed.counters.connectionsLost === 1, 10_000, 'the feed to notice')
    await a.acknowledge(opened.id, 'operator:ab12')
    await a.comment(opened.id, 'operator:ab12', 'while the feed was away')
    release()
    await waitFor(() => f.changes.length === 3, 10_000, 'the changes made while the feed was away')
    await drained(a, [f])
    expect(story(f.changes)).toEqual([['opened', opened.id], ['acknowledged', opened.id], ['commented', opened.id]])
    expect(f.changes[2]!.alert.comments).toEqual([expect.objectContaining({ text: 'while the feed was away' })])
  })

  it('logs and skips a notification on its channel that is not a change, and a listener that throws, and goes on', async () => {
    const lines: string[] = []
    const logger: Logger = createLogger({ level: 'info', destination: { write: (line: string) => { lines.push(line) } } as never })
    const a = book('collector-a')
    const f = feedOn('feed-garbage', { logger, onChange: (change) => { if (change.alert.deviceId === 'flood-bad') throw new Error('the listener broke') } })
    const beside = feedOn('feed-beside')
    await f.feed.start()
    await beside.feed.start()
    await pg.pool('test-admin', 1).query(`SELECT pg_notify('${ALERT_FEED_CHANNEL}', 'not json'), pg_notify('${ALERT_FEED_CHANNEL}', '{"seq":"1; DROP TABLE alerts","alertId":"x","change":"opened"}'), pg_notify('${ALERT_FEED_CHANNEL}', '')`)
    await a.raise(finding('flood-bad'), where)
    await a.raise(finding('flood-good'), where)
    // Past the listener's failure the feed hands on the next change; a feed beside it, with a sound listener, shows both arrived.
    await drained(a, [beside])
    await waitFor(() => f.feed.counters.changes === 3, 10_000, 'the changes past the failure')
    expect(beside.changes.map((c) => c.alert.deviceId)).toEqual(['flood-bad', 'flood-good'])
    expect(f.feed.counters.badNotifications).toBe(3)
    expect(f.feed.connected).toBe(true)
    await waitFor(() => lines.length >= 2, 10_000, 'the log lines')
    const logged = lines.map((line) => JSON.parse(line) as { msg: string, payload?: string, err?: string })
    expect(logged).toEqual(expect.arrayContaining([
      expect.objectContaining({ msg: expect.stringMatching(/not a change's \{seq, alertId, change\}; skipped/), payload: 'not json' }),
      expect.objectContaining({ msg: 'alert feed: a listener failed on a change', err: 'the listener broke' }),
    ]))
  })
})
