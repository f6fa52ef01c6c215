/** Unsigned JWT-shaped tokens for unit tests (the service never verifies signatures). */
export function makeJwt (payload: Record<string, unknown>): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode(payload)}.sig`
}

export function tokenSetFor (o: { accountId: string, email: string, plan?: string, expSeconds?: number, serial?: number }): { idToken: string, accessToken: string, refreshToken: string } {
  const auth = { chatgpt_account_id: o.accountId, chatgpt_plan_type: o.plan ?? 'plus', chatgpt_user_id: `user-${o.accountId}` }
  const serial = o.serial ?? 0
  return {
    idToken: makeJwt({ email: o.email, 'https://api.openai.com/auth': auth, exp: o.expSeconds ?? 4_000_000_000 }),
    accessToken: makeJwt({ 'https://api.openai.com/auth': auth, exp: o.expSeconds ?? 4_000_000_000, jti: `${o.accountId}-${serial}` }),
    refreshToken: `rt_${o.accountId}_${serial}`
  }
}
