/**
 * A map that forgets its least recently used entries beyond `capacity`: what the proxy remembers
 * per conversation, blob or turn stays bounded however long the service runs.
 */
export class BoundedMap<V> {
  private readonly entries = new Map<string, V>()

  constructor (private readonly capacity: number) {}

  /** The value, marked as recently used. */
  get (key: string): V | undefined {
    const value = this.entries.get(key)
    if (value !== undefined) {
      // Map keeps insertion order: re-inserting marks it as recently used.
      this.entries.delete(key)
      this.entries.set(key, value)
    }
    return value
  }

  /** The value, without marking it used. */
  peek (key: string): V | undefined {
    return this.entries.get(key)
  }

  set (key: string, value: V): void {
    this.entries.delete(key)
    this.entries.set(key, value)
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string)
  }

  get size (): number {
    return this.entries.size
  }
}
