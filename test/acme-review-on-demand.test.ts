/**
 * On-demand certificates at renewal: the ask check is asked again, and only its no drops the
 * certificate. A check that is busy (a flood of unknown SNI names fills its slots), times out or
 * fails keeps the certificate and is asked again later. Against a real HTTP ask endpoint.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import t, { type Test } from 'tap'
import { resolveConfig } from '../index.ts'
import { acmeSource, type AcmeCertificateSource, type AcmeEvent } from '../tls/acme-source.ts'
import { AcmeStore } from '../tls/acme-store.ts'
import { AskGate } from '../tls/on-demand.ts'
import { generateSelfSigned } from '../tls/self-signed.ts'
import { tempDir } from './helpers/app.ts'

const DAY = 86_400_000
const DIRECTORY = 'https://127.0.0.1:1/dir'

/** Waits for a condition, polling (the source's own timers are unref'd). */
async function until (condition: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !condition() && Date.now() < end;) await new Promise((resolve) => setTimeout(resolve, 5))
}

t.test('the ask gate tells a no from no answer', async (t) => {
  const no = new AskGate({ ask: () => false, timeoutMs: 1000 })
  t.equal(await no.verdict('a.example'), 'denied', 'false is a no')
  const slow = new AskGate({ ask: () => new Promise<boolean>(() => {}), timeoutMs: 50 })
  t.equal(await slow.verdict('a.example'), 'unanswered', 'a timeout is no answer')
  t.equal(await slow.allows('a.example'), 'denied', 'which a handshake takes as a no')
  const throwing = new AskGate({ ask: () => { throw new Error('database down') }, timeoutMs: 1000 })
  t.equal(await throwing.verdict('a.example'), 'unanswered', 'nor is an error')
})

t.test('an on-demand certificate due for renewal is dropped only when the ask check says no', async (t) => {
  // The ask endpoint: 503 for fail.*, no answer for slow.* and junk.*, 404 for gone.*, 200 otherwise.
  const held: ServerResponse[] = []
  const asked: string[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const name = new URL(req.url ?? '/', 'http://x').searchParams.get('domain') ?? ''
    asked.push(name)
    if (name.startsWith('fail.')) res.writeHead(503).end()
    else if (name.startsWith('gone.')) res.writeHead(404).end()
    else if (name.startsWith('slow.') || name.startsWith('junk')) held.push(res)
    else res.writeHead(200).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    for (const res of held) res.destroy()
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  const ask = `http://127.0.0.1:${(server.address() as { port: number }).port}/allowed`

  const dir = tempDir('review-on-demand-', t)
  const store = new AcmeStore(dir, DIRECTORY)
  const names = ['fail.shop.test', 'slow.shop.test', 'busy.shop.test', 'gone.shop.test']
  for (const name of names) {
    // Issued 25 days ago for 30: due for renewal.
    const pem = await generateSelfSigned([name], 30, Date.now() - 25 * DAY)
    await store.writeCertificate(name, { names: [name], onDemand: true }, pem.key, pem.cert)
  }
  const config = resolveConfig({
    tls: { mode: 'acme', dir, acme: { email: 'a@a.test', agreeTos: true, directory: DIRECTORY, ari: false, retryDelay: 60, onDemand: { ask, askTimeout: 1.5 } } }
  }).tls
  if (config === false) throw new Error('no tls')
  const events: AcmeEvent[] = []
  const source = acmeSource(config, { onEvent: (event) => { events.push(event) } })
  t.teardown(() => source.stop())
  await source.load()
  const served = (): string[] => (source.certificates?.() ?? []).map((entry) => entry.name).sort()
  t.same(served(), [...names].sort(), 'the stored on-demand certificates are served after a restart')
  const about = (name: string): AcmeEvent[] => events.filter((event) => 'name' in event && event.name === name)

  t.test('the ask endpoint fails (503)', async (t) => {
    await source.renew({ name: 'fail.shop.test' })
    t.match(about('fail.shop.test'), [{ type: 'on-demand-deferred', reason: 'unanswered', attempt: 1 }], 'deferred, not refused')
    t.ok(served().includes('fail.shop.test'), 'the certificate keeps serving')
    t.ok(source.onDemandNames().has('fail.shop.test'), 'and host authorization keeps the name')
    t.ok((source.nextCheck()?.getTime() ?? 0) > Date.now() + 30_000, 'asked again after the retry delay')
  })

  t.test('the ask endpoint does not answer in time', async (t) => {
    await source.renew({ name: 'slow.shop.test' })
    t.match(about('slow.shop.test'), [{ type: 'on-demand-deferred', reason: 'unanswered' }])
    t.ok(served().includes('slow.shop.test'))
  })

  t.test('the ask check is busy with a flood of unknown names', async (t) => {
    // Sixteen handshakes for names nobody knows, whose checks hang: every slot is taken.
    const flood = Array.from({ length: 16 }, (_, i) => source.onDemand?.(`junk${i}.flood.test`))
    await until(() => asked.filter((name) => name.startsWith('junk')).length === 16, 5000)
    t.equal(asked.filter((name) => name.startsWith('junk')).length, 16, 'the flood fills the ask check\'s slots')
    await source.renew({ name: 'busy.shop.test' })
    t.match(about('busy.shop.test'), [{ type: 'on-demand-deferred', reason: 'busy' }], 'the renewal is deferred')
    t.ok(served().includes('busy.shop.test'), 'the customer\'s certificate keeps serving')
    t.ok(source.onDemandNames().has('busy.shop.test'))
    t.same(await Promise.all(flood), [null, ...Array.from({ length: 15 }, () => null)], 'the flood itself gets nothing')
  })

  t.test('the ask check says no (404): the certificate is dropped', async (t) => {
    await source.renew({ name: 'gone.shop.test' })
    t.match(about('gone.shop.test'), [{ type: 'on-demand-refused', reason: 'renewal-denied' }])
    t.notOk(served().includes('gone.shop.test'), 'no longer served')
    t.notOk(source.onDemandNames().has('gone.shop.test'), 'nor allowed')
  })
})

t.test('a first order on demand that fails is retried only with the ask check\'s yes, and within the order limit', async (t) => {
  // The CA cannot be reached (connection refused): every order fails at once, and is retried.
  let allowed = true
  const asked: string[] = []
  const dir = tempDir('review-on-demand-retry-', t)
  const config = resolveConfig({
    tls: {
      mode: 'acme',
      dir,
      acme: {
        email: 'a@a.test',
        agreeTos: true,
        directory: DIRECTORY,
        ari: false,
        retryDelay: 0.05,
        retryMaxDelay: 0.05,
        onDemand: { ask: (name: string) => { asked.push(name); return allowed }, maxOrders: 3, per: 3600, wait: 0 }
      }
    }
  }).tls
  if (config === false) throw new Error('no tls')
  const tls = config
  const events: AcmeEvent[] = []
  const of = (type: AcmeEvent['type'], name: string): AcmeEvent[] => events.filter((event) => event.type === type && 'name' in event && event.name === name)
  /** A source of its own (an order limit of its own). */
  async function start (t: Test): Promise<AcmeCertificateSource> {
    const source = acmeSource(tls, { onEvent: (event) => { events.push(event) } })
    t.teardown(() => source.stop())
    await source.load()
    return source
  }

  t.test('the limit holds across retries', async (t) => {
    const source = await start(t)
    t.equal(await source.onDemand?.('retry.shop.test'), null, 'the handshake gets nothing yet')
    // Bounded: without the limit, the retries go on every 50 ms.
    await until(() => of('on-demand-refused', 'retry.shop.test').length > 0 || of('order-failed', 'retry.shop.test').length > 6, 10_000)
    t.equal(of('ordering', 'retry.shop.test').length, 3, 'three orders: the first, and two retries, as maxOrders allows')
    t.match(of('on-demand-refused', 'retry.shop.test'), [{ reason: 'rate-limit' }], 'the fourth waits for the limit')
    t.same(asked, Array.from({ length: 4 }, () => 'retry.shop.test'), 'the ask check was asked before each retry')
    t.ok((source.nextCheck()?.getTime() ?? 0) > Date.now() + 3000_000, 'the next attempt is when the limit allows one')
  })

  t.test('a name the ask check no longer allows is not retried', async (t) => {
    const source = await start(t)
    const before = events.length
    asked.length = 0
    t.equal(await source.onDemand?.('leaving.shop.test'), null)
    allowed = false
    await until(() => of('on-demand-refused', 'leaving.shop.test').length > 0 || events.length > before + 20, 10_000)
    t.match(of('on-demand-refused', 'leaving.shop.test'), [{ reason: 'denied' }], 'the retry asked, and was told no')
    t.equal(of('ordering', 'leaving.shop.test').length, 1, 'one order, no retry')
    t.same(asked, ['leaving.shop.test', 'leaving.shop.test'])
    t.notOk(source.onDemandNames().has('leaving.shop.test'), 'the name is no longer allowed')
  })
})
