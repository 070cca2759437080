/**
 * Types as a user's project sees them: tsc with skipLibCheck false compiles two small apps against
 * the built declarations (dist/, as `import 'fastify-secure-https'` resolves them). One types its
 * session values the @fastify/secure-session way and loads both packages' types (no TS2717 on
 * request.session); the other turns the session section off and never imports
 * @fastify/secure-session, and request.session is not declared for it.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
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
