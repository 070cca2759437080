/**
 * ACME metrics against a real pebble: an issuance counts a successful order and a reload, exports
 * the new certificate's expiry and when the next check is due; a refused order counts a failure, an
 * acme.order-failed security event, and when it will be retried.
 */
import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { metricNames } from '../index.ts'
import { startApp, tempDir } from './helpers/app.ts'
import { requirePrograms } from './helpers/external.ts'
import { scrapeUntil } from './helpers/metrics.ts'
import { acmeOptions, presented, startPebble } from './helpers/pebble.ts'

t.test('ACME metrics against pebble', async (t) => {
  if (requirePrograms(t, ['pebble', 'pebble-challtestsrv']) === null) return
  const pebble = await startPebble({ blocklist: ['blocked.test'] })
  t.teardown(() => pebble.close())

  t.test('an issuance: one successful order, one reload, the expiry and the next check', async (t) => {
    const options = acmeOptions(pebble, tempDir('secure-https-metrics-acme-', t), ['app.test'], pebble.httpPort)
    const s = await startApp({ ...options, metrics: { port: 0 } })
    t.teardown(() => s.close())
    const port = (await s.app.secureHttpsMetrics.listening())?.port as number
    // The next check is published once the renewal time is known, after the order and the reload
    // (the renewal information is asked of pebble in between): until then the gauge still holds the
    // first check's time, which is now.
    const issued = await scrapeUntil(port, (got) => got.value(metricNames.acmeOrders, { result: 'success' }) === 1 &&
      got.value(metricNames.certificateReloads, { result: 'success' }) === 1 &&
      (got.value(metricNames.acmeNextAttempt, { name: 'app.test' }) ?? 0) > Date.now() / 1000 + 60, 'the issuance and the next check after it', 30_000)
    t.equal(issued.value(metricNames.acmeOrders, { result: 'failure' }), 0)
    const [leaf] = await presented(s.port, 'app.test')
    t.not(leaf?.issuer, leaf?.subject, 'pebble\'s certificate is served')
    const notAfter = new Date((leaf as X509Certificate).validTo).getTime() / 1000
    t.equal(issued.value(metricNames.certificateNotAfter, { name: 'app.test', source: 'acme' }), notAfter, 'its expiry is exported, under the name it is served for')
    t.same(issued.samples.filter((sample) => sample.name === metricNames.certificateNotAfter).map((sample) => sample.labels.name), ['app.test'], 'one series: none left behind for the temporary certificate')
    const next = issued.value(metricNames.acmeNextAttempt, { name: 'app.test' }) as number
    const renewAt = Date.parse(String((await s.logs.waitFor((line) => line.msg?.startsWith('ACME: certificate issued') === true)).renewAt)) / 1000
    t.ok(next > Date.now() / 1000 && next <= renewAt + 1, `the next check is due (in ${Math.round(next - Date.now() / 1000)} s), no later than the renewal`)
  })

  t.test('a refused order: a failure, a security event, and when it is retried', async (t) => {
    const options = acmeOptions(pebble, tempDir('secure-https-metrics-acme-', t), ['blocked.test'], 0)
    const s = await startApp({ ...options, metrics: { port: 0 } })
    t.teardown(() => s.close())
    const port = (await s.app.secureHttpsMetrics.listening())?.port as number
    const failed = await scrapeUntil(port, (got) => (got.value(metricNames.acmeOrders, { result: 'failure' }) ?? 0) >= 2, 'two failed orders', 15_000)
    t.equal(failed.value(metricNames.acmeOrders, { result: 'success' }), 0)
    t.ok((failed.value(metricNames.securityEvents, { event: 'acme.order-failed' }) as number) >= 2, 'each is an acme.order-failed event')
    t.equal(failed.value(metricNames.certificateReloads, { result: 'success' }), 0, 'the temporary certificate keeps serving')
    const retry = failed.value(metricNames.acmeNextAttempt, { name: 'blocked.test' }) as number
    const attempts = failed.value(metricNames.acmeOrders, { result: 'failure' }) as number
    const logged = await s.logs.waitFor((line) => line.securityEvent === 'acme.order-failed' && line.attempt === attempts)
    const announced = Date.parse(String(logged.retryAt)) / 1000
    t.ok(Math.abs(retry - announced) < 0.5, `the next attempt is the retry the log announces for attempt ${attempts} (${retry} and ${announced})`)
  })
})
