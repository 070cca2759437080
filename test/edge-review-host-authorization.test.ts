/**
 * Host authorization and absolute-form request targets (RFC 9112 section 3.2.2). The finding:
 * `GET http://evil.test/path HTTP/1.1` with `Host: example.com` was served (Fastify routes the path),
 * with `request.url` naming evil.test: a server must take the host from such a target and ignore
 * Host, so the request's host was never authorized, and a link or redirect the app builds from
 * `request.url` pointed at evil.test.
 */
import fc from 'fast-check'
import Fastify from 'fastify'
import { IncomingMessage, ServerResponse } from 'node:http'
import { connect } from 'node:net'
import t from 'tap'
import { hostAuthorization } from '../index.ts'
import { absoluteFormAuthority, hasSeveralHosts } from '../plugins/host-authorization.ts'
import { growth } from './helpers/linear.ts'

/** Sends one raw HTTP/1.1 request line with the given Host and returns the status and body. */
function raw (port: number, target: string, host: string): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
    })
    let data = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { data += chunk })
    socket.on('error', reject)
    socket.on('end', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n')
      resolve({ status: Number(head.split(' ')[1]), body })
    })
  })
}

t.test('over a real socket: an absolute-form target must name the Host\'s host', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(hostAuthorization, { allowedHosts: ['example.com', '*.example.org'], production: true })
  app.get('/*', async (request) => ({ url: request.url, link: new URL(request.url, `http://${request.host}`).host }))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port

  const served = await raw(port, '/path', 'example.com')
  t.equal(served.status, 200, 'origin-form, allowed Host: served (and kept in the one-entry cache of the last allowed host)')
  t.equal(JSON.parse(served.body).link, 'example.com')

  for (const target of ['http://evil.test/path', 'HTTP://evil.test/path?q=1', 'https://evil.test', 'http://evil.test:80/', 'http://example.com@evil.test/']) {
    const refused = await raw(port, target, 'example.com')
    t.equal(refused.status, 400, `${target} with Host: example.com (the cached host) is refused`)
    t.equal(refused.body, 'Bad Request: invalid host\n', 'as a malformed host, without echoing it')
  }
  // The same host in the target and in Host: nothing disagrees.
  t.equal((await raw(port, 'http://example.com/path', 'example.com')).status, 200, 'the same host in both')
  t.equal((await raw(port, 'http://EXAMPLE.com./path', 'example.com')).status, 200, 'in another spelling')
  t.equal((await raw(port, 'http://a.example.org/path', 'a.example.org')).status, 200, 'a wildcard\'s subdomain in both')
  t.equal((await raw(port, 'http://evil.test/path', 'evil.test')).status, 400, 'an unknown host in both is unknown')
  // The exempt paths stay exempt only in origin-form: an absolute-form target names a host.
  t.equal((await raw(port, 'http://evil.test/healthz', 'example.com')).status, 400)
})

/** Sends raw header lines and returns the status. */
function rawLines (port: number, lines: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET / HTTP/1.1\r\n${lines.join('\r\n')}\r\nConnection: close\r\n\r\n`))
    let data = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { data += chunk })
    socket.on('error', reject)
    socket.on('end', () => resolve(Number(data.split(' ')[1])))
  })
}

t.test('over a real socket: more than one Host line is refused (RFC 9112 section 3.2), the first allowed or not', async (t) => {
  // Node keeps the first Host line and drops the others; a proxy or cache in front may read the last.
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(hostAuthorization, { allowedHosts: ['example.com'], production: true })
  app.get('/', async () => 'ok')
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  t.equal(await rawLines(port, ['Host: example.com']), 200, 'one Host line: served (and cached as the last allowed host)')
  t.equal(await rawLines(port, ['Host: example.com', 'Host: evil.test']), 400, 'a second Host line naming another host')
  t.equal(await rawLines(port, ['Host: example.com', 'X-Other: 1', 'host: example.com']), 400, 'a second one in another case, even naming the same host')
  t.equal(await rawLines(port, ['Host: example.com', 'Host:']), 400, 'an empty second one')
  t.equal(await rawLines(port, ['Host: example.com', 'X-Host: evil.test', 'Hosts: evil.test']), 200, 'other headers whose names contain Host are not Host')
})

t.test('request targets, fuzzed: served when origin-form, or absolute-form naming the Host\'s host (fast-check)', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(hostAuthorization, { allowedHosts: ['example.com'], exempt: [], production: true })
  app.setNotFoundHandler(async () => 'ok')
  await app.ready()
  // Through fastify.routing() with a request built by hand: inject() and Node's own client rewrite
  // an absolute URL into a path, and Node's parser refuses some of these targets outright.
  const status = (url: string): Promise<number> => new Promise((resolve) => {
    const req = new IncomingMessage(null as never)
    req.method = 'GET'
    req.url = url
    req.headers = { host: 'example.com' }
    req.rawHeaders = ['Host', 'example.com']
    const res = new ServerResponse(req)
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse
    res.end = ((...args: unknown[]) => {
      resolve(res.statusCode)
      return end(...args)
    }) as typeof res.end
    app.routing(req, res)
  })
  // No '%' nor '#' in the pieces: Fastify answers 400 to a bad escape or a fragment itself.
  const unit = fc.constantFrom('a', 'e', 'x', '.', '-', '/', '?', '@', ':', '[', ']', '1', '8', 'E')
  const piece = fc.string({ unit, maxLength: 12 })
  const target = fc.oneof(
    piece.map((p) => `/${p}`),
    fc.tuple(fc.constantFrom('http://', 'https://', 'HTTP://', 'ws://', 'x+y.z://'), fc.constantFrom('example.com', 'EXAMPLE.com.', 'example.com:8080', 'example.com:99999', 'evil.test', 'example.com.evil.test', 'a@example.com', 'example.com%2e', '', '[::1]'), piece)
      .map(([scheme, authority, rest]) => `${scheme}${authority}${rest}`)
  )
  const sameHost = /^[a-z][a-z0-9+.-]*:\/\/example\.com\.?(:(\d{1,5}))?(?:[/?#\\].*)?$/is
  await fc.assert(fc.asyncProperty(target, async (url) => {
    const match = sameHost.exec(url)
    const served = url.startsWith('/') || (match !== null && Number(match[2] ?? 0) <= 65535)
    return await status(url) === (served ? 200 : 400)
  }), { numRuns: 2000 })
  t.pass('2000 targets')
})

t.test('the target and Host-line checks: linear in the length', async (t) => {
  t.equal(absoluteFormAuthority('/path'), null)
  t.equal(absoluteFormAuthority('*'), null)
  t.equal(absoluteFormAuthority('HTTP://Example.com:80?q'), 'Example.com:80')
  t.equal(absoluteFormAuthority('http://a@b/c'), 'a@b')
  t.equal(hasSeveralHosts(undefined), false, 'a request built by hand without rawHeaders')
  for (const [label, shape] of [
    ['a scheme that never ends', (n: number) => 'a'.repeat(n)],
    ['an authority that never ends', (n: number) => `http://${'a'.repeat(n)}`],
    ['colons', (n: number) => `a${':'.repeat(n)}`]
  ] as const) {
    const grown = growth(shape, absoluteFormAuthority, [1000, 2000, 4000, 8000])
    t.ok(grown.exponent < 1.5, `${label}: time grows as ${grown.text}`)
  }
  const grown = growth((n) => Array.from({ length: n }, (_, i) => i % 2 === 0 ? 'Hos' : 'x'), hasSeveralHosts, [250, 500, 1000, 2000])
  t.ok(grown.exponent < 1.5, `header lines: time grows as ${grown.text}`)
})
