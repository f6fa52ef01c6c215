import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SETTINGS } from '../src/config.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8')
const pkg = JSON.parse(read('package.json')) as Record<string, any>

test('the layout of the design card', () => {
  for (const path of ['package.json', 'tsconfig.json', 'src', 'plugins', 'views', 'auths', 'scripts', 'test', 'README.md']) {
    assert.ok(existsSync(join(ROOT, path)), path)
  }
})

test('package.json: both bins on one entry, Node >= 20.19, ESM, no Codex CLI for users to install', () => {
  assert.equal(pkg.type, 'module')
  assert.equal(pkg.engines?.node, '>=20.19')
  assert.equal(typeof pkg.bin?.['codex-eq'], 'string')
  assert.equal(pkg.bin['codex-equilibrium'], pkg.bin['codex-eq'])
  assert.ok(existsSync(join(ROOT, pkg.bin['codex-eq'] as string)), 'the bin entry is built')
  for (const field of ['dependencies', 'devDependencies', 'optionalDependencies']) {
    assert.equal(pkg[field]?.['@openai/codex'], undefined, `@openai/codex stays out of ${field}`)
  }
  for (const name of ['fastify', '@fastify/static', 'pino', 'commander', 'open']) assert.ok(name in pkg.dependencies, name)
})

test('the README shows the start and test commands and the whole config table', () => {
  const readme = read('README.md')
  assert.ok(readme.includes('npm install && npm start'))
  assert.match(readme, /npm test/)
  for (const spec of SETTINGS) {
    const row = readme.split('\n').find((line) => line.startsWith(`| \`${spec.flag}\``))
    assert.ok(row !== undefined, `a row for ${spec.flag}`)
    assert.ok(row.includes(`\`${spec.env}\``), `${spec.flag} row names ${spec.env}`)
    if (spec.defaultValue !== null) assert.ok(row.includes(`\`${spec.defaultValue}\``), `${spec.flag} row shows the default ${spec.defaultValue}`)
  }
})

test('.ci/run is executable and runs npm test', () => {
  assert.ok((statSync(join(ROOT, '.ci/run')).mode & 0o111) !== 0)
  assert.match(read('.ci/run'), /^npm test$/m)
})

test('auths/ keeps only its .gitkeep and .gitignore in git', () => {
  assert.ok(existsSync(join(ROOT, 'auths/.gitkeep')))
  assert.deepEqual(read('auths/.gitignore').trim().split('\n'), ['*', '!.gitignore', '!.gitkeep'])
})

test('the build is incremental: with nothing changed, building again writes no file', () => {
  const tsconfig = JSON.parse(read('tsconfig.json')) as { compilerOptions: Record<string, unknown> }
  // Inside dist/: deleting the output also deletes what tsc remembers of it, so a clean build is a full one.
  assert.match(String(tsconfig.compilerOptions.tsBuildInfoFile), /^dist\//)
  assert.match(read('.gitignore'), /^dist\/$/m)
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const again = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json', '--listEmittedFiles'], { cwd: ROOT, encoding: 'utf8' })
  assert.equal(again.status, 0, again.stdout + again.stderr)
  assert.equal(again.stdout.trim(), '', 'no file emitted again')
})
