/**
 * A fleet on TLS_STORAGE=redis against a real pebble, a real Redis and a real haproxy spreading the
 * CA's HTTP-01 requests over the instances: one order for the fleet, the same certificate on every
 * instance, a late instance served at once, a lock holder killed mid-order that does not leave the
 * fleet without a certificate past its lease, and a Redis outage that leaves every instance serving.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { SecureHttpsOptions } from '../index.ts'
import { freePort, tempDir } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { startBalancer, startInstance, type Instance } from './helpers/fleet.ts'
import { lineLog, type LogLine } from './helpers/logs.ts'
import { acmeOptions, presented, reloaded, startPebble, type Pebble } from './helpers/pebble.ts'
import { startRedis, type RedisServer } from './helpers/redis.ts'
import { stopProcess } from './helpers/proxy-process.ts'

const storageKey = randomBytes(32).toString('base64')
const ordering = (line: LogLine): boolean => String(line.msg).startsWith('ACME: ordering')
const orders = (s: Instance): number => s.logs.lines.filter(ordering).length

function fleetOptions (pebble: Pebble, redis: RedisServer, domains: string[], httpPort: number, acme: Record<string, unknown> = {}, dir = tempDir('secure-https-fleet-')): SecureHttpsOptions {
  const options = acmeOptions(pebble, dir, domains, httpPort, acme)
  const tls = options.tls as Record<string, unknown>
  return { ...options, tls: { ...tls, storage: 'redis', redisUrl: redis.url, storageKeys: [storageKey] } }
}

async function fingerprint (s: Instance, name: string): Promise<string | undefined> {
  return (await presented(s.port, name))[0]?.fingerprint256
}

t.test('a fleet on Redis', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv', 'redis-server', 'haproxy']) === null) return
  const pebble = await startPebble()
  t.teardown(() => pebble.close())
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const [portA, portB] = [await freePort(), await freePort()]
  // The CA validates on pebble.httpPort: haproxy there, round robin over the two instances.
  const balancer = await startBalancer([portA, portB], pebble.httpPort)
  t.teardown(() => balancer.close())
  const instances: Instance[] = []
  t.teardown(async () => { await Promise.all(instances.map((s) => s.close())) })
  const names = ['fleet.test+www.fleet.test']

  let a: Instance
  let b: Instance
  let issued = ''
  t.test('two instances with separate TLS_DIRs order once, and both serve the certificate', async (t) => {
    [a, b] = await Promise.all([
      startInstance(fleetOptions(pebble, redis, names, portA)),
      startInstance(fleetOptions(pebble, redis, names, portB))
    ])
    instances.push(a, b)
    const [updateA, updateB] = await Promise.all([a.logs.waitFor(reloaded, 30_000), b.logs.waitFor(reloaded, 30_000)])
    t.same([orders(a), orders(b)].sort(), [0, 1], 'exactly one instance ordered')
    const [orderer, other] = orders(a) === 1 ? [a, b] : [b, a]
    const reasons = [updateA, updateB].map((line) => line.reason).sort()
    t.same(reasons, ['ACME certificate issued', 'ACME certificate picked up from Redis (ordered by another instance)'])
    const waited = other.logs.lines.find((line) => String(line.msg).startsWith('ACME: another instance'))
    t.ok(waited, 'the other found the lock held and waited')
    // From the moment the orderer served it to the moment the other did.
    const delay = Number((orderer === a ? updateA : updateB).time) - Number((orderer === a ? updateB : updateA).time)
    t.ok(Math.abs(delay) < 60_000, `both served it within ${Math.abs(delay)} ms of each other (pub/sub; the promise is a minute)`)

    // pebble validates each name from several perspectives; haproxy spreads the requests.
    const answered = [a, b].map((s) => s.logs.lines.filter((line) => line.msg === 'ACME: HTTP-01 challenge answered').length)
    t.ok(answered.every((count) => count > 0), `each instance answered some of the CA's HTTP-01 requests (${answered.join(' and ')}): the one that did not order answered from Redis`)

    issued = await fingerprint(a, 'fleet.test') as string
    t.equal(await fingerprint(b, 'www.fleet.test'), issued, 'the same certificate on both, for both names')
    const { intermediate } = await pebble.issuers()
    const [leaf] = await presented(b.port, 'fleet.test')
    t.ok(leaf?.checkIssued(new (await import('node:crypto')).X509Certificate(intermediate)), 'issued by pebble')
    t.match(a.app.tls.status().storage, /^redis: 127\.0\.0\.1:\d+ \(secure-https:tls:\)$/)

    const keys = (await redis.cli('--scan', '--pattern', 'secure-https:tls:v:*')).split('\n').sort()
    t.ok(keys.some((key) => key.endsWith('/certificates/fleet.test/key.pem')), 'the certificate and its key are in Redis')
    const sealed = await redis.cli('HGET', keys.find((key) => key.endsWith('/certificates/fleet.test/key.pem')) as string, 'v')
    t.notMatch(sealed, /PRIVATE KEY/, 'the key is sealed, not in clear')
  })

  t.test('a third instance started later serves the certificate at once, and orders nothing', async (t) => {
    const c = await startInstance(fleetOptions(pebble, redis, names, 0))
    instances.push(c)
    t.equal(await fingerprint(c, 'fleet.test'), issued, 'the fleet\'s certificate from its first handshake')
    t.equal(c.app.tls.status().selfSigned, false)
    await c.logs.waitFor((line) => /^ACME: certificate for fleet\.test not due/.test(String(line.msg)), 10_000)
    t.equal(orders(c), 0, 'no order')
  })

  t.test('the lock holder killed mid-order: another instance orders once the lease runs out', async (t) => {
    const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url))
    if (!existsSync(dist)) {
      t.fail('dist/ is missing: run npm run build (npm test does)')
      return
    }
    // A real process holds the lock for kill.test and hangs in the middle of its order (its DNS
    // provider never answers), with a 3 s lease.
    const holderOptions = fleetOptions(pebble, redis, ['kill.test'], 0, { lockTtl: 3 })
    const script = `
      const { default: Fastify } = await import('fastify')
      const { default: secureHttps, resolveConfig, serverOptions } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)})
      const options = JSON.parse(process.env.HOLDER_OPTIONS)
      options.tls.acme.challenge = 'dns-01'
      options.tls.acme.dns = { set: () => new Promise(() => {}), remove: async () => {} }
      const config = resolveConfig(options)
      const app = Fastify({ logger: true, ...(await serverOptions(config)) })
      await app.register(secureHttps, config)
      await app.listen({ host: '127.0.0.1', port: 0 })
    `
    const log = lineLog(() => '')
    const holder: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: { ...process.env, HOLDER_OPTIONS: JSON.stringify({ ...holderOptions, httpsRedirect: false }) },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    holder.stdout?.on('data', (chunk: Buffer) => log.write(chunk.toString()))
    let stderr = ''
    holder.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    t.teardown(() => stopProcess(holder))
    await log.waitFor(ordering, 20_000).catch((error: Error) => { throw new Error(`${error.message}\n${stderr}`) })

    const q = await startInstance(fleetOptions(pebble, redis, ['kill.test'], 0, { lockTtl: 3 }))
    instances.push(q)
    const busy = await q.logs.waitFor((line) => String(line.msg).startsWith('ACME: another instance'), 10_000)
    t.equal((busy.holder as { owner?: string }).owner?.split('@')[0], String(holder.pid), 'the process that hangs holds the lock')
    t.equal(orders(q), 0, 'no order while it holds it')

    holder.kill('SIGKILL')
    const killedAt = Date.now()
    const update = await q.logs.waitFor(reloaded, 30_000)
    const took = Date.now() - killedAt
    t.equal(update.reason, 'ACME certificate issued')
    t.ok(took < 3000 + 10_000, `the fleet has its certificate ${took} ms after the holder died (lease 3 s)`)
    t.equal(orders(q), 1, 'one order, once the lease ran out')
    t.equal(q.app.tls.status().selfSigned, false)
    t.same(log.lines.filter((line) => line.msg === 'TLS certificate reloaded'), [], 'the killed holder never stored anything')
  })

  t.test('Redis away: every instance keeps serving, says why, and a restarted one serves its local copy', async (t) => {
    await redis.stop()
    const down = await a.logs.waitFor((line) => String(line.msg).includes('is unreachable'), 10_000)
    t.equal(down.level, 50, 'the outage is logged at error')
    t.match(down.msg, /TLS storage: Redis at 127\.0\.0\.1:\d+ is unreachable .*keep serving/)
    t.equal(await fingerprint(a, 'fleet.test'), issued, 'a keeps serving')
    t.equal(await fingerprint(b, 'fleet.test'), issued, 'b too')

    await a.close()
    instances.splice(instances.indexOf(a), 1)
    const restarted = await startInstance(fleetOptions(pebble, redis, names, 0, {}, a.dir))
    instances.push(restarted)
    t.equal(await fingerprint(restarted, 'fleet.test'), issued, 'an instance restarted while Redis is down serves the copy it kept in TLS_DIR')
    const why = await restarted.logs.waitFor((line) => String(line.msg).startsWith('ACME: cannot check fleet.test'), 10_000)
    t.equal(why.level, 40)
    t.match(why.msg, /still serving the local copy of the stored certificate/)
    t.equal(orders(restarted), 0, 'and orders nothing without the shared lock')
  })
})
