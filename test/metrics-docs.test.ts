/**
 * docs/observability.md against the code: every metric with its type, every channel, every security
 * event; and its first example runs as written (against the build, imported by the package's name).
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Registry } from 'prom-client'
import t from 'tap'
import { channelNames, metricNames, metrics, securityEvents } from '../index.ts'
import Fastify from 'fastify'
import { tempDir } from './helpers/app.ts'
import { parseExposition } from './helpers/metrics.ts'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const page = readFileSync(join(ROOT, 'docs/observability.md'), 'utf8')

t.test('every metric is documented with its type and labels, and no other', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const registry = new Registry()
  await app.register(metrics, { registry, listener: false })
  await app.ready()
  const types = parseExposition(await registry.metrics()).types
  const rows = new Map([...page.matchAll(/^\| `(secure_https_[a-z_]+)` \| ([a-z]+) \| ([^|]*) \|/gm)].map((m) => [m[1] as string, { type: m[2], labels: m[3] }]))
  t.same([...rows.keys()].sort(), Object.values(metricNames).sort(), 'the table lists exactly the metrics')
  for (const name of Object.values(metricNames)) t.equal(rows.get(name)?.type, types.get(name), `${name} is a ${types.get(name) ?? '?'}`)
})

t.test('every channel and every security event is documented', async (t) => {
  for (const [key, name] of Object.entries(channelNames)) t.match(page, new RegExp(`^\\| \`${key}\` \\| \`${name}\` \\|`, 'm'), name)
  for (const event of securityEvents) t.match(page, new RegExp(`^\\| \`${event.replace('.', '\\.')}\` \\|`, 'm'), event)
})

t.test('the first example runs as written', async (t) => {
  const built = join(ROOT, 'dist/index.js')
  if (!existsSync(built)) throw new Error(`${built} is missing: run npm run build first (npm test does)`)
  const example = /```ts\n(import Fastify[\s\S]*?)```/.exec(page)?.[1]
  t.ok(example, 'the page starts its code with a complete program')
  const dir = tempDir('secure-https-docs-', t)
  // Placed in the package so that `fastify-secure-https` resolves to this build, as in an app.
  const file = join(ROOT, `.docs-example-${process.pid}.mjs`)
  t.teardown(() => { try { rmSync(file) } catch {} })
  writeFileSync(file, `${example ?? ''}
const answer = await fetch(\`http://127.0.0.1:\${address.port}/metrics\`)
console.log(JSON.stringify({ port: address.port, status: answer.status, body: await answer.text() }))
await app.close()
`)
  const output = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [file], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', TLS_DIR: join(dir, 'tls'), PORT: '0', HTTP_PORT: '0', METRICS_PORT: '0' },
      timeout: 60_000
    }, (error, stdout, stderr) => { if (error !== null) reject(new Error(`${error.message}\n${stderr}`)); else resolve(stdout) })
  })
  const result = JSON.parse(output.trim().split('\n').filter((line) => line.startsWith('{"port"')).at(-1) ?? '{}') as { port: number, status: number, body: string }
  t.ok(result.port > 0, 'listening() gave the address')
  t.equal(result.status, 200)
  t.match(result.body, /^secure_https_certificate_not_after_seconds\{name="default",source="self-signed"\} \d+/m)
})
