/**
 * What loads when: importing the package loads none of the code that only some configurations or
 * commands use (the audits, the trust stores, the development CA, ACME, the public suffix list,
 * @fastify/csrf-protection), and an app loads each of them only when its configuration needs it.
 * (And @fastify/secure-session with its libsodium binding, and the metrics exporter, are loaded by
 * their plugins' registration.) Each case runs in a fresh process of the built package (npm test builds it), with a module
 * loader hook that records every module loaded. docs/benchmarks.md ("Import") has the figures.
 *
 * And the doctor summary that `secureHttps` logs at ready: a warning in production, nothing (and no
 * doctor code loaded) in development unless the logger writes debug lines.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { generateSessionKey, loadConfig, secureHttps, serverOptions } from '../index.ts'
import { createPki } from './helpers/certs.ts'
import { tempDir } from './helpers/app.ts'
import { captureLogs } from './helpers/logs.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** Modules (relative to the package root, or package names) that importing the package must not load. */
const LAZY = [
  'dist/audit/doctor.js',
  'dist/audit/check.js',
  'dist/tls/trust-store.js',
  'dist/tls/dev-ca.js',
  'dist/tls/self-signed.js',
  'dist/tls/self-signed-source.js',
  'dist/tls/x509.js',
  'dist/tls/acme-source.js',
  'dist/tls/acme-client.js',
  'dist/tls/acme-store.js',
  'dist/tls/on-demand.js',
  'dist/plugins/metrics-exporter.js',
  'node_modules/tldts/',
  'node_modules/@fastify/csrf-protection/',
  'node_modules/@fastify/secure-session/',
  'node_modules/sodium-native/'
] as const

interface Loaded {
  /** Package-root-relative paths of every module loaded by the end of the scenario. */
  modules: string[]
  stdout: string
}

/**
 * Runs `body` (the statements of an ES module, with `suite` the imported package) in a fresh Node.js
 * process from the package root, and returns every module it loaded: ES modules and CommonJS
 * alike, seen by a loader hook (modules imported) and in require's cache (modules required).
 */
async function loadedBy (t: Test, body: string, env: Record<string, string> = {}): Promise<Loaded> {
  const dir = tempDir('secure-https-lazy-', t)
  const log = join(dir, 'loaded.txt')
  writeFileSync(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs'
export async function load (url, context, next) {
  const result = await next(url, context)
  appendFileSync(${JSON.stringify(log)}, url + '\\n')
  return result
}
`)
  const script = `import { createRequire, register } from 'node:module'
register(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)})
const suite = await import('fastify-secure-https')
${body}
const { appendFileSync } = await import('node:fs')
appendFileSync(${JSON.stringify(log)}, Object.keys(createRequire(import.meta.url).cache).map((path) => 'file://' + path).join('\\n') + '\\n')
`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: dir, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  t.equal(code, 0, `the scenario runs:\n${stderr}`)
  const root = pathToFileURL(ROOT).href
  const modules = existsSync(log)
    ? [...new Set(readFileSync(log, 'utf8').split('\n').filter((url) => url.startsWith(root)).map((url) => url.slice(root.length)))]
    : []
  return { modules, stdout }
}

const has = (loaded: Loaded, prefix: string): boolean => loaded.modules.some((module) => module.startsWith(prefix))

t.test('built package present', async (t) => {
  t.ok(existsSync(join(ROOT, 'dist', 'index.js')), 'dist/ is built (npm test builds it)')
})

t.test('importing the package loads none of the code that only some configurations or commands use', async (t) => {
  const loaded = await loadedBy(t, '')
  t.ok(has(loaded, 'dist/plugins/secure-https.js'), 'the recorder sees our modules')
  t.ok(has(loaded, 'node_modules/zod/'), 'and the ES modules of dependencies')
  t.ok(has(loaded, 'node_modules/fastify-plugin/'), 'and the CommonJS ones')
  for (const module of LAZY) t.notOk(has(loaded, module), `${module} is not loaded on import`)
})

t.test('an app serving certificate files, without sessions, in development with an info logger, loads none of them at ready either', async (t) => {
  const pki = await createPki()
  const leaf = await pki.leaf()
  const dir = tempDir(undefined, t)
  writeFileSync(join(dir, 'cert.pem'), leaf.fullchain)
  writeFileSync(join(dir, 'key.pem'), leaf.key, { mode: 0o600 })
  const loaded = await loadedBy(t, `const { default: Fastify } = await import('fastify')
const config = suite.loadConfig(process.env)
const app = Fastify({ ...(await suite.serverOptions(config)), logger: { level: 'info', stream: { write () {} } } })
await app.register(suite.secureHttps, { ...config, secureSession: false })
await app.ready()
await app.close()
console.log('ready')`, { TLS_MODE: 'files', TLS_CERT_FILE: join(dir, 'cert.pem'), TLS_KEY_FILE: join(dir, 'key.pem'), TLS_DIR: join(dir, 'tls'), HTTP_PORT: 'off' })
  t.match(loaded.stdout, /ready/)
  for (const module of LAZY) t.notOk(has(loaded, module), `${module} is not loaded`)
})

t.test('each is loaded when the configuration needs it, and works', async (t) => {
  const dir = tempDir(undefined, t)
  const loaded = await loadedBy(t, `const { default: Fastify } = await import('fastify')
const config = suite.loadConfig(process.env)
const app = Fastify({ ...(await suite.serverOptions(config)), logger: { level: 'debug', stream: { write (line) { if (line.includes('fastify-secure-https doctor:')) console.log('doctor line') } } } })
await app.register(suite.secureHttps, config)
await app.ready()
console.log('mode ' + app.tls.status().mode)
await app.close()
const report = await suite.checkSite('https://127.0.0.1:1/', { timeout: 500 })
console.log('check ' + report.checks[0].status)`, { TLS_DIR: join(dir, 'tls'), HTTP_PORT: 'off', SESSION_CSRF: 'true', SESSION_DOMAIN: 'example.com', METRICS: 'true', METRICS_PORT: '0' })
  t.match(loaded.stdout, /mode self-signed/, 'the development certificate was made')
  t.match(loaded.stdout, /doctor line/, 'with a debug logger the doctor ran at ready')
  t.match(loaded.stdout, /check fail/, 'the live audit ran (against a closed port)')
  for (const module of ['dist/tls/self-signed-source.js', 'dist/tls/dev-ca.js', 'dist/audit/doctor.js', 'dist/audit/check.js', 'dist/plugins/metrics-exporter.js', 'node_modules/tldts/', 'node_modules/@fastify/csrf-protection/', 'node_modules/@fastify/secure-session/', 'node_modules/sodium-native/']) {
    t.ok(has(loaded, module), `${module} is loaded`)
  }
  t.notOk(has(loaded, 'dist/tls/acme-source.js'), 'no ACME code without TLS_MODE=acme')
})

t.test('at ready, production logs the failed doctor checks as one warning naming them', async (t) => {
  const pki = await createPki()
  const leaf = await pki.leaf({ hosts: ['app.example.com'] })
  const dir = tempDir(undefined, t)
  writeFileSync(join(dir, 'cert.pem'), leaf.fullchain)
  writeFileSync(join(dir, 'key.pem'), leaf.key, { mode: 0o600 })
  const env = {
    NODE_ENV: 'production',
    TLS_MODE: 'files',
    TLS_CERT_FILE: join(dir, 'cert.pem'),
    TLS_KEY_FILE: join(dir, 'key.pem'),
    ALLOWED_HOSTS: 'app.example.com',
    SESSION_KEYS: generateSessionKey(),
    HTTP_PORT: 'off',
    HSTS_MAX_AGE: '600'
  }
  const logs = captureLogs('info')
  const config = loadConfig(env)
  const app = Fastify({ ...(await serverOptions(config)), logger: logs.logger })
  t.teardown(() => app.close())
  await app.register(secureHttps, config)
  await app.ready()
  const line = await logs.waitFor((line) => typeof line.msg === 'string' && line.msg.startsWith('fastify-secure-https doctor:'))
  t.equal(line.level, 40, 'a warning')
  t.match(line.msg, /checks? failed \(.*SH-HSTS-003.*\); run `npx fastify-secure-https doctor` with the same environment for the fixes/)
  t.match(line.doctor, [{ id: 'SH-HSTS-003', severity: 'warning', message: /HSTS_MAX_AGE=600/ }])

  // The same app with a year of HSTS and the redirect on: nothing to say.
  const quiet = captureLogs('info')
  const quietConfig = loadConfig({ ...env, HSTS_MAX_AGE: '31536000', HTTP_PORT: '0' })
  const second = Fastify({ ...(await serverOptions(quietConfig)), logger: quiet.logger })
  t.teardown(() => second.close())
  await second.register(secureHttps, quietConfig)
  await second.ready()
  // The hook has run once ready() resolved: onReady hooks are awaited.
  t.notOk(quiet.lines.some((line) => typeof line.msg === 'string' && line.msg.startsWith('fastify-secure-https doctor:')), 'no line when every check passes')
})

t.test('in development the doctor runs only for a logger that writes debug lines', async (t) => {
  // `verbose` is a custom pino level below debug: pino says debug lines are written, which a table
  // of the standard level names alone would not know.
  const cases = [['info', 0], ['debug', 1], ['verbose', 1]] as const
  for (const [level, expected] of cases) {
    const logs = captureLogs(level)
    const config = loadConfig({ TLS_DIR: tempDir(undefined, t), HTTP_PORT: 'off' })
    const app = Fastify({ ...(await serverOptions(config)), logger: { ...logs.logger, customLevels: { verbose: 15 } } })
    t.teardown(() => app.close())
    await app.register(secureHttps, config)
    await app.ready()
    const lines = logs.lines.filter((line) => typeof line.msg === 'string' && line.msg.startsWith('fastify-secure-https doctor:'))
    t.equal(lines.length, expected, `${level}: ${expected} line`)
    if (expected === 1) t.equal(lines[0]?.level, 20, `${level}: at debug level (development fails several checks by design)`)
  }
})
