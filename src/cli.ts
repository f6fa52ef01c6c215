#!/usr/bin/env node
import { Command } from 'commander'
import { registerAccounts } from './commands/accounts.js'
import { registerAudit } from './commands/audit.js'
import { registerExport } from './commands/export.js'
import { registerImport } from './commands/import.js'
import { registerKeys } from './commands/keys.js'
import { registerLogin } from './commands/login.js'
import { registerRequests } from './commands/requests.js'
import { registerServe } from './commands/serve.js'
import { registerService } from './commands/service.js'
import { registerStoreCopy } from './commands/store-copy.js'
import { registerUsage } from './commands/usage.js'
import { VERSION as version } from './version.js'


const program = new Command()
  .name('codex-eq')
  .description('Codex Equilibrium: use several ChatGPT/Codex accounts as one.\nIt proxies the Codex CLI\'s /v1/responses and fails over to the next account when one runs out.')
  .version(version)
  .showHelpAfterError()

registerServe(program)
registerLogin(program)
registerImport(program)
registerExport(program)
registerAccounts(program)
registerKeys(program)
registerUsage(program)
registerRequests(program)
registerAudit(program)
registerService(program)
registerStoreCopy(program)

await program.parseAsync(process.argv)
