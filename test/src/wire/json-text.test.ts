import { test } from 'node:test'
import assert from 'node:assert/strict'
import { flatString, flatValueAt, integerAt, objectTextAt, stringAt } from '../../../src/wire/json-text.js'

test('stringAt decodes a string from just past its opening quote, escaped quotes and backslashes included', () => {
  for (const value of ['', 'plain', 'a "quoted" word', 'back\\slash', 'ends with \\', '\\\\"', 'é 漢字 😀', 'line\nbreak\ttab', '\u0000\u001f']) {
    const text = `{"k":${JSON.stringify(value)},"next":"x"}`
    assert.equal(stringAt(text, 6), value, JSON.stringify(value))
  }
  assert.equal(stringAt('{"k":"cut', 6), undefined)
  assert.equal(stringAt('{"k":"cut \\"', 6), undefined)
  assert.equal(stringAt('{"k":"bad \\x escape"}', 6), undefined)
})

test('integerAt reads plain digits and refuses anything else', () => {
  assert.equal(integerAt('{"n":1700000000}', 5), 1700000000)
  assert.equal(integerAt('{"n": 42 ,', 5), 42)
  assert.equal(integerAt('{"n":0}', 5), 0)
  for (const value of ['-1', '1.5', '1e3', '"7"', 'null', '1234567890123456', '12x']) {
    assert.equal(integerAt(`{"n":${value}}`, 5), undefined, value)
  }
})

test('flatValueAt finds an object\'s own key only while nothing nests before it', () => {
  const text = '{"type":"t","delta":"a"}'
  assert.equal(flatValueAt(text, '"delta":'), text.indexOf('"a"'))
  assert.equal(flatValueAt('{"x":{"delta":"n"},"delta":"a"}', '"delta":'), -1)
  assert.equal(flatValueAt('{"x":["delta"],"delta":"a"}', '"delta":'), -1)
  assert.equal(flatValueAt('{"type":"t"}', '"delta":'), -1)
  const nested = '{"type":"t","response":{"id":"r","created_at":1}}'
  const response = flatValueAt(nested, '"response":')
  assert.equal(flatString(nested, '"id":"', response), 'r')
  assert.equal(flatString('{"type":"t","response":{"a":{"id":"n"},"id":"r"}}', '"id":"', response), undefined)
})

test('objectTextAt cuts the whole object, braces inside strings ignored', () => {
  const usage = '{"input_tokens":1,"note":"} { \\" }","details":{"cached_tokens":0}}'
  assert.equal(objectTextAt(`{"usage": ${usage},"after":1}`, 9), usage)
  assert.equal(objectTextAt('{"usage":null}', 9), null)
  assert.equal(objectTextAt('{"usage":{"cut":', 9), null)
})
