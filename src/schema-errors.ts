/**
 * Route schema failures as sentences a person can act on ("refresh_token in the body must be a
 * string"), instead of the validator's own text, which shows regular expressions. The sent values
 * are never repeated: they may be tokens.
 */

/** What both validators in use (Ajv, TypeBox) report for each failure. */
export interface SchemaFailure {
  keyword: string
  instancePath?: string
  params?: Record<string, unknown>
  message?: string
}

const PARTS: Record<string, string> = { body: 'the body', params: 'the path', querystring: 'the query', headers: 'the headers' }

const TYPES: Record<string, string> = {
  string: 'text', number: 'a number', integer: 'a whole number', boolean: 'true or false',
  object: 'an object', array: 'a list', null: 'null'
}

export function schemaErrorSentence (failures: readonly SchemaFailure[], dataVar: string): Error {
  const byPath = new Map<string, SchemaFailure[]>()
  for (const failure of failures) byPath.set(failure.instancePath ?? '', [...(byPath.get(failure.instancePath ?? '') ?? []), failure])
  const sentences = [...byPath.values()].slice(0, 3).map((group) => sentence(telling(group), dataVar))
  return new Error(sentences.join('; '))
}

/**
 * A value that matches no branch of a union fails once per branch and once for the union. The
 * telling failure is a constraint of the branch whose type it had ("must not be empty"); failing
 * that, the types it could have had, together.
 */
function telling (group: SchemaFailure[]): SchemaFailure {
  const constraint = group.find((failure) => !['type', 'anyOf', 'oneOf'].includes(failure.keyword))
  if (constraint !== undefined) return constraint
  const types = group.filter((failure) => failure.keyword === 'type').flatMap((failure) => failure.params?.type ?? [])
  return types.length > 0 ? { ...group[0]!, keyword: 'type', params: { type: [...new Set(types)] } } : group[0]!
}

function sentence (failure: SchemaFailure, dataVar: string): string {
  const part = PARTS[dataVar] ?? dataVar
  const path = (failure.instancePath ?? '').split('/').filter((step) => step !== '').map(unescapePointer)
  const subject = path.length === 0 ? part : `${dataVar === 'params' ? 'the ' : ''}${quoted(path.join('.'))} in ${part}`
  const params = failure.params ?? {}
  switch (failure.keyword) {
    case 'required': {
      const missing = params.missingProperty ?? params.requiredProperties
      const names = (Array.isArray(missing) ? missing : [missing]).filter((name) => typeof name === 'string').map(quoted)
      return `${subject} must have ${names.length === 0 ? 'every required field' : list(names)}`
    }
    case 'type': {
      const types = (Array.isArray(params.type) ? params.type : [params.type]).map((type) => TYPES[String(type)] ?? String(type))
      return `${subject} must be ${list(types, 'or')}`
    }
    case 'minLength':
      return Number(params.limit) <= 1 ? `${subject} must not be empty` : `${subject} must be at least ${String(params.limit)} characters long`
    case 'maxLength':
      return `${subject} must be at most ${String(params.limit)} characters long`
    case 'pattern':
    case 'format':
      return `${subject} holds characters that are not allowed there`
    case 'additionalProperties': {
      const extra = params.additionalProperty ?? params.additionalProperties
      const names = (Array.isArray(extra) ? extra : [extra]).filter((name) => typeof name === 'string').map((name) => quoted(name.slice(0, 64)))
      return `${subject} has a field it does not take${names.length === 0 ? '' : `: ${list(names)}`}`
    }
    case 'minimum':
    case 'exclusiveMinimum':
      return `${subject} is too small`
    case 'maximum':
    case 'exclusiveMaximum':
      return `${subject} is too large`
    case 'anyOf':
    case 'oneOf':
      return `${subject} has the wrong type`
    case 'enum':
    case 'const':
      return `${subject} is not one of the accepted values`
    default:
      return `${subject} is not valid`
  }
}

function unescapePointer (step: string): string {
  return step.replace(/~1/g, '/').replace(/~0/g, '~')
}

function quoted (name: string): string {
  return /^[\w.-]+$/.test(name) ? name : JSON.stringify(name)
}

export function list (items: string[], joint = 'and'): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} ${joint} ${items[items.length - 1]!}`
}
