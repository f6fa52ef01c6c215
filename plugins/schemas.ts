import { Type } from 'typebox'

/** Shared route schemas: one place for what an id and an error answer look like. */
export const AccountIdParams = Type.Object({
  id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })
}, { additionalProperties: false })

export const ErrorBody = Type.Object({
  error: Type.Object({ type: Type.String(), message: Type.String() }, { additionalProperties: true })
})

export function errorBody (type: string, message: string): { error: { type: string, message: string } } {
  return { error: { type, message } }
}
