import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as delay } from 'node:timers/promises'
import { stdTimeFunctions } from 'pino'
import { isoTime } from '../../src/logger.js'

/** The time a timestamp function's text holds (pino's form: `,"time":…`). */
function timeIn (text: string): string {
  return (JSON.parse(`{${text.slice(1)}}`) as { time: string }).time
}

test('log times are written as pino writes ISO times, and follow the clock from one millisecond to the next', async () => {
  for (let round = 0; round < 20; round++) {
    const before = Date.now()
    const ours = isoTime()
    const pinos = stdTimeFunctions.isoTime()
    const after = Date.now()
    assert.match(ours, /^,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/)
    const at = Date.parse(timeIn(ours))
    assert.ok(at >= before && at <= after, `${timeIn(ours)} not between ${before} and ${after}`)
    // Same form as pino's own (the same text when both ran within one millisecond).
    if (before === after) assert.equal(ours, pinos)
    await delay(round % 2 === 0 ? 0 : 2)
  }
  const first = isoTime()
  await delay(5)
  const later = isoTime()
  assert.ok(Date.parse(timeIn(later)) > Date.parse(timeIn(first)), `${later} after ${first}`)
})
