import { newAccount, type Account, type ModelLimit, type QuotaSnapshot, type QuotaWindow } from './records.js'
import type { StoreData } from './port.js'

/** The largest time a Date can hold: a larger "epoch ms" would throw when shown. */
const MAX_TIME = 8.64e15

class FieldError extends Error {}

type Obj = Record<string, unknown>

/**
 * Checks codex_tokens.json field by field (it may have been edited by hand) and returns the state
 * with missing optional fields filled in, or the first problem in words naming the field. A value
 * of the wrong type must stop the start with that message, never load and fail later (a 500 on
 * every `GET /accounts`).
 */
export function checkStoreData (data: unknown): StoreData | string {
  try {
    const store = object(data, 'the file')
    if (store.version !== 1) return `unknown version ${JSON.stringify(store.version)}`
    if (!Array.isArray(store.accounts)) return '"accounts" is not a list'
    const sticky = store.sticky ?? null
    if (sticky !== null && typeof sticky !== 'string') return '"sticky" is not an id'
    const accounts = store.accounts.map((entry: unknown, index: number) => checkAccount(entry, index))
    return { version: 1, sticky, accounts }
  } catch (err) {
    if (err instanceof FieldError) return err.message
    throw err
  }
}

function checkAccount (entry: unknown, index: number): Account {
  const raw = object(entry, `account #${index + 1}`)
  if (typeof raw.id !== 'string' || raw.id === '' || typeof raw.accountId !== 'string' || raw.accountId === '') throw new FieldError(`account #${index + 1} has no id`)
  const where = (field: string): string => `account ${raw.id}: "${field}"`
  const tokens = object(raw.tokens, where('tokens'))
  for (const name of ['idToken', 'accessToken', 'refreshToken']) {
    if (typeof tokens[name] !== 'string' || tokens[name] === '') throw new FieldError(`${where(`tokens.${name}`)} is not a non-empty string`)
  }
  const base = newAccount({
    id: raw.id,
    email: optional(raw, 'email', nullableString, where),
    accountId: raw.accountId,
    userId: optional(raw, 'userId', nullableString, where),
    plan: optional(raw, 'plan', nullableString, where),
    tokens: { idToken: tokens.idToken as string, accessToken: tokens.accessToken as string, refreshToken: tokens.refreshToken as string },
    addedAt: optional(raw, 'addedAt', time, where) ?? 0
  })
  const account: Account = {
    ...base,
    accessExpiresAt: optional(raw, 'accessExpiresAt', nullableTime, where),
    lastRefreshAt: optional(raw, 'lastRefreshAt', nullableTime, where),
    disabledUntil: optional(raw, 'disabledUntil', nullableTime, where),
    disabledKind: optional(raw, 'disabledKind', (v) => v === null || v === 'cooling' || v === 'disabled' || v === 'resting' ? v : fail('is not "cooling", "disabled", "resting" or null'), where),
    disabledReason: optional(raw, 'disabledReason', nullableString, where),
    disabledSource: optional(raw, 'disabledSource', nullableString, where),
    needsLogin: optional(raw, 'needsLogin', (v) => typeof v === 'boolean' ? v : fail('is not true or false'), where) ?? false,
    lastError: optional(raw, 'lastError', nullableString, where),
    lastErrorAt: optional(raw, 'lastErrorAt', nullableTime, where),
    lastUsedAt: optional(raw, 'lastUsedAt', nullableTime, where),
    requests: optional(raw, 'requests', (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : fail('is not a count'), where) ?? 0,
    quota: optional(raw, 'quota', (v) => v === null ? null : quota(v), where),
    modelLimits: optional(raw, 'modelLimits', modelLimits, where) ?? [],
    proxy: optional(raw, 'proxy', nullableString, where)
  }
  const spent = optional(raw, 'spentRefreshTokens', (v) => Array.isArray(v) && v.every((f) => typeof f === 'string') ? v as string[] : fail('is not a list of strings'), where)
  if (spent !== null) account.spentRefreshTokens = spent
  const refreshingSince = optional(raw, 'refreshingSince', time, where)
  if (refreshingSince !== null) account.refreshingSince = refreshingSince
  const servedBy = optional(raw, 'lastServedBy', nullableString, where)
  if (servedBy !== null) account.lastServedBy = servedBy
  return account
}

function modelLimits (value: unknown): ModelLimit[] {
  if (!Array.isArray(value)) fail('is not a list')
  return value.map((entry: unknown) => {
    const limit = object(entry, 'a model limit')
    const text = (field: string): string => typeof limit[field] === 'string' ? limit[field] as string : fail(`has a "${field}" that is not a string`)
    if (!Array.isArray(limit.models) || !limit.models.every((model) => typeof model === 'string')) fail('has "models" that are not a list of strings')
    return { family: text('family'), name: text('name'), models: limit.models as string[], until: time(limit.until), source: text('source') }
  })
}

function quota (value: unknown): QuotaSnapshot {
  const q = object(value, 'quota')
  const credits = q.credits === undefined ? {} : object(q.credits, 'quota.credits')
  if (!Object.values(credits).every((v) => typeof v === 'string')) fail('has a credit that is not a string')
  return {
    primary: window(q.primary ?? null),
    secondary: window(q.secondary ?? null),
    planType: nullableString(q.planType ?? null),
    activeLimit: nullableString(q.activeLimit ?? null),
    credits: credits as Record<string, string>,
    observedAt: time(q.observedAt)
  }
}

function window (value: unknown): QuotaWindow | null {
  if (value === null) return null
  const w = object(value, 'quota window')
  return { usedPercent: nullableNumber(w.usedPercent ?? null), windowMinutes: nullableNumber(w.windowMinutes ?? null), resetsAt: nullableTime(w.resetsAt ?? null) }
}

/** Reads an optional field: missing → null (an older file), present → checked, with the field named on error. */
function optional<T> (raw: Obj, field: string, check: (value: unknown) => T, where: (field: string) => string): T | null {
  if (!(field in raw) || raw[field] === undefined) return null
  try {
    return check(raw[field])
  } catch (err) {
    if (err instanceof FieldError) throw new FieldError(`${where(field)} ${err.message}`)
    throw err
  }
}

function object (value: unknown, what: string): Obj {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new FieldError(`${what} is not a JSON object`)
  return value as Obj
}

function fail (why: string): never {
  throw new FieldError(why)
}

function nullableString (value: unknown): string | null {
  return value === null || typeof value === 'string' ? value : fail('is not a string or null')
}

function nullableNumber (value: unknown): number | null {
  return value === null || (typeof value === 'number' && Number.isFinite(value)) ? value : fail('is not a number or null')
}

function time (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= MAX_TIME ? value : fail('is not a time (epoch milliseconds)')
}

function nullableTime (value: unknown): number | null {
  return value === null ? null : time(value)
}
