/**
 * What loading the suite costs an app at start: `import('fastify-secure-https')` against
 * `import('fastify')` alone, each in a fresh Node.js process (nothing cached in memory), the
 * subjects alternated run by run so that the machine's load falls on all alike; medians of many runs.
 *
 * With `--startup`, two more subjects, so that code loaded at registration rather than on import is
 * counted too: bare Fastify over TLS (import, construct with a certificate, `ready()`) against the
 * suite in production with certificate files (import both, `loadConfig`, `serverOptions`, register
 * `secureHttps` with its defaults: session, headers, HSTS, host and cross-site checks, `ready()`).
 *
 *   npm run build && node dist/bench/import.js [--runs 31] [--startup] [--check]
 *
 * `--check` exits 1 when the suite's import costs more than twice Fastify's own.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { generateSelfSigned, generateSessionKey } from 'fastify-secure-https'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Milliseconds one fresh process takes to run `body` (timed inside it). */
function timeOf (body: string, env: Record<string, string> = {}): number {
  const script = `const t = performance.now(); ${body}; process.stdout.write(String(performance.now() - t))`
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env } }))
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] as number : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

const { values } = parseArgs({ options: { runs: { type: 'string', default: '31' }, check: { type: 'boolean', default: false }, startup: { type: 'boolean', default: false } } })
const runs = Number(values.runs)

interface Subject { label: string, body: string, env?: Record<string, string>, of: 'import' | 'startup' }
const subjects: Subject[] = [
  { label: "`import('fastify')`", body: "await import('fastify')", of: 'import' },
  { label: "`import('zod')`", body: "await import('zod')", of: 'import' },
  { label: "`import('fastify-secure-https')`", body: "await import('fastify-secure-https')", of: 'import' }
]
let dir: string | null = null
if (values.startup === true) {
  dir = mkdtempSync(join(tmpdir(), 'secure-https-import-'))
  const pair = await generateSelfSigned(['bench.example'])
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  writeFileSync(cert, pair.cert)
  writeFileSync(key, pair.key, { mode: 0o600 })
  subjects.push({
    label: 'bare Fastify over TLS: import, construct, `ready()`',
    body: `const { readFileSync } = await import('node:fs'); const { default: Fastify } = await import('fastify'); const app = Fastify({ https: { key: readFileSync(${JSON.stringify(key)}), cert: readFileSync(${JSON.stringify(cert)}) } }); await app.ready(); await app.close()`,
    of: 'startup'
  })
  subjects.push({
    label: 'the suite, production, certificate files: import, `serverOptions`, register `secureHttps`, `ready()`',
    body: "const { default: Fastify } = await import('fastify'); const { default: secureHttps, loadConfig, serverOptions } = await import('fastify-secure-https'); const config = loadConfig(process.env); const app = Fastify({ ...(await serverOptions(config)) }); await app.register(secureHttps, config); await app.ready(); await app.close()",
    env: { NODE_ENV: 'production', TLS_MODE: 'files', TLS_CERT_FILE: cert, TLS_KEY_FILE: key, ALLOWED_HOSTS: 'bench.example', SESSION_KEYS: generateSessionKey(), HTTP_PORT: 'off', TLS_DIR: join(dir, 'tls') },
    of: 'startup'
  })
}

const times = subjects.map(() => [] as number[])
try {
  // One warm-up round for the file system cache, then the measured rounds, in rotating order.
  for (const subject of subjects) timeOf(subject.body, subject.env)
  for (let round = 0; round < runs; round++) {
    for (let i = 0; i < subjects.length; i++) {
      const index = (round + i) % subjects.length
      const subject = subjects[index] as Subject
      times[index]?.push(timeOf(subject.body, subject.env))
    }
  }
} finally {
  if (dir !== null) rmSync(dir, { recursive: true, force: true })
}
const medians = times.map(median)
const fastify = medians[0] as number
const bareStartup = medians[3]
console.log(`Node.js ${process.version}, ${runs} fresh processes each, medians:`)
console.log('')
console.log('| subject | median | ratio |')
console.log('| --- | --- | --- |')
subjects.forEach((subject, index) => {
  const value = medians[index] as number
  const base = subject.of === 'import' ? fastify : bareStartup as number
  console.log(`| ${subject.label} | ${value.toFixed(0)} ms | ${(value / base).toFixed(2)}x ${subject.of === 'import' ? "of `import('fastify')`" : 'of bare Fastify'} |`)
})
const ratio = (medians[2] as number) / fastify
if (values.check === true && ratio > 2) {
  console.error(`importing fastify-secure-https costs ${ratio.toFixed(2)}x importing fastify, more than 2x`)
  process.exitCode = 1
}
