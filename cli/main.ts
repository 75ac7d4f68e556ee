import { Command } from 'commander'
import { registerAdvisoriesCommands } from './advisories-command.ts'
import pkg from '../package.json' with { type: 'json' }
import { registerAuditTrailCommands } from './audit-trail-command.ts'
import { registerBrokerCommand } from './broker-command.ts'
import { registerClusterCommands } from './cluster-command.ts'
import { registerCollectorCommand } from './collector-command.ts'
import { registerDevicesCommands } from './devices-command.ts'
import { reportError } from './output.ts'
import { registerOutboxCommands } from './outbox-command.ts'
import { registerPkiCommands } from './pki-commands.ts'
import { registerQuarantineCommands } from './quarantine-command.ts'
import { registerSimCommand } from './sim-command.ts'
import { registerUpCommand } from './up-command.ts'

const program = new Command('placeguard')
  .description('security monitor for the MQTT device fleets of connected places')
  .version(pkg.version)
  .option('--data-dir <dir>', 'data directory (default ./data, env PLACEGUARD_DATA_DIR)')
  .showHelpAfterError()

registerPkiCommands(program)
registerDevicesCommands(program)
registerBrokerCommand(program)
registerCollectorCommand(program)
registerUpCommand(program)
registerSimCommand(program)
registerQuarantineCommands(program)
registerOutboxCommands(program)
registerClusterCommands(program)
registerAuditTrailCommands(program)
registerAdvisoriesCommands(program)

// `placeguard pki list --json | head`: a reader that has read enough is no
// error. Node answers a closed pipe with EPIPE on stdout, not SIGPIPE; end
// quietly, with the status a shell gives a tool SIGPIPE ended (128 + 13).
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(141)
  throw error
})

try {
  await program.parseAsync(process.argv)
} catch (error) {
  process.exitCode = reportError(error)
}
