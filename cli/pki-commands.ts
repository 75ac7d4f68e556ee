import { readFileSync } from 'node:fs'
import type { Command } from 'commander'
import { parse as parseYaml } from 'yaml'
import { invalidInput } from '../shared/errors.ts'
import type { FleetPki, KeyAlgorithm } from '../pki/index.ts'
import { loadConfig } from '../app/config.ts'
import { printJson, printTable, progressBar } from './output.ts'
import { dataDirOf, wholeNumber } from './options.ts'
import { recorded } from './audit-trail-command.ts'
import { parseManifest } from './batch-manifest.ts'
import type { CliNote } from '../app/index.ts'

interface ValidityFlags { days?: number, notBefore?: string, notAfter?: string, kind: string, site?: string, out?: string, vendor?: string, model?: string }

function keyAlgorithm (value: string): KeyAlgorithm {
  if (value === 'ecdsa' || value === 'ecdsa-p256') return 'ecdsa-p256'
  if (value === 'rsa' || value === 'rsa-2048') return 'rsa-2048'
  throw invalidInput('--key', `"${value}" is not a key type`, 'use ecdsa (P-256, the default) or rsa (RSA-2048)')
}

function list (value: string): string[] {
  return value.split(',').map((item) => item.trim()).filter((item) => item !== '')
}

/**
 * `--windows`: YAML (or JSON) inline when it starts with `[` or `{`, else a
 * file holding it; a list of windows, or `{ windows: [...] }`. The windows
 * themselves are checked by the PKI, naming the field (`windows[0].weekly.start`).
 */
function windowsFlag (value: string): unknown {
  const inline = /^\s*[[{]/.test(value)
  let text = value
  if (!inline) {
    try {
      text = readFileSync(value, 'utf8')
    } catch (error) {
      throw invalidInput('--windows', `cannot read ${value}: ${(error as Error).message}`, 'give a YAML file or an inline list such as [{from: "2026-12-01T09:00:00Z", until: "2026-12-01T17:00:00Z"}]')
    }
  }
  let parsed: unknown
  try {
    parsed = parseYaml(text)
  } catch (error) {
    throw invalidInput('--windows', `not YAML: ${(error as Error).message.split('\n')[0]}`)
  }
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) && 'windows' in parsed) return (parsed as { windows: unknown }).windows
  return parsed
}

/** `--days` or `--not-before`/`--not-after`: the validity every issuing command takes (pki/validity.ts checks them). */
function withValidity (command: Command): Command {
  return command
    .option('--days <n>', 'validity in days (default 365)', wholeNumber('--days'))
    .option('--not-before <iso>', 'validity start (ISO 8601)')
    .option('--not-after <iso>', 'validity end (ISO 8601)')
}

async function withPki<T> (command: Command, work: (pki: FleetPki) => Promise<T>): Promise<T> {
  const { FleetPki } = await import('../pki/index.ts')
  const pki = new FleetPki(dataDirOf(command))
  try {
    return await work(pki)
  } finally {
    pki.close()
  }
}

/**
 * With a cluster configured (PLACEGUARD_REDIS_URL), the CRL just written
 * where the CA key is kept goes through Redis to every broker node: no
 * shared disk, and the nodes hold no CA key. The revocation itself stands
 * in the inventory and the local CRL whether or not Redis answers.
 */
async function sendCrlToCluster (command: Command): Promise<void> {
  const config = loadConfig({ flags: { dataDir: dataDirOf(command) } })
  if (!config.redisUrl) return
  const { shareCrl } = await import('../app/index.ts')
  const nodes = await shareCrl(config, config.redisUrl)
  process.stdout.write(`CRL sent to the cluster (${nodes} listening connection${nodes === 1 ? '' : 's'})\n`)
  // A revoked supplier's grant leaves the nodes with it; and `pki crl` resends both, for a node that was cut off.
  await sendSupplierGrantsToCluster(command)
}

/** Suppliers' grants go to the nodes the same way: a node has no inventory (docs/suppliers.md). */
async function sendSupplierGrantsToCluster (command: Command): Promise<void> {
  const config = loadConfig({ flags: { dataDir: dataDirOf(command) } })
  if (!config.redisUrl) return
  const { shareSupplierGrants } = await import('../app/index.ts')
  const nodes = await shareSupplierGrants(config, config.redisUrl)
  process.stdout.write(`suppliers' grants sent to the cluster (${nodes} listening connection${nodes === 1 ? '' : 's'})\n`)
}

export function registerPkiCommands (program: Command): void {
  const pki = program.command('pki').description('the fleet PKI: CA, device identities, revocation, inventory')

  pki.command('init')
    .description('create the fleet CA, broker server certificate, collector certificate and an empty CRL')
    .option('--server-name <dns...>', 'extra DNS names for the broker certificate (localhost, 127.0.0.1 and ::1 are always in)')
    .action(async (options: { serverName?: string[] }, command: Command) => withPki(command, async (fleet) => {
      await fleet.init({ serverNames: options.serverName })
      process.stdout.write(`fleet CA created in ${fleet.paths.dir}\n`)
    }))

  withValidity(pki.command('issue <id>'))
    .description('issue a key and certificate for a device (or a LoRaWAN network server\'s integration, --role integration, or a supplier, --role supplier) and record it in the inventory')
    .option('--role <role>', 'device, integration (a ChirpStack / The Things Stack MQTT integration) or supplier (remote maintenance, docs/suppliers.md)', 'device')
    .option('--kind <kind>', 'flood | energy | housing (devices)')
    .option('--network <network>', 'chirpstack | tts (integrations)')
    .option('--site <site>', 'site name ([a-z0-9-]{1,64}; devices and integrations)')
    .option('--kinds <list>', 'comma-separated kinds a supplier maintains, e.g. flood,energy (suppliers)')
    .option('--sites <list>', 'comma-separated sites a supplier maintains, e.g. riverside,harbour (suppliers)')
    .option('--windows <file or yaml>', 'a supplier\'s access windows, a YAML/JSON list in a maintenance window\'s syntax, inline or in a file (suppliers)')
    .option('--key <type>', 'ecdsa (P-256) or rsa (RSA-2048)', 'ecdsa')
    .option('--out <dir>', 'write <id>.crt and <id>.key here instead of <data-dir>/pki/devices')
    .option('--vendor <name>', 'the device\'s vendor as its advisories name it (with --model): matched against CSAF advisories')
    .option('--model <name>', 'the device\'s model as its advisories name it (with --vendor)')
    // Recorded in the audit trail with its flags (the key's type, never a key); the serial issued with the outcome.
    .action(recorded('pki.issue', (deviceId: string, options: object) => ({ subject: deviceId, detail: { ...options } }),
      async (deviceId: string, options: Omit<ValidityFlags, 'kind'> & { kind?: string, role: string, network?: string, key: string, kinds?: string, sites?: string, windows?: string }, command: Command, note: CliNote) => withPki(command, async (fleet) => {
      if (options.role === 'supplier') {
        if (options.kind !== undefined) throw invalidInput('--kind', 'a supplier maintains several kinds', 'use --kinds flood,energy')
        if (options.site !== undefined) throw invalidInput('--site', 'a supplier maintains several sites', 'use --sites riverside,harbour')
        if (options.network !== undefined) throw invalidInput('--network', 'only an integration has a network (--role integration)')
        if (options.vendor !== undefined || options.model !== undefined) throw invalidInput('--vendor', 'a supplier is not matched against advisories; its devices are')
        if (options.kinds === undefined) throw invalidInput('--kinds', 'a supplier needs the kinds it maintains', 'use --kinds flood,energy')
        if (options.sites === undefined) throw invalidInput('--sites', 'a supplier needs the sites it maintains', 'use --sites riverside,harbour')
        if (options.windows === undefined) throw invalidInput('--windows', 'a supplier needs its access windows', 'e.g. --windows \'[{weekly: {days: [tue], start: "02:00", duration: 2h}}]\' or a YAML file')
        const issued = await fleet.issueSupplier({
          supplierId: deviceId, kinds: list(options.kinds), sites: list(options.sites), windows: windowsFlag(options.windows),
          days: options.days, notBefore: options.notBefore, notAfter: options.notAfter, keyAlgorithm: keyAlgorithm(options.key), outDir: options.out,
        })
        note({ serial: issued.record.serial, notAfter: issued.record.notAfter })
        process.stdout.write(`issued supplier ${deviceId} serial ${issued.record.serial} until ${issued.record.notAfter}\n  ${issued.certificatePath}\n  ${issued.privateKeyPath}\n`)
        return await sendSupplierGrantsToCluster(command)
      }
      if (options.site === undefined) throw invalidInput('--site', 'a device or an integration needs its site', 'e.g. --site riverside')
      if (options.kinds !== undefined || options.sites !== undefined || options.windows !== undefined) {
        throw invalidInput(options.kinds !== undefined ? '--kinds' : options.sites !== undefined ? '--sites' : '--windows', 'only a supplier has kinds, sites and windows (--role supplier)')
      }
      if (options.role === 'integration') {
        if (options.kind !== undefined) throw invalidInput('--kind', 'an integration has no kind: its devices do (`placeguard devices add --kind`)')
        if (options.network === undefined) throw invalidInput('--network', 'an integration needs its network server', 'use --network chirpstack or --network tts')
        if (options.vendor !== undefined || options.model !== undefined) throw invalidInput('--vendor', 'an integration is not matched against advisories; its devices are', 'give them a vendor and model: `placeguard devices add … --vendor … --model …`')
        const issued = await fleet.issueIntegration({
          integrationId: deviceId, network: options.network, site: options.site, days: options.days, notBefore: options.notBefore,
          notAfter: options.notAfter, keyAlgorithm: keyAlgorithm(options.key), outDir: options.out,
        })
        note({ serial: issued.record.serial, notAfter: issued.record.notAfter })
        process.stdout.write(`issued integration ${deviceId} (${options.network}) serial ${issued.record.serial} until ${issued.record.notAfter}\n  ${issued.certificatePath}\n  ${issued.privateKeyPath}\n`)
        return
      }
      if (options.role !== 'device') throw invalidInput('--role', `"${options.role}" is not a role a certificate can be issued for`, 'use device, integration or supplier')
      if (options.network !== undefined) throw invalidInput('--network', 'only an integration has a network (--role integration)')
      if (options.kind === undefined) throw invalidInput('--kind', 'a device needs its kind', 'use --kind flood, energy or housing')
      const issued = await fleet.issue({
        deviceId, kind: options.kind, site: options.site, days: options.days, notBefore: options.notBefore,
        notAfter: options.notAfter, keyAlgorithm: keyAlgorithm(options.key), outDir: options.out, vendor: options.vendor, model: options.model,
      })
      note({ serial: issued.record.serial, notAfter: issued.record.notAfter })
      process.stdout.write(`issued ${deviceId} serial ${issued.record.serial} until ${issued.record.notAfter}\n  ${issued.certificatePath}\n  ${issued.privateKeyPath}\n`)
    })))

  withValidity(pki.command('issue-batch <manifest>'))
    .description('issue keys and certificates for every device a CSV manifest lists (deviceId,kind,site[,vendor,model]) and record them in the inventory: into one tar archive for a factory (--archive), or as files')
    .option('--archive <file.tar>', 'write every <id>.key (0600), <id>.crt and the fleet CA (ca.crt) into this new tar archive (0600) instead of two files a device')
    .option('--out <dir>', 'write <id>.crt and <id>.key here instead of <data-dir>/pki/devices (without --archive)')
    .option('--key <type>', 'ecdsa (P-256) or rsa (RSA-2048)', 'ecdsa')
    .option('--json', 'print the devices issued as JSON')
    // Recorded with the manifest's path and the flags; the count and the archive with the outcome (each serial is in the inventory).
    .action(recorded('pki.issue-batch', (manifest: string, options: object) => ({ subject: null, detail: { manifest, ...options } }),
      async (manifest: string, options: { archive?: string, out?: string, days?: number, notBefore?: string, notAfter?: string, key: string, json?: boolean },
        command: Command, note: CliNote) => withPki(command, async (fleet) => {
        if (options.archive !== undefined && options.out !== undefined) throw invalidInput('--out', 'an archive holds the files itself', 'give --archive or --out, not both')
        if (options.archive !== undefined && !options.archive.endsWith('.tar')) throw invalidInput('--archive', `"${options.archive}" does not end in .tar`, 'e.g. --archive batch-2026-12.tar')
        let text: string
        try {
          text = readFileSync(manifest, 'utf8')
        } catch (error) {
          throw invalidInput('manifest', `cannot read ${manifest}: ${(error as Error).message}`)
        }
        const { assertDeviceIdentity, deviceProductOf } = await import('../pki/index.ts')
        const rows = parseManifest(text, manifest, (row) => { assertDeviceIdentity('deviceId', row); deviceProductOf(row) })
        const keyType = keyAlgorithm(options.key)
        const bar = await progressBar('issuing', 'devices', !options.json && process.stderr.isTTY === true, 100)
        const started = performance.now()
        let issued
        try {
          issued = await fleet.issueMany(rows.map((row) => ({
            deviceId: row.deviceId, kind: row.kind, site: row.site, vendor: row.vendor, model: row.model, days: options.days,
            notBefore: options.notBefore, notAfter: options.notAfter, keyAlgorithm: keyType, outDir: options.out,
          })), bar.onProgress, { archive: options.archive })
        } finally {
          bar.stop()
        }
        const seconds = (performance.now() - started) / 1000
        note({ issued: issued.length, archive: options.archive ?? null })
        if (options.json) {
          return printJson({
            issued: issued.length, archive: options.archive ?? null, seconds: Math.round(seconds * 100) / 100,
            devices: issued.map((device) => ({ deviceId: device.record.deviceId, serial: device.record.serial, notAfter: device.record.notAfter, certificatePath: device.certificatePath })),
          })
        }
        const where = options.archive ?? options.out ?? fleet.paths.devicesDir
        process.stdout.write(`issued ${issued.length} device${issued.length === 1 ? '' : 's'} in ${seconds.toFixed(1)} s into ${where}${options.archive ? ' (unpack with tar -xf; keys stay 0600)' : ''}\n`)
      })))

  withValidity(pki.command('renew <deviceId>'))
    .description('a new key and certificate for a device (same kind and site); the old certificate stays valid until it expires or is revoked')
    .option('--key <type>', 'ecdsa (P-256) or rsa (RSA-2048)', 'ecdsa')
    .option('--out <dir>', 'write <deviceId>.crt and <deviceId>.key here instead of <data-dir>/pki/devices')
    .action(recorded('pki.renew', (deviceId: string, options: object) => ({ subject: deviceId, detail: { ...options } }),
      async (deviceId: string, options: Omit<ValidityFlags, 'kind' | 'site'> & { key: string }, command: Command, note: CliNote) => withPki(command, async (fleet) => {
      const renewed = await fleet.renew(deviceId, {
        days: options.days, notBefore: options.notBefore, notAfter: options.notAfter, keyAlgorithm: keyAlgorithm(options.key), outDir: options.out,
      })
      note({ serial: renewed.record.serial, notAfter: renewed.record.notAfter, superseded: renewed.superseded.serial })
      process.stdout.write(`renewed ${deviceId}: serial ${renewed.record.serial} until ${renewed.record.notAfter}
` +
        `  superseded serial ${renewed.superseded.serial} stays valid until ${renewed.superseded.notAfter} (pki revoke ${deviceId} revokes both)
` +
        `  ${renewed.certificatePath}
  ${renewed.privateKeyPath}
`)
    })))

  withValidity(pki.command('sign <csr>'))
    .description('sign a certificate for a device that made its own key (the id is the CSR\'s CN)')
    .requiredOption('--kind <kind>', 'flood | energy | housing')
    .requiredOption('--site <site>', 'site name')
    .option('--out <dir>', 'write <deviceId>.crt here instead of <data-dir>/pki/devices')
    .option('--vendor <name>', 'the device\'s vendor as its advisories name it (with --model)')
    .option('--model <name>', 'the device\'s model as its advisories name it (with --vendor)')
    // The subject is the CSR's CN, known once it is read: noted with the outcome. The request names the file.
    .action(recorded('pki.sign', (csrPath: string, options: object) => ({ subject: null, detail: { csr: csrPath, ...options } }),
      async (csrPath: string, options: ValidityFlags, command: Command, note: CliNote) => withPki(command, async (fleet) => {
      let pem: string
      try {
        pem = readFileSync(csrPath, 'utf8')
      } catch (error) {
        throw invalidInput('csr', `cannot read ${csrPath}: ${(error as Error).message}`)
      }
      const issued = await fleet.signCsr(pem, {
        kind: options.kind, site: options.site!, days: options.days, notBefore: options.notBefore, notAfter: options.notAfter, outDir: options.out, // requiredOption above
        vendor: options.vendor, model: options.model,
      })
      note({ serial: issued.record.serial, notAfter: issued.record.notAfter }, issued.record.deviceId)
      process.stdout.write(`signed ${issued.record.deviceId} serial ${issued.record.serial} until ${issued.record.notAfter}\n  ${issued.certificatePath}\n`)
    })))

  pki.command('revoke [deviceId]')
    .description('revoke a device (or one certificate by --serial): the broker refuses it at the next handshake and drops a live session within 10 s')
    .option('--serial <hex>', 'revoke this one certificate, whatever its inventory status (pending, active, superseded)')
    // Protective: carried out even when the audit trail cannot record it (docs/audit-trail.md).
    .action(recorded('pki.revoke', (deviceId: string | undefined, options: { serial?: string }) => ({ subject: deviceId ?? null, detail: { ...options }, protective: true }),
      async (deviceId: string | undefined, options: { serial?: string }, command: Command, note: CliNote) => withPki(command, async (fleet) => {
      if (options.serial !== undefined) {
        if (deviceId !== undefined) throw invalidInput('--serial', 'give a device id or --serial, not both')
        const revoked = await fleet.revokeSerial(options.serial)
        note({ revoked: [revoked.serial] }, revoked.deviceId)
        process.stdout.write(`revoked serial ${revoked.serial} (${revoked.deviceId}); CRL rewritten\n`)
        return await sendCrlToCluster(command)
      }
      if (deviceId === undefined) throw invalidInput('deviceId', 'give the device id to revoke', 'or --serial <hex> for one certificate')
      const revoked = await fleet.revoke(deviceId)
      note({ revoked: revoked.map((r) => r.serial) })
      process.stdout.write(`revoked ${deviceId} (serial ${revoked.map((r) => r.serial).join(', ')}); CRL rewritten\n`)
      await sendCrlToCluster(command)
    })))

  pki.command('reconcile')
    .description('settle what a crashed issue left: landed pending certificates become active, the rest are revoked; certificate files the inventory does not know are revoked')
    .option('--dir <dir...>', 'more directories to scan for certificate files (besides <data-dir>/pki/devices and every --out used)')
    .option('--json', 'print JSON')
    .action(async (options: { dir?: string[], json?: boolean }, command: Command) => withPki(command, async (fleet) => {
      const report = await fleet.reconcile(options.dir ?? [])
      if (options.json) {
        printJson({
          activated: report.activated.map((r) => ({ id: r.deviceId, serial: r.serial })),
          revoked: report.revoked.map((r) => ({ id: r.deviceId, serial: r.serial })),
          unknown: report.unknown.map((u) => ({ path: u.path, id: u.record.deviceId, serial: u.record.serial })),
        })
        return
      }
      process.stdout.write(`${report.activated.length} pending certificate(s) had landed: now active\n` +
        `${report.revoked.length} pending serial(s) never landed: revoked\n` +
        `${report.unknown.length} certificate file(s) unknown to the inventory: revoked\n` +
        report.unknown.map((u) => `  ${u.path} serial ${u.record.serial} (${u.record.deviceId})\n`).join(''))
    }))

  pki.command('crl')
    .description('re-sign the CRL with a fresh nextUpdate (run it from cron; the broker refuses everyone once it lapses)')
    .option('--if-due <days>', 'only if the CRL lapses within this many days (or cannot be read)', wholeNumber('--if-due'))
    .action(async (options: { ifDue?: number }, command: Command) => withPki(command, async (fleet) => {
      if (options.ifDue === undefined) await fleet.refreshCrl()
      else {
        const { refreshed, nextUpdate } = await fleet.refreshCrlIfDue(options.ifDue)
        if (!refreshed) {
          process.stdout.write(`CRL not due: valid until ${nextUpdate?.toISOString()}\n`)
          // Sent all the same: a node that missed the last one (cut off from Redis) gets it.
          return await sendCrlToCluster(command)
        }
      }
      process.stdout.write(`CRL refreshed: ${fleet.paths.crl}\n`)
      await sendCrlToCluster(command)
    }))

  pki.command('list')
    .description('the inventory: every device and integration certificate, and every registered LoRaWAN device, with its status')
    .option('--json', 'print JSON')
    .option('--all', 'include the server and collector certificates')
    .action(async (options: { json?: boolean, all?: boolean }, command: Command) => withPki(command, async (fleet) => {
      const { advisoryCount, describeWindow, supplierGrantViews, syncedAdvisories } = await import('./pki-list-details.ts')
      const entries = fleet.list().filter((entry) => options.all || entry.role === 'device' || entry.role === 'integration' || entry.role === 'supplier')
      // A supplier's grant (its active certificate's), and each device's advisories when `advisories sync` has run here.
      const grants = supplierGrantViews(fleet, Date.now())
      const advisories = syncedAdvisories(dataDirOf(command))
      if (options.json) {
        printJson(entries.map((e) => e.identity === 'lorawan'
          ? { id: e.deviceId, identity: e.identity, role: e.role, kind: e.kind, site: e.site, devEui: e.devEui, integrationId: e.integrationId, network: e.network, status: e.effectiveStatus, addedAt: e.addedAt, vendor: e.vendor ?? null, model: e.model ?? null, advisories: advisoryCount(advisories, e) }
          : {
              id: e.deviceId, identity: e.identity, role: e.role, kind: e.kind, site: e.site, ...(e.network ? { network: e.network } : {}),
              serial: e.serial, notBefore: e.notBefore, notAfter: e.notAfter,
              status: e.effectiveStatus, keyAlgorithm: e.keyAlgorithm, fingerprint: e.fingerprint, revokedAt: e.revokedAt,
              ...(e.role === 'device' ? { vendor: e.vendor ?? null, model: e.model ?? null, advisories: advisoryCount(advisories, e) } : {}),
              ...(e.role === 'supplier' ? { grant: (e.status === 'active' && grants.get(e.deviceId)) || null } : {}),
            }))
        return
      }
      // IDENTITY: a certificate of its own, or `lorawan via <integration>`; SERIAL/NOT AFTER are '-' for the latter.
      printTable(['ID', 'IDENTITY', 'KIND', 'SITE', 'SERIAL', 'NOT AFTER', 'STATUS'],
        entries.map((e) => e.identity === 'lorawan'
          ? [e.deviceId, `lorawan via ${e.integrationId}`, e.kind, e.site, '-', '-', e.effectiveStatus]
          : [e.deviceId, 'certificate', e.kind ?? (e.network ? `${e.role}:${e.network}` : e.role), e.site ?? '-', e.serial, e.notAfter, e.effectiveStatus]))
      if (grants.size > 0) {
        process.stdout.write('\n')
        printTable(['SUPPLIER', 'KINDS', 'SITES', 'OPEN NOW', 'WINDOWS'],
          [...grants].map(([id, grant]) => [id, grant.kinds.join(','), grant.sites.join(','), grant.windowOpenNow ? 'yes' : 'no', grant.windows.map(describeWindow).join('; ')]))
      }
      const products = entries.filter((e) => e.role === 'device' && e.vendor && e.model && e.effectiveStatus !== 'revoked')
      if (products.length > 0) {
        process.stdout.write('\n')
        printTable(['DEVICE', 'VENDOR', 'MODEL', 'ADVISORIES'], products.map((e) => [e.deviceId, e.vendor!, e.model!, String(advisoryCount(advisories, e) ?? '-')]))
      }
    }))
}
