import type { Command } from 'commander'
import type { AuditEntry } from '../audit/audit-log.js'
import { columns } from './columns.js'
import { type Flags, printAnswer, readLimit, run, withServer } from './server-command.js'
import { localClock } from './time-text.js'

export function registerAudit (program: Command): void {
  const audit = program
    .command('audit')
    .description('Show the last management actions of a running codex-eq server, newest first: when, who (with the admin token, or ' +
      'from the machine itself when there is none, and from which address), what, and on which account or key. ' +
      'Kept in memory since it started; the lasting record is its log.')
    .option('--limit <n>', 'at most this many actions (1 to 1000)')
    .option('--json', 'print the actions as JSON, as GET /audit answers')
    .addHelpText('after', '\nExamples:\n' +
      '  codex-eq audit\n' +
      '  codex-eq audit --limit 10 --server http://my-server:1456 --admin-token "$TOKEN"')
  withServer(audit, 'audit log').action(async (flags: Flags) => {
    await run(flags, async (server) => {
      printAnswer(flags, await server.audit({ limit: readLimit(flags) }), (answer) => formatAudit(answer, server.base, Date.now()))
    })
  })
}

function formatAudit (entries: readonly AuditEntry[], where: string, now: number): string {
  if (entries.length === 0) return `no management actions on ${where} since it started\n`
  const rows = [['TIME', 'BY', 'ACTION', 'TARGET', 'DETAILS'], ...entries.map((entry) => [
    localClock(Date.parse(entry.at), now),
    `${entry.actor.via === 'admin_token' ? 'admin token' : 'local'} ${entry.actor.remote}`,
    entry.action,
    entry.account !== undefined ? (entry.account.email ?? entry.account.id) : entry.key !== undefined ? `key ${entry.key}` : '-',
    Object.entries(entry.details ?? {}).map(([name, value]) => `${name}=${String(value)}`).join(' ') || '-'
  ])]
  return columns(rows)
}
