/**
 * `check` reads Strict-Transport-Security as browsers do when a server sends it twice: only the
 * first header counts (RFC 6797 section 8.1). Node joins repeated headers with ", ", which read as
 * one header with a max-age of "63072000, max-age=..." and failed SH-LIVE-020 though browsers apply
 * the first policy.
 */
import { createServer as createHttpsServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { checkSite, type SiteReport } from '../index.ts'
import { generateSelfSigned } from '../tls/self-signed.ts'
import { freePort } from './helpers/app.ts'

async function serve (t: Test, headers: string[]): Promise<{ port: number, ca: string }> {
  const pair = await generateSelfSigned(['twice.test'])
  const server: Server = createHttpsServer({ key: pair.key, cert: pair.cert }, (_request, response) => {
    response.setHeader('strict-transport-security', headers)
    response.end('twice')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { port: (server.address() as AddressInfo).port, ca: pair.cert }
}

const check = (report: SiteReport, id: string): SiteReport['checks'][number] | undefined => report.checks.find((c) => c.id === id)

t.test('two Strict-Transport-Security headers: the first is the policy', async (t) => {
  const good = await serve(t, ['max-age=63072000; includeSubDomains; preload', 'max-age=0'])
  const report = await checkSite(`https://twice.test:${good.port}/`, { connectTo: '127.0.0.1', ca: good.ca, httpPort: await freePort(), timeout: 3000 })
  t.equal(check(report, 'SH-LIVE-020')?.status, 'pass', check(report, 'SH-LIVE-020')?.message ?? '')
  t.equal(check(report, 'SH-LIVE-021')?.status, 'pass')
  t.same([report.hsts.header, report.hsts.maxAge, report.hsts.includeSubDomains, report.hsts.preload], ['max-age=63072000; includeSubDomains; preload', 63072000, true, true])

  // A proxy that adds the header the app already sent: the same policy twice.
  const same = await serve(t, ['max-age=63072000', 'max-age=63072000'])
  const sameReport = await checkSite(`https://twice.test:${same.port}/`, { connectTo: '127.0.0.1', ca: same.ca, httpPort: await freePort(), timeout: 3000 })
  t.equal(check(sameReport, 'SH-LIVE-020')?.status, 'pass', `the same header twice: ${check(sameReport, 'SH-LIVE-020')?.message ?? ''}`)
  t.equal(sameReport.hsts.maxAge, 63072000)

  const off = await serve(t, ['max-age=0', 'max-age=63072000; includeSubDomains; preload'])
  const offReport = await checkSite(`https://twice.test:${off.port}/`, { connectTo: '127.0.0.1', ca: off.ca, httpPort: await freePort(), timeout: 3000 })
  t.equal(check(offReport, 'SH-LIVE-020')?.status, 'fail', 'a first header that turns HSTS off is what browsers apply')
  t.match(check(offReport, 'SH-LIVE-020')?.message, /Strict-Transport-Security: max-age=0 turns HSTS off/)
})
