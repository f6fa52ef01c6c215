import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
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

test('this node accepts every server flag, on its command line and at run time', () => {
  // A flag a newer V8 dropped would stop `npm start` and the unit with "bad option".
  const run = spawnSync(process.execPath, [...SERVER_NODE_FLAGS, '-e', 'process.stdout.write(JSON.stringify(process.execArgv))'], { encoding: 'utf8' })
  assert.equal(run.status, 0, run.stderr)
  assert.deepEqual(JSON.parse(run.stdout).slice(0, SERVER_NODE_FLAGS.length), [...SERVER_NODE_FLAGS])
  const flagsModule = new URL('../../src/server-flags.js', import.meta.url).href
  const atRunTime = spawnSync(process.execPath, ['--input-type=module', '-e', `import { applyServerFlags } from ${JSON.stringify(flagsModule)}; applyServerFlags()`], { encoding: 'utf8' })
  assert.equal(atRunTime.status, 0, atRunTime.stderr)
  assert.equal(atRunTime.stderr, '')
})
