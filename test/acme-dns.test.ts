/**
 * ACME_CHALLENGE=dns-01 against a real pebble, with a DNS provider in code that sets the TXT records
 * through pebble-challtestsrv's management API (pebble resolves names with challtestsrv's DNS): a
 * wildcard and its base name on one certificate, served by SNI for any name under it, and no HTTP
 * listener needed.
 */
import { X509Certificate } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import ts from 'typescript'
import { tempDir } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { startInstance } from './helpers/fleet.ts'
import { request } from './helpers/http.ts'
import { acmeOptions, presented, reloaded, startPebble } from './helpers/pebble.ts'

t.test('DNS-01 against pebble', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv']) === null) return
  const pebble = await startPebble()
  t.teardown(() => pebble.close())
  const calls: Array<[string, string, string]> = []
  const dns = {
    async set (name: string, value: string) {
      calls.push(['set', name, value])
      await pebble.setTxt(name, value)
    },
    async remove (name: string, value: string) {
      calls.push(['remove', name, value])
      await pebble.clearTxt(name)
    }
  }

  t.test('a wildcard and its base name on one certificate', async (t) => {
    const options = acmeOptions(pebble, tempDir(undefined, t), ['wild.test+*.wild.test'], 0, { challenge: 'dns-01', dns })
    const s = await startInstance({ ...options, allowedHosts: ['wild.test', 'shop.wild.test'], httpsRedirect: false }, 0, (app) => { app.get('/', async () => 'hello') })
    t.teardown(() => s.close())
    t.equal(s.httpPort, null, 'no HTTP listener')
    const update = await s.logs.waitFor(reloaded, 30_000)
    t.equal(update.reason, 'ACME certificate issued')
    const { root, intermediate } = await pebble.issuers()
    for (const name of ['wild.test', 'shop.wild.test', 'api.wild.test']) {
      const [leaf] = await presented(s.port, name)
      t.ok(leaf?.checkIssued(new X509Certificate(intermediate)), `${name}: issued by pebble`)
      t.match(leaf?.subjectAltName, /DNS:\*\.wild\.test/)
      t.match(leaf?.subjectAltName, /DNS:wild\.test/)
    }
    const verified = await request(`https://127.0.0.1:${s.port}/`, { ca: root, servername: 'shop.wild.test', headers: { host: 'shop.wild.test' } })
    t.equal(verified.status, 200, 'a client trusting pebble\'s root connects to a name under the wildcard, with host name checks')
    const sets = calls.filter(([what]) => what === 'set')
    t.same(sets.map(([, name]) => name), ['_acme-challenge.wild.test', '_acme-challenge.wild.test'], 'one TXT record per authorization, both at _acme-challenge of the base name')
    t.ok(sets.every(([, , value]) => /^[A-Za-z0-9_-]{43}$/.test(value)), 'each the base64url SHA-256 digest of the key authorization')
    t.same(calls.filter(([what]) => what === 'remove').map(([, name, value]) => [name, value]), sets.map(([, name, value]) => [name, value]), 'and every record is removed again')
    t.same(s.app.tls.status().certificates.map((c) => c.names), [['wild.test', '*.wild.test']])
  })

  t.test('the provider docs/acme.md shows, against an API of Cloudflare\'s shape that publishes in challtestsrv', async (t) => {
    // The example exactly as documented, pointed at a local API, its propagation wait shortened.
    const doc = readFileSync(new URL('../docs/acme.md', import.meta.url), 'utf8')
    const block = /```ts\n(import type \{ DnsProvider \}[\s\S]*?function cloudflare[\s\S]*?)```/.exec(doc)?.[1]
    if (block === undefined) throw new Error('docs/acme.md has no cloudflare example')
    const records = new Map<string, { id: string, type: string, name: string, content: string }>()
    const seen: string[] = []
    const api: Server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x')
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        seen.push(`${req.method ?? ''} ${url.pathname}${req.headers.authorization === 'Bearer token-1' ? '' : ' (no token)'}`)
        const reply = (status: number, result: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ success: status < 300, errors: [], result })) }
        if (!url.pathname.startsWith('/client/v4/zones/zone-1/dns_records')) return reply(404, null)
        const id = url.pathname.split('/')[6]
        if (req.method === 'POST') {
          const body = JSON.parse(Buffer.concat(chunks).toString()) as { type: string, name: string, content: string }
          const record = { id: String(records.size + 1), type: body.type, name: body.name, content: body.content }
          records.set(record.id, record)
          pebble.setTxt(body.name, body.content).then(() => reply(200, record), () => reply(500, null))
        } else if (req.method === 'GET') {
          reply(200, [...records.values()].filter((r) => r.type === url.searchParams.get('type') && r.name === url.searchParams.get('name') && r.content === url.searchParams.get('content')))
        } else if (req.method === 'DELETE' && id !== undefined && records.has(id)) {
          const record = records.get(id)
          records.delete(id)
          pebble.clearTxt(record?.name ?? '').then(() => reply(200, { id }), () => reply(500, null))
        } else {
          reply(404, null)
        }
      })
    })
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => api.close(() => resolve())))
    const source = block
      .replace('https://api.cloudflare.com/client/v4', `http://127.0.0.1:${(api.address() as { port: number }).port}/client/v4`)
      .replace('setTimeout(resolve, 10_000)', 'setTimeout(resolve, 0)')
    const js = ts.transpileModule(`${source}\nexport { cloudflare }\n`, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
    const file = join(tempDir(undefined, t), 'cloudflare.mjs')
    writeFileSync(file, js)
    const { cloudflare } = await import(pathToFileURL(file).href) as { cloudflare: (zone: string, token: string) => { set (name: string, value: string): Promise<void>, remove (name: string, value: string): Promise<void> } }

    const options = acmeOptions(pebble, tempDir(undefined, t), ['docs.test'], 0, { challenge: 'dns-01', dns: cloudflare('zone-1', 'token-1') })
    const s = await startInstance({ ...options, httpsRedirect: false })
    t.teardown(() => s.close())
    const update = await s.logs.waitFor(reloaded, 30_000)
    t.equal(update.reason, 'ACME certificate issued', 'the documented provider gets a certificate issued')
    await s.logs.waitFor((line) => String(line.msg).startsWith('ACME: certificate issued'))
    t.same(seen, ['POST /client/v4/zones/zone-1/dns_records', 'GET /client/v4/zones/zone-1/dns_records', 'DELETE /client/v4/zones/zone-1/dns_records/1'],
      'create, find, delete: with the token each time')
    t.equal(records.size, 0, 'nothing left behind')
  })

  t.test('a provider that fails: the order fails with its message, nothing else is touched', async (t) => {
    const failing = {
      async set () { throw new Error('the DNS API refused the token') },
      async remove () {}
    }
    const options = acmeOptions(pebble, tempDir(undefined, t), ['broken.test'], 0, { challenge: 'dns-01', dns: failing })
    const s = await startInstance({ ...options, httpsRedirect: false })
    t.teardown(() => s.close())
    const failure = await s.logs.waitFor((line) => line.securityEvent === 'acme.order-failed', 15_000)
    t.match(failure.error, /the DNS API refused the token/)
    t.equal(s.app.tls.status().selfSigned, true, 'the temporary certificate keeps serving')
  })
})
