import type { ImportInput } from '../../src/pool/account-pool.js'

const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
const jwt = (claims: Record<string, unknown>): string => `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.bench`

/** Tokens of a made-up account (JWT-shaped, valid until 2096: no refresh ever starts during a run). */
export function benchTokens (n: number): ImportInput {
  const auth = { 'https://api.openai.com/auth': { chatgpt_account_id: `acct-bench-${n}`, chatgpt_plan_type: 'plus', chatgpt_user_id: `user-bench-${n}` } }
  const exp = 4_000_000_000
  return {
    idToken: jwt({ email: `bench${n}@example.com`, exp, ...auth }),
    accessToken: jwt({ exp, ...auth }),
    refreshToken: `rt_bench_${n}`
  }
}

/** The secret of the client key the `app-keys` target requires. */
export const BENCH_CLIENT_KEY = 'ceq_bench-client-key-0123456789abcdef'
