import { Type } from 'typebox'

/** Shared route schemas: one place for what an account key and an error answer look like. */

/** An account as the API takes it: its id, its email (`a%40b.com`) or its ChatGPT account id. */
export const AccountIdParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 320, pattern: '^[^\\s\\x00-\\x1f\\x7f/\\\\]+$' })
}, { additionalProperties: false })

export const ErrorBody = Type.Object({
  error: Type.Object({ type: Type.String(), message: Type.String() }, { additionalProperties: true })
})

export function errorBody (type: string, message: string): { error: { type: string, message: string } } {
  return { error: { type, message } }
}
