/**
 * Buffers handed out again once their last user gave them back. A translated request's body is
 * written into a buffer of its own (the backend's JSON, the client's long strings copied in), and
 * writing tens of kilobytes into freshly allocated memory costs several times the copy itself:
 * between two garbage collections the allocator hands out tens of megabytes of such bodies, long
 * out of the CPU's caches, so every cache line written is a miss (a 41 KB copy: 4.5 µs into a new
 * buffer, 0.8 µs into one used a moment ago). Given back, a buffer is still in the cache when the
 * next body is written into it.
 *
 * A buffer must only be given back once nothing reads it any more: the caller decides when
 * (see `clients.ts`); a buffer never given back is simply collected.
 */

/** Sizes are rounded up to a power of two from this one: each size its own free list. */
const SMALLEST = 16 * 1024
/** Larger requests get a buffer of their own (rare, and one of them would hold the memory of many). */
const LARGEST = 1024 * 1024

export class ReusedBuffers {
  private readonly free = new Map<number, ArrayBuffer[]>()
  /** What is out: a buffer given back that was not handed out here, or twice, is ignored. */
  private readonly out = new WeakSet<ArrayBuffer>()
  private idleBytes = 0

  /** `maxIdleBytes`: how much free memory is kept for reuse; beyond it, buffers given back are let go. */
  constructor (private readonly maxIdleBytes: number) {}

  /** A buffer of exactly `size` bytes (a view into one of a size class), its content undefined. */
  take (size: number): Buffer {
    if (size > LARGEST) return Buffer.allocUnsafe(size)
    const capacity = sizeClass(size)
    const memory = this.free.get(capacity)?.pop()
    if (memory !== undefined) this.idleBytes -= capacity
    const buffer = memory === undefined ? Buffer.allocUnsafeSlow(capacity) : Buffer.from(memory, 0, capacity)
    this.out.add(buffer.buffer as ArrayBuffer)
    return buffer.subarray(0, size)
  }

  /** `buffer` (as `take` gave it) is not read by anyone any more. */
  giveBack (buffer: Buffer): void {
    const memory = buffer.buffer as ArrayBuffer
    if (!this.out.delete(memory)) return
    const capacity = memory.byteLength
    if (this.idleBytes + capacity > this.maxIdleBytes) return
    let list = this.free.get(capacity)
    if (list === undefined) this.free.set(capacity, list = [])
    list.push(memory)
    this.idleBytes += capacity
  }

  /** Bytes kept for reuse now. */
  get idle (): number {
    return this.idleBytes
  }
}

function sizeClass (size: number): number {
  let capacity = SMALLEST
  while (capacity < size) capacity *= 2
  return capacity
}
