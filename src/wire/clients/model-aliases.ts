/**
 * Model names other clients use, mapped onto the backend's: Claude Code asks for `claude-sonnet-4-5`
 * (or, older, `claude-3-5-haiku-20241022`), some OpenAI tools for `gpt-5-high`. A `*` in a pattern
 * stands for any characters; the first match wins; a name no pattern matches goes to the backend as it is.
 */
export const REASONING_EFFORTS = ['minimal', 'low', 'medium', 'high', 'xhigh'] as const
export type ReasoningEffort = typeof REASONING_EFFORTS[number]

export interface ModelAlias {
  pattern: string
  model: string
  effort: ReasoningEffort | null
}

interface CompiledAlias extends ModelAlias {
  matches: RegExp
}

export interface ResolvedModel {
  model: string
  /** The alias's reasoning effort; the request's own one wins. */
  effort: ReasoningEffort | null
}

export const DEFAULT_MODEL_ALIASES = 'claude-*opus*=gpt-5-codex:high,claude-*sonnet*=gpt-5-codex:medium,claude-*haiku*=gpt-5-codex:low'

/** Reads `pattern=model[:effort]` entries; throws an Error saying which entry is wrong. */
export function parseModelAliases (entries: readonly string[]): ModelAlias[] {
  return entries.map((entry): CompiledAlias => {
    const match = /^([A-Za-z0-9._*-]+)=([A-Za-z0-9._-]+)(?::([a-z]+))?$/.exec(entry.trim())
    if (match === null) throw new Error(`"${entry}" is not pattern=model or pattern=model:effort (a * in the pattern stands for anything)`)
    const effort = match[3] ?? null
    if (effort !== null && !(REASONING_EFFORTS as readonly string[]).includes(effort)) throw new Error(`"${entry}": the effort must be one of ${REASONING_EFFORTS.join(', ')}`)
    const pattern = match[1]!
    // Not enumerable: the alias reads (and compares) as its three fields.
    return Object.defineProperty({ pattern, model: match[2]!, effort: effort as ReasoningEffort | null }, 'matches', {
      value: new RegExp(`^${pattern.replace(/\./g, '\\.').replace(/\*/g, '.*')}$`)
    }) as CompiledAlias
  })
}

export function resolveModel (name: string, aliases: readonly ModelAlias[]): ResolvedModel {
  for (const alias of aliases) {
    if ((alias as CompiledAlias).matches.test(name)) return { model: alias.model, effort: alias.effort }
  }
  return { model: name, effort: null }
}

export function isReasoningEffort (value: unknown): value is ReasoningEffort {
  return typeof value === 'string' && (REASONING_EFFORTS as readonly string[]).includes(value)
}
