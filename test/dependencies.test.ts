import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const SOURCE_DIRS = ['src', 'plugins', 'scripts', 'views', 'test']
const SOURCE_FILE = /\.(ts|mts|js|mjs)$/

function sourceFiles (dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && SOURCE_FILE.test(entry.name))
    .map((entry) => join(entry.parentPath, entry.name))
}

/** Every package name the sources import (`from 'x'`, `from 'x/sub'`, `import('x')`), scoped names kept whole. */
function importedPackages (): Set<string> {
  const names = new Set<string>()
  const specifier = /(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)['"]([^'"./][^'"]*)['"]/g
  for (const file of SOURCE_DIRS.flatMap(sourceFiles)) {
    for (const match of readFileSync(file, 'utf8').matchAll(specifier)) {
      const parts = match[1]!.split('/')
      names.add(match[1]!.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!)
    }
  }
  return names
}

test('every dependency in package.json is imported somewhere (no dead dependencies)', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies?: Record<string, string>, devDependencies?: Record<string, string> }
  const imported = importedPackages()
  assert.ok(imported.has('fastify') && imported.has('node:test'), 'the scan finds imports')
  const dead = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies }).filter((name) => {
    // A types package is used when what it types is: `@types/node` by `node:` imports, `@types/x` by `x`.
    const typed = /^@types\/(.+)$/.exec(name)?.[1]
    if (typed === 'node') return ![...imported].some((used) => used.startsWith('node:'))
    return !imported.has(typed ?? name)
  })
  assert.deepEqual(dead, [], 'listed in package.json but imported nowhere: remove them')
})
