import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import ts from 'typescript'

test('the dashboard scripts type-check against the DOM (they are served as written, with no build step)', () => {
  const program = ts.createProgram([join(process.cwd(), 'views', 'app.js')], {
    allowJs: true,
    checkJs: true,
    noEmit: true,
    strict: true,
    noUnusedLocals: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ES2022,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2023.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
    types: [],
    skipLibCheck: true
  })
  const checked = program.getSourceFiles().filter((file) => file.fileName.includes('/views/')).map((file) => file.fileName.split('/views/')[1])
  assert.ok(checked.length >= 5 && checked.includes('account-card.js') && checked.includes('add-account.js'), `checked: ${checked.join(', ')}`)
  const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.formatDiagnostic(d, {
    getCanonicalFileName: (name) => name,
    getCurrentDirectory: () => process.cwd(),
    getNewLine: () => '\n'
  }).trim())
  assert.deepEqual(problems, [])
})
