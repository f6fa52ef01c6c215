import { StringDecoder } from 'node:string_decoder'

/**
 * The text of a stream's chunks, in order. A chunk that ends in an ASCII byte (an event's newline,
 * mostly) ends with a whole character and is decoded on its own; from the first that does not, a
 * decoder holds a cut character's first bytes until the next chunk brings the rest.
 */
export class ChunkText {
  private decoder: StringDecoder | null = null

  of (chunk: Buffer): string {
    if (this.decoder === null && (chunk.length === 0 || chunk[chunk.length - 1]! < 0x80)) return chunk.toString('utf8')
    this.decoder ??= new StringDecoder('utf8')
    return this.decoder.write(chunk)
  }
}
