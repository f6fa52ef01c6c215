#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node:test.
// Node 20's test runner takes no glob patterns, so the files are listed here.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'

function findTests (dir) {
  const found = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) found.push(...findTests(path))
    else if (name.endsWith('.test.js')) found.push(path)
  }
  return found
}

const filter = process.argv.slice(2)
// Only tests whose source still exists: the incremental build never deletes the output of a moved or removed file.
const hasSource = (f) => existsSync(f.replace(/^dist[\\/]/, '').replace(/\.js$/, '.ts'))
const files = findTests('dist/test').filter((f) => hasSource(f) && (filter.length === 0 || filter.some((p) => f.includes(p))))
if (files.length === 0) {
  console.error('no test files found under dist/test (did the build run?)')
  process.exit(1)
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit' })
process.exit(result.status ?? 1)
