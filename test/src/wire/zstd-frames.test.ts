import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decodeZstdBody, ZstdBodyError } from '../../../src/wire/zstd-body.js'
import { frameDemands, MAX_WINDOW_BYTES } from '../../../src/wire/zstd-frames.js'
import { zstdBomb, zstdFrame } from '../../helpers/zstd-frame.js'

const MIB = 1024 * 1024
const MAGIC = [0x28, 0xb5, 0x2f, 0xfd]
/** The last block of a frame: one RLE block repeating ' ' `size` times. */
const rleBlock = (size: number): number[] => { const value = 1 | (1 << 1) | (size << 3); return [value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, 0x20] }

async function refusal (body: Buffer, limit: number): Promise<ZstdBodyError> {
  try {
    await decodeZstdBody(body, limit)
  } catch (err) {
    assert.ok(err instanceof ZstdBodyError, String(err))
    return err
  }
  assert.fail('the body was decoded')
}

test('each frame declares its window and content size; skippable frames are passed over', async () => {
  const skippable = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3])
  // Single segment with a 2-byte content size (stored minus 256): the window is the content.
  const sized = Buffer.from([...MAGIC, 0x60, (300 - 256) & 0xff, 0, ...rleBlock(300)])
  const body = Buffer.concat([zstdFrame(Buffer.from('hello')), skippable, sized])
  assert.deepEqual(frameDemands(body), [{ windowBytes: 8 * MIB, contentBytes: null }, { windowBytes: 300, contentBytes: 300 }])
  assert.equal((await decodeZstdBody(body, 1024)).toString(), 'hello' + ' '.repeat(300))
})

test('a frame asking for a window past 8 MiB is refused before decoding, whatever it holds', async () => {
  // 6 header bytes and one 16-byte RLE block that ask a decoder for a 1 GiB window.
  const oneGiBWindow = Buffer.from([...MAGIC, 0x00, 0xa0, ...rleBlock(16)])
  assert.deepEqual(frameDemands(oneGiBWindow), [{ windowBytes: 1024 * MIB, contentBytes: null }])
  const before = process.memoryUsage().arrayBuffers
  const error = await refusal(oneGiBWindow, 100 * MIB)
  assert.equal(error.reason, 'too_large')
  assert.match(error.message, new RegExp(`1073741824-byte window.*up to ${MAX_WINDOW_BYTES}`))
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 * MIB, 'no window was reserved')
  // Just past the limit (8 MiB and an eighth) is refused too; 8 MiB itself decodes.
  assert.equal((await refusal(Buffer.from([...MAGIC, 0x00, 0x69, ...rleBlock(16)]), 100 * MIB)).reason, 'too_large')
  assert.equal((await decodeZstdBody(zstdBomb(16), 100 * MIB)).length, 16)
})

test('a frame declaring more than the limit once decoded is refused before decoding', async () => {
  // Single segment, 8-byte content size of 2 GiB: its window would be 2 GiB as well.
  const twoGiB = Buffer.alloc(8)
  twoGiB.writeBigUInt64LE(2n ** 31n)
  const error = await refusal(Buffer.from([...MAGIC, 0xe0, ...twoGiB, ...rleBlock(16)]), 64 * 1024)
  assert.equal(error.reason, 'too_large')
  assert.match(error.message, /declares 2147483648 bytes once decoded, more than the 65536 allowed/)
})

test('a header or block that breaks the format is a corrupt body', async () => {
  for (const broken of [
    Buffer.from([...MAGIC]), // no frame header descriptor
    Buffer.from([...MAGIC, 0x08, 0x68, ...rleBlock(1)]), // reserved bit set
    Buffer.from([...MAGIC, 0x00, 0x68, 0x07, 0x00, 0x00]), // reserved block type
    Buffer.from([...MAGIC, 0x00, 0x68, 0x01, 0x01, 0x00]), // raw block of 32 bytes, none there
    Buffer.from([0x50, 0x2a, 0x4d, 0x18, 9, 0, 0, 0]), // skippable frame longer than the body
    Buffer.from('{"model":"plain json"}')
  ]) {
    assert.equal((await refusal(broken, 1024)).reason, 'corrupt', broken.toString('hex'))
  }
})

test('a frame that declares no size is stopped once it grows past the limit; one cut short is corrupt (Node\'s own zstd where it has one, fzstd elsewhere)', async () => {
  assert.equal((await decodeZstdBody(zstdBomb(MIB), MIB)).length, MIB, 'exactly the limit decodes')
  const error = await refusal(zstdBomb(MIB + 1), MIB)
  assert.equal(error.reason, 'too_large')
  assert.match(error.message, new RegExp(`larger than ${MIB} bytes once decoded`))
  const text = Buffer.from(JSON.stringify({ model: 'gpt-5-codex', input: 'x'.repeat(300_000) }))
  const frame = zstdFrame(text)
  assert.ok((await decodeZstdBody(frame, MIB)).equals(text))
  assert.equal((await refusal(frame.subarray(0, frame.length - 10), MIB)).reason, 'corrupt')
  assert.equal((await decodeZstdBody(Buffer.alloc(0), MIB)).length, 0)
  // Smaller than the pieces Node decodes in: held at its own size, not as a view into a piece.
  const small = await decodeZstdBody(zstdFrame(Buffer.alloc(40_000, 'a')), MIB)
  assert.equal(small.length, 40_000)
  assert.ok(small.buffer.byteLength <= 2 * small.length, `${small.buffer.byteLength} bytes held`)
})
