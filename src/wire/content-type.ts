/** True for `application/json` in UTF-8 (no charset, or utf-8): the only request body the JSON APIs read. */
export function isUtf8Json (contentType: string): boolean {
  const [type, ...parameters] = contentType.split(';').map((part) => part.trim().toLowerCase())
  if (type !== 'application/json') return false
  const charset = parameters.find((parameter) => parameter.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '')
  return charset === undefined || charset === 'utf-8' || charset === 'utf8'
}
