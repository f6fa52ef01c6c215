import type { Command } from 'commander'

/**
 * The `list` subcommand that `parent` runs when given none, with `--json`. As the default command it
 * also receives any subcommand commander does not know: `refuseUnknown` names it as such.
 */
export function defaultList (parent: Command, description: string, jsonHelp: string, subcommands: readonly string[]): { list: Command, refuseUnknown: (command: Command) => void } {
  const list = parent
    .command('list', { isDefault: true })
    .description(description)
    .option('--json', jsonHelp)
    .allowExcessArguments()
  const refuseUnknown = (command: Command): void => {
    if (command.args.length > 0) parent.error(`error: unknown command '${command.args[0]!}' (commands: ${subcommands.join(', ')})`)
  }
  return { list, refuseUnknown }
}
