import type { AccountView } from './account-view.js'

/** What a key the user typed (an id, an email, a ChatGPT account id) names among the accounts. */
export type AccountMatch =
  | { kind: 'one', view: AccountView }
  | { kind: 'none' }
  | { kind: 'many', views: AccountView[] }

/**
 * Finds the account a user means: its id first (ids never collide), else its email (any case) or its
 * ChatGPT account id. One email may sign in to several workspaces: then the id must be used.
 * The CLI and the management API both name accounts this way.
 */
export function matchAccount (views: readonly AccountView[], key: string): AccountMatch {
  const byId = views.find((view) => view.id === key)
  if (byId !== undefined) return { kind: 'one', view: byId }
  const lower = key.toLowerCase()
  const matches = views.filter((view) => view.email?.toLowerCase() === lower || view.account_id === key)
  if (matches.length === 1) return { kind: 'one', view: matches[0]! }
  return matches.length === 0 ? { kind: 'none' } : { kind: 'many', views: matches }
}

/** The sentence for a key that names several accounts. */
export function ambiguousMessage (key: string, views: readonly AccountView[]): string {
  return `"${key}" matches ${views.length} accounts (${views.map((view) => view.id).join(', ')}); use the id`
}
