import type { ModelAlias } from './model-aliases.js'

/** The backend's model list (`{"models":[{"slug",…}]}`) as model ids, with the aliases' fixed names after them. */
export function modelIds (backendBody: string, aliases: readonly ModelAlias[]): string[] {
  let slugs: string[] = []
  try {
    const parsed = JSON.parse(backendBody) as { models?: Array<{ slug?: unknown }> }
    slugs = (parsed.models ?? []).map((model) => model.slug).filter((slug): slug is string => typeof slug === 'string')
  } catch {}
  const fixed = aliases.filter((alias) => !alias.pattern.includes('*')).map((alias) => alias.pattern)
  return [...new Set([...slugs, ...fixed])]
}

/** OpenAI's model object (`GET /v1/models/{id}`, and each entry of the list). */
export function openaiModel (id: string): Record<string, unknown> {
  return { id, object: 'model', created: 0, owned_by: 'openai' }
}

export function openaiModelList (ids: readonly string[]): Record<string, unknown> {
  return { object: 'list', data: ids.map(openaiModel) }
}

/** Anthropic's model object (`GET /v1/models/{model_id}`, and each entry of the list). */
export function anthropicModel (id: string): Record<string, unknown> {
  return { type: 'model', id, display_name: id, created_at: '1970-01-01T00:00:00Z' }
}

export function anthropicModelList (ids: readonly string[]): Record<string, unknown> {
  const data = ids.map(anthropicModel)
  return { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null }
}
