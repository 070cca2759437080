/**
 * `check URL` cannot be held open. A site that sends its headers and then trickles its body a byte
 * at a time kept Node's idle timeouts from ever firing, and the audit waited forever: check now
 * stops at the headers, which hold everything it checks, and reports them. A site that trickles the
 * headers themselves is cut by each probe's deadline from start to end, and the whole run has one.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import t from 'tap'
import { checkSite } from '../index.ts'
import { probeBudget } from '../audit/check.ts'
import { generateSelfSigned } from '../tls/self-signed.ts'

function trickleBody (_req: unknown, res: import('node:http').ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/plain', 'strict-transport-security': 'max-age=31536000' })
  const timer = setInterval(() => res.write('.'), 100)
  res.on('close', () => clearInterval(timer))
}

/** A status line, then one more header line every 100 ms: the header block never ends. */
function trickleHeaders (socket: Socket): void {
  socket.on('error', () => {})
  socket.once('data', () => {
    socket.write('HTTP/1.1 200 OK\r\nstrict-transport-security: max-age=31536000\r\n')
    const timer = setInterval(() => socket.write('x-slow: .\r\n'), 100)
    socket.on('close', () => clearInterval(timer))
  })
}

async function listen (server: HttpServer | NetServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

t.test('a site that trickles its body: check reports its headers without waiting for the body', async (t) => {
  const pair = await generateSelfSigned(['localhost'], 1)
  const https = createHttpsServer({ key: pair.key, cert: pair.cert }, trickleBody)
  const http = createHttpServer(trickleBody)
  const [port, httpPort] = [await listen(https as unknown as HttpServer), await listen(http)]
  t.teardown(() => {
    https.closeAllConnections()
    http.closeAllConnections()
    https.close()
    http.close()
  })

  const report = await checkSite(`https://localhost:${port}/`, { ca: pair.cert, httpPort, timeout: 5000, connectTo: '127.0.0.1' })
  t.ok(report.reachable)
  t.equal(report.hsts.maxAge, 31536000, 'the HSTS header sent before the endless body is read')
  const timedOut = report.checks.filter((check) => /within 5000 ms/.test(check.message))
  t.same(timedOut.map((c) => c.id), [], 'no probe waited for the body')
})

t.test('a site that trickles its headers cannot hold check', async (t) => {
  const pair = await generateSelfSigned(['localhost'], 1)
  const https = createTlsServer({ key: pair.key, cert: pair.cert }, trickleHeaders)
  const http = createNetServer(trickleHeaders)
  const [port, httpPort] = [await listen(https as unknown as NetServer), await listen(http)]
  const sockets = new Set<Socket>()
  for (const server of [https, http]) server.on(server === https ? 'secureConnection' : 'connection', (socket: Socket) => { sockets.add(socket) })
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    https.close()
    http.close()
  })

  const start = Date.now()
  const report = await checkSite(`https://localhost:${port}/`, { ca: pair.cert, httpPort, timeout: 1500, connectTo: '127.0.0.1' })
  const elapsed = Date.now() - start
  t.ok(elapsed < 15_000, `finished in ${elapsed} ms`)
  t.ok(report.reachable)
  const timedOut = report.checks.filter((check) => /within 1500 ms/.test(check.message))
  t.ok(timedOut.length > 0, `the trickling answers are reported as timed out: ${timedOut.map((c) => c.id).join(', ')}`)

  const startRun = Date.now()
  await checkSite(`https://localhost:${port}/`, { ca: pair.cert, httpPort, timeout: 10_000, deadline: 2_000, connectTo: '127.0.0.1' })
  const run = Date.now() - startRun
  t.ok(run < 8_000, `the whole-run deadline holds even with long probe timeouts (${run} ms)`)
})

t.test('probe budgets', async (t) => {
  t.equal(probeBudget({ timeout: 5000, deadline: 10_000 }, 0), 5000)
  t.equal(probeBudget({ timeout: 5000, deadline: 10_000 }, 8000), 2000)
  t.equal(probeBudget({ timeout: 5000, deadline: 10_000 }, 11_000), 0)
  await t.rejects(checkSite('https://localhost/', { deadline: -1 }), /deadline/)
})
