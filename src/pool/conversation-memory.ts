import { BoundedMap } from './bounded-map.js'
import { ConversationAffinity, conversationKey, requestModel } from './conversation-affinity.js'
import { RequestBody } from '../wire/request-body.js'
import { BlobLearner, BlobOwners, blobsIn, carriesBlobs, withoutBlobs } from './encrypted-blobs.js'

export const TURN_STATE = 'x-codex-turn-state'

type Headers = Record<string, string | string[] | undefined>

/** What a caller that wrote the body itself already knows of it: then the body is not searched. */
export interface KnownBody {
  conversation: string | null
  carriesBlobs: boolean
  model: string | null
}

/**
 * What the pool remembers of conversations across requests: which account serves each one, which
 * account made each encrypted blob, which account issued each turn state. Bounded throughout.
 */
export interface Learned {
  kind: 'conversation' | 'blob' | 'turn'
  key: string
  account: string
}

export class ConversationMemory {
  readonly affinity = new ConversationAffinity()
  readonly blobOwners = new BlobOwners()
  /** Which account issued each `x-codex-turn-state`. */
  readonly turnStates = new BoundedMap<string>(10_000)
  /** Told of everything learned here (a pool shared by several instances passes it on). */
  onLearn: ((entry: Learned) => void) | null = null

  /** Records what was learned here, and passes it on. */
  learn (entry: Learned): void {
    this.remember(entry)
    this.onLearn?.(entry)
  }

  /** Records what another instance learned (its next turn may land here). */
  remember (entry: Learned): void {
    switch (entry.kind) {
      case 'conversation': this.affinity.set(entry.key, entry.account); break
      case 'blob': this.blobOwners.set(entry.key, entry.account); break
      case 'turn': this.turnStates.set(entry.key, entry.account); break
    }
  }

  /** What one request needs to know (and learns), computed lazily: the common path is byte scans. */
  forRequest (headers: Headers, body: RequestBody | undefined, known?: KnownBody): RequestMemory {
    return new RequestMemory(this, headers, body, known)
  }
}

export class RequestMemory {
  readonly conversation: string | null
  /** The conversation's own account (or the turn state's issuer): tried first. */
  readonly prefer: string | undefined
  /** Encrypted blobs dropped from the body sent last, and whether a turn state was withheld. */
  blobsDropped = 0
  turnStateDropped = false
  private readonly owner: string | undefined
  private readonly turnOwner: string | undefined
  /** Whether the body carries encrypted blobs: searched for on first need (most requests never ask). */
  private carries: boolean | undefined
  private fingerprints: string[] | undefined
  private modelName: string | null | undefined

  constructor (private readonly memory: ConversationMemory, headers: Headers, private body: RequestBody | undefined, known?: KnownBody) {
    this.conversation = known === undefined ? conversationKey(headers, body) : known.conversation
    this.owner = this.conversation === null ? undefined : memory.affinity.get(this.conversation)
    const turnState = headers[TURN_STATE]
    this.turnOwner = typeof turnState === 'string' ? memory.turnStates.peek(turnState) : undefined
    if (known !== undefined) {
      this.carries = known.carriesBlobs
      this.modelName = known.model
    }
    this.prefer = this.owner ?? this.turnOwner
  }

  /**
   * Does the body carry encrypted blobs (so a 400 `invalid_encrypted_content` may be ours to fix)?
   * A search of the whole body, made only when asked: a conversation that stays on its account
   * never needs it, nor does an answer that is not a 400.
   */
  get carriesBlobs (): boolean {
    this.carries ??= carriesBlobs(this.body)
    return this.carries
  }

  /** The request's model, read once from the body (it stays known after the body is let go). */
  model (): string | null {
    if (this.modelName === undefined) this.modelName = requestModel(this.body)
    return this.modelName
  }

  /**
   * The body as this account may receive it: blobs other accounts made are dropped. Only a
   * conversation that moves (or moved before, or is unknown) is looked at; the rest is a byte scan.
   */
  bodyFor (account: string): RequestBody | undefined {
    this.blobsDropped = 0
    const { body, conversation } = this
    if (body === undefined) return body
    if (this.owner === account && !this.memory.affinity.hasMoved(conversation!)) return body
    const owners = this.memory.blobOwners
    if (owners.size === 0 || !this.carriesBlobs) return body
    this.fingerprints ??= blobsIn(body.whole())
    if (!owners.anyForeign(this.fingerprints, account)) return body
    return this.rewritten(withoutBlobs(body.whole(), (fingerprint) => { const maker = owners.peek(fingerprint); return maker !== undefined && maker !== account }))
  }

  /**
   * The body to send once more after this answer, or null: blobs never seen (made before a
   * restart, say) are refused as `invalid_encrypted_content`; then every blob not known as this
   * account's own goes.
   */
  bodyAfterRefusal (account: string, status: number, errorBody: string | null): RequestBody | null {
    if (status !== 400 || !this.carriesBlobs || !/invalid_encrypted_content/.test(errorBody ?? '')) return null
    return this.bodyWithoutUnknownBlobs(account)
  }

  /** The body without every blob not known as this account's own, or null when that drops nothing more. */
  private bodyWithoutUnknownBlobs (account: string): RequestBody | null {
    if (this.body === undefined) return null
    const owners = this.memory.blobOwners
    const result = withoutBlobs(this.body.whole(), (fingerprint) => owners.peek(fingerprint) !== account)
    return result === null || result.dropped <= this.blobsDropped ? null : this.rewritten(result) ?? null
  }

  /** The client's headers for this account: a turn state is only ever sent to the account that issued it. */
  headersFor (account: string, clientHeaders: string[]): string[] {
    this.turnStateDropped = this.turnOwner !== undefined && this.turnOwner !== account
    return this.turnStateDropped ? clientHeaders.filter((_, i) => clientHeaders[i - (i % 2)] !== TURN_STATE) : clientHeaders
  }

  /** No attempt follows: let the body go (an answer can stream for many minutes). */
  release (): void {
    this.model() // a byte search near the top of the body: the usage ledger names the model
    this.body = undefined
  }

  /** The account served: the conversation stays there, and its turn state is its own. */
  served (account: string, answerHeaders: Headers): void {
    if (this.conversation !== null && (this.memory.onLearn === null || this.memory.affinity.get(this.conversation) !== account)) {
      this.memory.learn({ kind: 'conversation', key: this.conversation, account })
    }
    const issued = answerHeaders[TURN_STATE]
    if (typeof issued === 'string') this.memory.learn({ kind: 'turn', key: issued, account })
  }

  /** Learns which account made the blobs of an answer as it passes. */
  learner (account: string): BlobLearner {
    return new BlobLearner((fingerprint) => { this.memory.learn({ kind: 'blob', key: fingerprint, account }) })
  }

  private rewritten (result: { body: Buffer, dropped: number } | null): RequestBody | undefined {
    if (result === null) return this.body
    this.blobsDropped = result.dropped
    return RequestBody.of(result.body)
  }
}
