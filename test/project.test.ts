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

test('the README is a user\'s guide: install, upgrade, backup and restore, secret lengths, troubleshooting, architecture', () => {
  const readme = read('README.md')
  // The same text with code blocks blanked out (lengths kept), so that `# a comment` is no heading.
  const prose = readme.replace(/```[\s\S]*?```/g, (block) => block.replace(/[^\n]/g, ' '))
  const section = (heading: string): string => {
    const start = prose.indexOf(`\n${heading}\n`)
    assert.ok(start !== -1, `a section ${heading}`)
    const level = heading.split(' ')[0]!
    const next = prose.slice(start + heading.length + 2).search(new RegExp(`^#{1,${level.length}} `, 'm'))
    return next === -1 ? readme.slice(start) : readme.slice(start, start + heading.length + 2 + next)
  }
  assert.match(section('### From npm'), /npm install -g codex-equilibrium/)
  assert.match(section('### From a clone'), /npm install && npm start/)
  const upgrade = section('### Upgrade')
  assert.match(upgrade, /[Ss]top the service/)
  assert.match(upgrade, /What is kept: the auths dir/)
  const backup = section('## Backup and restore')
  assert.match(backup, /codex_tokens\.json/)
  assert.match(backup, /Restoring an old backup brings back old refresh tokens/)
  assert.match(backup, /\*\*needs login\*\*/)
  assert.match(section('## Configuration'), /at least 12 characters long/)
  assert.match(section('## Troubleshooting'), /must be at least 12 characters without spaces/)
  const architecture = section('## Architecture notes')
  assert.match(architecture, /undici/)
  assert.match(architecture, /@fastify\/reply-from/)
  for (const command of ['list', 'show', 'enable', 'select', 'refresh', 'remove']) {
    assert.match(readme, new RegExp(`codex-eq accounts ${command}\\b`), `the README shows codex-eq accounts ${command}`)
  }
})

test('benchmark figures live in docs/performance.md, linked once from the README', () => {
  const readme = read('README.md')
  const performance = read('docs/performance.md')
  for (const table of ['req/s @32', 'AccountPool.pick, in memory (ns per call', '1000 slow streams at once']) {
    assert.ok(performance.includes(table), `docs/performance.md has ${table}`)
    assert.ok(!readme.includes(table), `the README no longer has ${table}`)
  }
  assert.equal(readme.split('](docs/performance.md)').length - 1, 1)
})
