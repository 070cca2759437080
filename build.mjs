// npm run build: compiles the package into dist/ with tsc (tsconfig.build.json).
//
// The sources import each other by their real names (`./tls.ts`), so that Node runs them as they
// are, with its own type stripping (the tests do). tsc's rewriteRelativeImportExtensions turns
// those imports into `./tls.js` in the emitted JavaScript but leaves the declarations as they
// were. The published .d.ts files are given `.js` here, as they had before: a user's TypeScript
// of any version resolves them, whatever its allowImportingTsExtensions.
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const dist = join(import.meta.dirname, 'dist')
rmSync(dist, { recursive: true, force: true })
const tsc = join(import.meta.dirname, 'node_modules', 'typescript', 'bin', 'tsc')
execFileSync(process.execPath, [tsc, '-p', join(import.meta.dirname, 'tsconfig.build.json')], { stdio: 'inherit' })

// `from './x.ts'`, `import('./x.ts')` and `import './x.ts'`: relative specifiers only.
const SPECIFIER = /(\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"\n]*?)\.ts\2/g
let rewritten = 0
for (const name of readdirSync(dist, { recursive: true, encoding: 'utf8' })) {
  if (!name.endsWith('.d.ts')) continue
  const file = join(dist, name)
  const source = readFileSync(file, 'utf8')
  const output = source.replace(SPECIFIER, (_match, before, quote, path) => `${before}${quote}${path}.js${quote}`)
  if (output !== source) {
    writeFileSync(file, output)
    rewritten++
  }
}
console.log(`dist/: ${rewritten} declaration files point at .js`)
