/**
 * The check that the instance's trustProxy matches proxyTrust.trust, remembered per peer. The
 * finding: a peer was remembered as checked after any request with a forwarding header, so a
 * client sent one with only X-Forwarded-Host (or Forwarded, or X-Forwarded-Proto: http) first, and
 * every later request of that address had its X-Forwarded-For believed by an instance that trusts
 * more than TRUST_PROXY, unchecked. Fastify's request.host (from X-Forwarded-Host) was not compared.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { proxyTrust } from '../index.ts'

const UNTRUSTED = '127.0.0.2'
const SPOOF = { 'x-forwarded-for': '203.0.113.9' }

async function build (t: Test, trustProxy: unknown): Promise<FastifyInstance> {
  const app = Fastify({ trustProxy: trustProxy as boolean }) as unknown as FastifyInstance
  t.teardown(() => app.close())
  await app.register(proxyTrust, { trust: ['127.0.0.1'] })
  app.get('/', async (request) => ({ ip: request.ip, host: request.host, protocol: request.protocol }))
  await app.ready()
  return app
}

t.test('a first request with another forwarding header does not vouch for the peer\'s X-Forwarded-For', async (t) => {
  for (const first of [{ 'x-forwarded-host': 'example.com' }, { forwarded: 'for=192.0.2.1' }, { 'x-forwarded-proto': 'http' }] as Array<Record<string, string>>) {
    const app = await build(t, true)
    await app.inject({ url: '/', remoteAddress: UNTRUSTED, headers: first })
    const spoofed = await app.inject({ url: '/', remoteAddress: UNTRUSTED, headers: SPOOF })
    t.equal(spoofed.statusCode, 500, `after ${JSON.stringify(first)}: the instance trusting more than TRUST_PROXY still fails closed`)
    t.equal(spoofed.json().code, 'ERR_SECURE_HTTPS_INSTANCE_MISMATCH')
    t.not(spoofed.json().ip, '203.0.113.9', 'request.ip is not the spoofed one')
  }
})

t.test('Fastify\'s request.host from X-Forwarded-Host is compared too', async (t) => {
  const wide = await build(t, true)
  const spoofed = await wide.inject({ url: '/', remoteAddress: UNTRUSTED, headers: { host: 'real.test', 'x-forwarded-host': 'spoofed.test' } })
  t.equal(spoofed.statusCode, 500, 'an instance that believes an untrusted peer\'s X-Forwarded-Host fails closed')
  t.match(spoofed.json().message, /request\.host is "spoofed\.test" where TRUST_PROXY gives "real\.test"/)

  const narrow = await build(t, false)
  const lost = await narrow.inject({ url: '/', remoteAddress: '127.0.0.1', headers: { host: 'proxy.internal', 'x-forwarded-host': 'a.test, public.test' } })
  t.equal(lost.statusCode, 500, 'an instance that ignores the trusted proxy\'s X-Forwarded-Host fails closed')
  t.match(lost.json().message, /request\.host is "proxy\.internal" where TRUST_PROXY gives "public\.test"/)

  const agree = await build(t, ['127.0.0.1'])
  const good = await agree.inject({ url: '/', remoteAddress: '127.0.0.1', headers: { host: 'proxy.internal', 'x-forwarded-host': 'a.test, public.test ', ...SPOOF } })
  t.equal(good.statusCode, 200, 'an instance with the same trust is served')
  t.same(good.json(), { ip: '203.0.113.9', host: 'public.test', protocol: 'http' })
  const direct = await agree.inject({ url: '/', remoteAddress: UNTRUSTED, headers: { host: 'real.test', 'x-forwarded-host': 'spoofed.test' } })
  t.equal(direct.statusCode, 200)
  t.equal(direct.json().host, 'real.test', 'an untrusted peer\'s X-Forwarded-Host is not believed')
})
