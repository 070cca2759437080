/**
 * The package as an app gets it: `npm pack`, then the tarball installed into a new app next to
 * fastify 5.12.1 (dependencies from the npm registry). One copy of fastify, none of the optional
 * packages, the README example type-checks and runs, importing adds no global, and every file and
 * script in the tarball can be used where it lands.
 */
import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { freePort, tempDir } from './helpers/app.ts'
import { request } from './helpers/http.ts'

// npm install from the registry and a type-check: minutes on a busy machine.
t.setTimeout(900_000)

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const FASTIFY = '5.12.1'
const OPTIONAL = ['acme-client', 'ioredis', 'prom-client']

interface Run { code: number, stdout: string, stderr: string }

function run (command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 600_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : Number((error as { code?: number }).code ?? 1), stdout, stderr })
    })
  })
}

const work = tempDir('secure-https-package-')

let tarball = ''
let manifest: Record<string, unknown> & { scripts?: Record<string, string>, files?: string[] } = {}
let files: string[] = []

t.before(async () => {
  if (!existsSync(join(ROOT, 'dist', 'index.js'))) throw new Error('dist/ is missing: run npm run build first (npm test does)')
  // The build of `npm test` is packed as is (prepack would rebuild it under the other tests' feet).
  const packed = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], ROOT)
  if (packed.code !== 0) throw new Error(`npm pack failed:\n${packed.stderr}`)
  const [info] = JSON.parse(packed.stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
  if (info === undefined) throw new Error('npm pack printed nothing')
  tarball = join(work, info.filename)
  files = info.files.map((file) => file.path).sort()
  const listing = await run('tar', ['-xzf', tarball, '-C', work, 'package/package.json'], work)
  if (listing.code !== 0) throw new Error(listing.stderr)
  manifest = JSON.parse(readFileSync(join(work, 'package', 'package.json'), 'utf8')) as typeof manifest
})

t.test('the tarball: what an app needs, nothing that points at what is missing', async (t) => {
  for (const needed of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/bin/cli.js', 'docs/tls.md', 'dist/examples/demo/server.js']) {
    t.ok(files.includes(needed), `${needed} is in the tarball`)
  }
  t.same(files.filter((file) => file.endsWith('.map')), [], 'no source maps (they would point at .ts files that are not shipped)')
  t.same(files.filter((file) => /\.ts$/.test(file) && !file.endsWith('.d.ts')), [], 'no TypeScript sources')
  t.same(files.filter((file) => /^dist\/(test|bench)\//.test(file) || /^(test|bench|examples|\.tap|coverage|node_modules)\//.test(file)), [], 'no tests, benchmarks, coverage or node_modules')
  t.same(files.filter((file) => /^dist\/examples\/.*\.d\.ts$/.test(file)), [], 'the demo without declarations')
  t.match(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), /^MIT License\n\nCopyright \(c\) \d{4} /, 'an MIT LICENSE, as package.json says')
  t.equal(manifest.license, 'MIT')
  t.match(manifest, {
    repository: { type: 'git', url: 'git+https://github.com/fastify-secure-https/fastify-secure-https.git' },
    homepage: 'https://github.com/fastify-secure-https/fastify-secure-https#readme',
    bugs: { url: 'https://github.com/fastify-secure-https/fastify-secure-https/issues' },
    type: 'module'
  })
})

t.test('package.json: fastify and the heavy optional packages are peers; every script can run where it lands', async (t) => {
  const dependencies = (manifest.dependencies ?? {}) as Record<string, string>
  const peers = (manifest.peerDependencies ?? {}) as Record<string, string>
  const meta = (manifest.peerDependenciesMeta ?? {}) as Record<string, { optional?: boolean }>
  t.notOk('fastify' in dependencies, 'fastify is not a dependency: the app brings its own')
  t.equal(peers.fastify, '^5.12.1', 'but a peer dependency')
  for (const name of OPTIONAL) {
    t.notOk(name in dependencies, `${name} is not a dependency`)
    t.ok(name in peers, `${name} is a peer dependency`)
    t.equal(meta[name]?.optional, true, `${name} is optional`)
  }
  for (const name of ['@peculiar/x509', 'reflect-metadata', 'tsyringe']) t.notOk(name in dependencies, `${name} is not a dependency`)
  const scripts = manifest.scripts ?? {}
  t.notOk('prepare' in scripts, 'no prepare: it would run at every install from git, with no TypeScript there')
  t.notOk('bench' in scripts, 'no bench: its harness and dependencies stay in the checkout')
  t.equal(scripts.prepack, 'npm run build', 'the build runs when the package is packed')
  const start = /^node (\S+)$/.exec(scripts.start ?? '')?.[1]
  t.ok(start !== undefined && files.includes(start), `npm start runs ${start ?? '?'}, which is in the tarball`)
  t.match(manifest.engines, { node: '^22.12.0 || >=24' })
})

t.test('installed into a new app beside fastify 5.12.1', async (t) => {
  const app = join(work, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'fresh-app', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`)
  const installed = await run('npm', ['install', '--no-audit', '--no-fund', `fastify@${FASTIFY}`, tarball], app)
  t.equal(installed.code, 0, installed.stderr)
  if (installed.code !== 0) return

  const ls = await run('npm', ['ls', 'fastify', '--all', '--parseable', '--long'], app)
  const copies = ls.stdout.trim().split('\n').filter((line) => /node_modules\/fastify:fastify@/.test(line))
  t.same(copies.map((line) => line.replace(/^.*:fastify@/, 'fastify@').replace(/:.*$/, '')), [`fastify@${FASTIFY}`], 'one copy of fastify: the app\'s')
  const modules = readdirSync(join(app, 'node_modules'))
  for (const name of [...OPTIONAL, 'reflect-metadata', 'tsyringe', 'axios', 'node-forge']) {
    t.notOk(modules.includes(name), `${name} is not installed`)
  }

  // The README's usage example, as a user copies it.
  const readme = readFileSync(join(app, 'node_modules', 'fastify-secure-https', 'README.md'), 'utf8')
  const example = /## Usage\n\n```ts\n([\s\S]+?)```/.exec(readme)?.[1]
  t.ok(example, 'the README has a usage example')
  writeFileSync(join(app, 'server.ts'), example ?? '')
  // tsc --init's settings that matter here; the Node types and the compiler are the checkout's.
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')], skipLibCheck: true }
  }))
  const typed = await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], app)
  t.equal(typed.code, 0, `the README example type-checks against the app's own fastify:\n${typed.stdout}${typed.stderr}`)

  // No global side effect of ours: after the import, the globals are those before plus what zod
  // (the schema library, a dependency) sets for its own registry.
  const probe = (what: string): string => `const before = new Set(Reflect.ownKeys(globalThis)); const reflect = new Set(Reflect.ownKeys(Reflect));
await import('${what}')
const added = Reflect.ownKeys(globalThis).filter((key) => !before.has(key)).map(String).sort()
const reflectAdded = Reflect.ownKeys(Reflect).filter((key) => !reflect.has(key)).map(String)
console.log(JSON.stringify({ added, reflectAdded, getMetadata: typeof Reflect.getMetadata }))`
  const ours = await run(process.execPath, ['--input-type=module', '-e', probe('fastify-secure-https')], app)
  const zods = await run(process.execPath, ['--input-type=module', '-e', probe('zod')], join(app, 'node_modules', 'fastify-secure-https'))
  t.equal(ours.code, 0, ours.stderr)
  const zodGlobals = (JSON.parse(zods.stdout || '{}') as { added?: string[] }).added ?? []
  t.same(JSON.parse(ours.stdout || '{}'), { added: zodGlobals, reflectAdded: [], getMetadata: 'undefined' }, 'importing adds no global beyond zod\'s own, and no Reflect metadata polyfill')

  const missing = await run(process.execPath, ['--input-type=module', '-e', "import { redisSessionStore } from 'fastify-secure-https'; try { redisSessionStore({ url: 'redis://127.0.0.1:1' }) } catch (e) { console.log(e.code + ' ' + e.message) }"], app)
  t.match(missing.stdout, /ERR_SECURE_HTTPS_MISSING_DEPENDENCY .*needs the package ioredis, which is not installed; install it in the app: npm install ioredis/, 'an optional package is asked for by name when a configuration needs it')

  const version = await run(join(app, 'node_modules', '.bin', 'fastify-secure-https'), ['--version'], app)
  t.equal(version.stdout.trim(), manifest.version, 'the bin works')

  // And the example runs: zero configuration, https://localhost with the development CA.
  // As JavaScript: the example's TypeScript constructs (a type-only import and a type declaration)
  // dropped, as tsc drops them.
  const script = (example ?? '').replace(/^import type .*\n/m, '').replace(/^declare module [^\n]*\{ *(\/\/[^\n]*)?\n[\s\S]*?^\}\n/m, '')
  t.notMatch(script, /declare|interface/, 'nothing of TypeScript left')
  writeFileSync(join(app, 'server.js'), script)
  const [port, httpPort] = [await freePort(), await freePort()]
  const home = tempDir('secure-https-home-', t)
  const child = spawn(process.execPath, ['server.js'], { cwd: app, env: { PATH: process.env.PATH ?? '', HOME: home, PORT: String(port), HTTP_PORT: String(httpPort), _TAPJS_PROCESSINFO_COVERAGE_: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGTERM') })
  let served = null
  for (let i = 0; i < 600 && served === null; i++) {
    if (child.exitCode !== null) break
    const caFile = join(app, '.secure-https', 'ca', 'cert.pem')
    if (existsSync(caFile)) served = await request(`https://localhost:${port}/`, { ca: readFileSync(caFile) }).catch(() => null)
    if (served === null) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(served?.status, 200, `the example serves https://localhost:${port}, trusted through the development CA:\n${output}`)
  t.same(JSON.parse(served?.body ?? '{}'), { user: 'guest' })
  // The summary follows the redirect listener and a look at the trust stores, after listen().
  for (let i = 0; i < 300 && !output.includes('development server ready'); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.match(output, /development server ready/, 'and explains its first start')
})

t.teardown(async () => {
  const { rmSync } = await import('node:fs')
  rmSync(work, { recursive: true, force: true })
})
