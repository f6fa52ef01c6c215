import Fastify from 'fastify'
import { LISTEN_BACKLOG, serveAsChild } from './child.js'
import { FloorPass } from './floor-pass.js'

/**
 * The floor on Fastify: the floor's pass-through (floor-pass.ts) as the one route of a Fastify
 * server, the framework the app is built on, with nothing of the app (no logger, no hooks, no
 * plugins). Against the floor it shows what the framework alone costs each answer: a part of
 * the app's cost that no change to the app's own code can remove.
 */
const floor = new FloorPass(new URL(process.argv[2]!))
const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 * 1024 })

app.removeAllContentTypeParsers()
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => { done(null, body) })
app.post('/v1/*', (request, reply) => {
  reply.hijack()
  floor.passOn(request.raw, reply.raw, request.body as Buffer)
})

await app.listen({ host: '127.0.0.1', port: 0, backlog: LISTEN_BACKLOG })
const address = app.server.address()
serveAsChild(typeof address === 'object' && address !== null ? address.port : 0, async () => {
  app.server.closeAllConnections()
  await app.close()
  await floor.close()
})
