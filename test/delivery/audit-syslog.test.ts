/**
 * The operator audit trail reaches the SOC's syslog as CEF (issue 17):
 * Debian's rsyslog on loopback, parsing RFC 5424 and the CEF line with
 * liblognorm, receives an entry for an operator's acknowledge over the
 * API and for a CLI command — the CLI's queued in the outbox while no
 * collector ran, and sent once one did — each with the entry's seq and
 * hash as the trail has them.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { hostname, tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import pkg from '../../package.json' with { type: 'json' }
import { apiSourceFrom, createCollectorService, loadConfig } from '../../app/index.ts'
import { type AuditEntry, SqliteAuditStore } from '../../audit/index.ts'
import { startApiServer } from '../../dashboards/index.ts'
import { SqliteOutboxStore } from '../../delivery/index.ts'
import { createLogger } from '../../shared/logger.ts'
import { useFleetWithBroker } from '../helpers/broker.ts'
import { parseCef } from '../helpers/cef.ts'
import { freePort } from '../helpers/free-port.ts'

const logger = createLogger({ level: 'silent' })
const OPERATOR = 'operator-token-for-the-soc-copy-0123'
const ACTOR = `operator:${createHash('sha256').update(OPERATOR).digest('hex').slice(0, 8)}`
const setup = useFleetWithBroker()
const dir = mkdtempSync(join(tmpdir(), 'placeguard-audit-syslog-'))
const output = join(dir, 'rsyslog.jsonl')
let rsyslog: ChildProcess
let port: number
let stderr = ''

beforeAll(async () => {
  port = await freePort()
  writeFileSync(join(dir, 'cef.rb'), 'version=2\nrule=:%cef:cef%\n')
  writeFileSync(join(dir, 'rsyslog.conf'), `
global(workDirectory="${dir}")
module(load="imtcp")
module(load="mmpstrucdata")
module(load="mmnormalize")
template(name="parsed" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="msgId" name="msgid" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="parsed" name="$!" format="jsonf")
}
ruleset(name="soc") {
  action(type="mmpstrucdata" sd_name.lowercase="off")
  action(type="mmnormalize" rulebase="${join(dir, 'cef.rb')}")
  action(type="omfile" file="${output}" template="parsed")
}
input(type="imtcp" address="127.0.0.1" port="${port}" ruleset="soc")
`)
  rsyslog = spawn('/usr/sbin/rsyslogd', ['-n', '-f', join(dir, 'rsyslog.conf'), '-i', join(dir, 'rsyslogd.pid')], { stdio: ['ignore', 'ignore', 'pipe'] })
  rsyslog.stderr!.on('data', (chunk) => { stderr += chunk })
  await vi.waitFor(async () => {
    if (rsyslog.exitCode !== null) throw new Error(`rsyslogd exited with ${rsyslog.exitCode}: ${stderr}`)
    await new Promise<void>((resolve, reject) => {
      const probe = connect(port, '127.0.0.1', () => { probe.destroy(); resolve() })
      probe.once('error', reject)
    })
  }, { timeout: 10_000, interval: 50 })
})
afterAll(async () => {
  if (rsyslog?.exitCode === null) {
    const exited = new Promise((resolve) => rsyslog.once('exit', resolve))
    rsyslog.kill('SIGTERM')
    await exited
  }
  rmSync(dir, { recursive: true, force: true })
})

interface Received { pri: string, timestamp: string, msgId: string, msg: string, parsed: string }

/** rsyslog's audit records once `count` of them are in. */
async function auditRecords (count: number): Promise<Received[]> {
  return await vi.waitFor(() => {
    const records = (existsSync(output) ? readFileSync(output, 'utf8').split('\n').filter(Boolean) : []).map((line) => JSON.parse(line) as Received)
    const audit = records.filter((record) => record.msgId === 'audit')
    if (audit.length < count) throw new Error(`rsyslog has ${audit.length} audit records of ${count} (${stderr})`)
    return audit
  }, { timeout: 20_000, interval: 100 })
}

function placeguard (args: string[], env: Record<string, string>): Promise<{ status: number | null, stderr: string }> {
  const child = spawn(process.execPath, ['bin/placeguard.js', '--data-dir', setup.fleet.dataDir, ...args], { env: { ...process.env, PLACEGUARD_DATABASE_URL: '', PLACEGUARD_REDIS_URL: '', ...env } })
  let err = ''
  child.stderr.on('data', (chunk) => { err += chunk })
  return new Promise((resolve) => child.once('close', (status) => resolve({ status, stderr: err })))
}

describe('audit trail entries at a syslog sink, as CEF', () => {
  it('sends an API acknowledge and a CLI command to rsyslog, the CLI\'s queued while no collector ran', async () => {
    const env = { PLACEGUARD_SYSLOG_URL: `tcp://127.0.0.1:${port}`, PLACEGUARD_API_TOKENS: `${OPERATOR}:operator` }
    // No collector runs: the CLI's entries wait in the outbox.
    expect(await placeguard(['pki', 'issue', 'flood-soc-1', '--kind', 'flood', '--site', 'riverside'], env)).toMatchObject({ status: 0 })
    const outbox = new SqliteOutboxStore({ path: join(setup.fleet.dataDir, 'outbox.db') })
    try {
      expect(outbox.sizes().get('syslog')).toEqual({ pending: 2, deadLettered: 0 })
    } finally {
      outbox.close()
    }

    const config = loadConfig({ env, flags: { dataDir: setup.fleet.dataDir } })
    const service = createCollectorService(config, setup.broker.url, logger)
    await service.start()
    const api = await startApiServer(apiSourceFrom(service, config.apiTokens), { host: '127.0.0.1', port: 0, logger })
    try {
      service.detection.raiseSystemAlert({ policy: 'delivery-failing', deviceId: 'sink:soc-test', severity: 'high', summary: 'sink soc-test refuses deliveries', evidence: { sink: 'soc-test' } })
      const alertId = await vi.waitFor(async () => {
        const open = (await service.detection.alerts.list()).find((a) => a.deviceId === 'sink:soc-test')
        if (!open) throw new Error('no alert yet')
        return open.id
      })
      const response = await fetch(new URL(`api/alerts/${alertId}/ack`, api.url), {
        method: 'POST', headers: { authorization: `Bearer ${OPERATOR}`, 'content-type': 'application/json' }, body: JSON.stringify({ comment: 'on it | a=b' }),
      })
      expect(response.status).toBe(200)

      const received = await auditRecords(4)
      const trail = new SqliteAuditStore({ path: join(setup.fleet.dataDir, 'audit.db'), readOnly: true })
      const entries: AuditEntry[] = trail.page({ order: 'oldest' }, 100).items
      trail.close()
      expect(received.map((r) => parseCef(r.msg).extension.get('act'))).toEqual(['pki.issue', 'pki.issue', 'alert.acknowledge', 'alert.acknowledge'])

      for (const record of received) {
        const { header, extension } = parseCef(record.msg)
        const entry = entries.find((e) => e.seq === Number(extension.get('cn1')))!
        // Each line is its trail entry: the hash the chain has, the seq, who, what, how it went.
        expect(extension.get('cs1')).toBe(entry.hash)
        expect(header).toEqual(['CEF:0', 'PlaceGuard', 'PlaceGuard', pkg.version, `audit:${entry.action}`, `${entry.action} ${String(entry.detail.outcome)}`, '3'])
        expect(Object.fromEntries(extension)).toMatchObject({ rt: String(Date.parse(entry.at)), suser: entry.actor, act: entry.action, outcome: entry.detail.outcome, cs2: entry.subject })
        // authpriv.notice, stamped when the trail recorded it.
        expect(record.pri).toBe('85')
        expect(Date.parse(record.timestamp)).toBe(Date.parse(entry.at))
        // rsyslog's own CEF parser reads the same.
        const parsed = JSON.parse(record.parsed) as { 'rfc5424-sd': Record<string, Record<string, string>>, cef: { SignatureID: string, Severity: string, Extensions: Record<string, string> } }
        expect(parsed['rfc5424-sd']['placeguard@32473']).toMatchObject({ auditSeq: String(entry.seq) })
        expect(parsed.cef).toMatchObject({ SignatureID: `audit:${entry.action}`, Severity: '3' })
        expect(parsed.cef.Extensions).toMatchObject({ suser: entry.actor, act: entry.action, cs1: entry.hash })
      }
      const [cli, , api1, api2] = received.map((r) => Object.fromEntries(parseCef(r.msg).extension))
      expect(cli).toMatchObject({ suser: `cli:${userInfo().username}`, shost: hostname(), cs2: 'flood-soc-1', cs4: `cli@${hostname()}` })
      expect(api1).toMatchObject({ suser: ACTOR, src: '127.0.0.1', cs2: alertId, outcome: 'requested' })
      expect(JSON.parse(api1!.cs3!)).toEqual({ comment: 'on it | a=b' })
      expect(api2).toMatchObject({ suser: ACTOR, outcome: 'done' })
    } finally {
      await api.close()
      await service.stop()
    }
  }, 90_000)
})
