import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { SERVER_NODE_FLAGS } from '../../src/server-flags.js'

const ROOT = new URL('../../../', import.meta.url)

test('npm start runs the server with the node flags the systemd unit gives it', async () => {
  const pkg = JSON.parse(await readFile(new URL('package.json', ROOT), 'utf8')) as { scripts: Record<string, string> }
  const words = pkg.scripts.start!.split(' ')
  assert.equal(words[0], 'node')
  assert.deepEqual(words.slice(1, 1 + SERVER_NODE_FLAGS.length), [...SERVER_NODE_FLAGS], pkg.scripts.start)
  assert.deepEqual(words.slice(1 + SERVER_NODE_FLAGS.length), ['dist/src/cli.js', 'serve'])
})
