/**
 * Types as a user's project sees them: tsc with skipLibCheck false compiles two small apps against
 * the built declarations (dist/, as `import 'fastify-secure-https'` resolves them). One types its
 * session values the @fastify/secure-session way and loads both packages' types (no TS2717 on
 * request.session); the other turns the session section off and never imports
 * @fastify/secure-session, and request.session is not declared for it.
 *
 * And the built files name each other by their .js files: the sources import `./x.ts` (the tests
 * run them with Node's type stripping), which tsc rewrites in the JavaScript but not in the
 * declarations; build.mjs does that, so that a user's TypeScript of any version and setting
 * resolves them.
 */
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'

const ROOT = join(import.meta.dirname, '..')
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

function tsc (project: string): Promise<{ code: number, output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [TSC, '-p', join(ROOT, 'test', 'types', project)], { cwd: ROOT, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, output: `${stdout}${stderr}` })
    })
  })
}

t.test('the built declarations, compiled as a user\'s project would with skipLibCheck false', async (t) => {
  if (!existsSync(join(ROOT, 'dist', 'index.d.ts'))) throw new Error('dist/index.d.ts is missing: run npm run build first')
  const [withPeer, withoutPeer] = await Promise.all([tsc('with-peer'), tsc('without-peer')])
  t.equal(withPeer.code, 0, `SessionData augmented in @fastify/secure-session types request.session; both packages load together\n${withPeer.output}`)
  t.equal(withoutPeer.code, 0, `with the session off and no import of @fastify/secure-session, request.session is not declared\n${withoutPeer.output}`)
})

t.test('the built files import each other as .js, declarations included', async (t) => {
  const dist = join(ROOT, 'dist')
  if (!existsSync(join(dist, 'index.d.ts'))) throw new Error('dist/index.d.ts is missing: run npm run build first')
  // A relative specifier ending in .ts, after `from`, `import(` or a bare `import`.
  const tsSpecifier = /(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)(['"])\.{1,2}\/[^'"\n]*\.ts\1/
  const files = readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.js') || name.endsWith('.d.ts'))
  const declarations = files.filter((name) => name.endsWith('.d.ts')).length
  t.ok(declarations > 30, `the declarations are there (${declarations} of ${files.length} files)`)
  const offending = files.filter((name) => tsSpecifier.test(readFileSync(join(dist, name), 'utf8')))
  t.same(offending, [], 'no built file imports a .ts file')
  t.match(readFileSync(join(dist, 'index.d.ts'), 'utf8'), /from '\.\/plugins\/secure-https\.js'/, 'index.d.ts names plugins/secure-https.js')
})
