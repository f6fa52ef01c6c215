import { Pool } from 'undici'
import WebSocket from 'ws'
import type { Child } from './child.js'
import { codexRequestBody, codexRequestHeaders } from './codex-turn.js'
import { percentile } from './stats.js'

/**
 * A long conversation as Codex holds it: a history of about 2 MB, then `turns` turns, each adding
 * a user message. Over HTTP every turn sends the whole history; over WebSocket the first turn does,
 * and every later one only `previous_response_id` and the new message (protocol §5.6).
 */
export interface ConversationResult {
  /** Request bytes the upstream received for the first turn and per later turn (mean). */
  firstBytes: number
  laterBytes: number
  /** Per turn, ms from sending to the turn's last event. */
  p50: number
  p99: number
}

const user = (text: string): Record<string, unknown> => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] })

function history (): Record<string, any> {
  return JSON.parse(codexRequestBody(2 * 1024 * 1024).toString('utf8')) as Record<string, any>
}

export async function httpConversation (base: string, upstream: Child, turns: number): Promise<ConversationResult> {
  const body = history()
  const headers = codexRequestHeaders()
  const bytes: number[] = []
  const times: number[] = []
  for (let turn = 0; turn < turns; turn++) {
    body.input.push(user(`turn ${turn}`))
    const before = await upstream.bytes!()
    const started = performance.now()
    const response = await fetch(`${base}/responses`, { method: 'POST', headers, body: JSON.stringify(body) })
    const text = await response.text()
    times.push(performance.now() - started)
    if (response.status !== 200 || !text.includes('response.completed')) throw new Error(`HTTP turn failed: ${response.status}`)
    bytes.push(await upstream.bytes!() - before)
    body.input.push({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Done: the test passes now.' }] })
  }
  return summary(bytes, times)
}

export async function wsConversation (base: string, upstream: Child, turns: number): Promise<ConversationResult> {
  const { stream: _stream, ...body } = history()
  const { accept: _accept, 'content-type': _type, ...headers } = codexRequestHeaders()
  const socket = new WebSocket(`${base.replace(/^http/, 'ws')}/responses`, { headers: { ...headers, 'openai-beta': 'responses_websockets=2026-02-06' }, perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => { socket.once('open', resolve).once('error', reject) })
  const bytes: number[] = []
  const times: number[] = []
  let previous: string | null = null
  try {
    for (let turn = 0; turn < turns; turn++) {
      const frame = previous === null
        ? { type: 'response.create', ...body, input: [...body.input, user(`turn ${turn}`)] }
        : { type: 'response.create', ...body, input: [user(`turn ${turn}`)], previous_response_id: previous }
      const before = await upstream.bytes!()
      const started = performance.now()
      previous = await new Promise<string>((resolve, reject) => {
        const onMessage = (data: Buffer): void => {
          const event = JSON.parse(data.toString('utf8')) as { type: string, response?: { id: string } }
          if (event.type === 'response.completed') {
            socket.off('message', onMessage)
            resolve(event.response!.id)
          } else if (event.type === 'error' || event.type === 'response.failed') {
            socket.off('message', onMessage)
            reject(new Error(`WebSocket turn failed: ${data.toString('utf8').slice(0, 200)}`))
          }
        }
        socket.on('message', onMessage)
        socket.send(JSON.stringify(frame))
      })
      times.push(performance.now() - started)
      bytes.push(await upstream.bytes!() - before)
    }
  } finally {
    socket.close()
  }
  return summary(bytes, times)
}

function summary (bytes: number[], times: number[]): ConversationResult {
  const later = bytes.slice(1)
  return {
    firstBytes: bytes[0] ?? 0,
    laterBytes: later.length === 0 ? 0 : later.reduce((a, b) => a + b, 0) / later.length,
    p50: percentile(times, 50),
    p99: percentile(times, 99)
  }
}

export interface ConcurrentResult {
  turns: number
  /** Request bytes of the first and of the last turn. */
  firstBytes: number
  lastBytes: number
  /** Per turn, ms from sending to the answer's last byte. */
  p50: number
  p99: number
  /** The measured server's CPU per turn (µs). */
  cpuPerTurn: number
}

/**
 * The bodies of a conversation whose history grows from a first turn's ~40 KB to `lastBytes` over
 * `turns` turns, as Codex sends them over HTTP: every turn the whole history, grown by the last
 * answer, a tool call's output and a reasoning item (encrypted, as Codex keeps them), and the new
 * user message. Built once: every conversation sends the same bytes, under its own session id.
 */
export function growingConversation (turns: number, lastBytes: number): Buffer[] {
  const body = JSON.parse(codexRequestBody().toString('utf8')) as Record<string, any>
  const step = Math.max(0, Math.floor((lastBytes - JSON.stringify(body).length) / Math.max(1, turns - 1)) - 4300)
  const bodies: Buffer[] = []
  for (let turn = 0; turn < turns; turn++) {
    if (turn > 0) {
      body.input.push({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Done: the test passes now.' }] })
      body.input.push({ type: 'reasoning', summary: [], encrypted_content: `gAAAA${Buffer.alloc(3 * 1024, turn).toString('base64')}` })
      body.input.push({ type: 'function_call', name: 'shell', arguments: '{"command":["cat","src/parser.ts"]}', call_id: `call_t${turn}` })
      body.input.push({ type: 'function_call_output', call_id: `call_t${turn}`, output: 'export function parse () {} '.repeat(Math.ceil(step / 28)).slice(0, step) })
    }
    body.input.push(user(`turn ${turn}`))
    bodies.push(Buffer.from(JSON.stringify(body)))
  }
  return bodies
}

/**
 * `conversations` conversations at once, each sending `bodies` one turn after the other over
 * HTTP; `server` is the process whose CPU is counted (the upstream's for the direct call).
 */
export async function concurrentConversations (base: string, server: Child, bodies: Buffer[], conversations: number, extraHeaders: Record<string, string> = {}): Promise<ConcurrentResult> {
  const url = new URL(`${base}/responses`)
  const client = new Pool(url.origin, { connections: conversations })
  const times: number[] = []
  const cpuBefore = await server.cpu()
  try {
    await Promise.all(Array.from({ length: conversations }, async () => {
      const headers = { ...codexRequestHeaders(), ...extraHeaders }
      for (const body of bodies) {
        const started = performance.now()
        const answer = await client.request({ path: url.pathname, method: 'POST', headers, body })
        const text = await answer.body.text()
        times.push(performance.now() - started)
        if (answer.statusCode !== 200 || !text.includes('response.completed')) throw new Error(`HTTP turn failed: ${answer.statusCode} ${text.slice(0, 200)}`)
      }
    }))
  } finally {
    await client.close()
  }
  const cpu = await server.cpu() - cpuBefore
  return { turns: times.length, firstBytes: bodies[0]!.length, lastBytes: bodies[bodies.length - 1]!.length, p50: percentile(times, 50), p99: percentile(times, 99), cpuPerTurn: cpu * 1000 / times.length }
}
