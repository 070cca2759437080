// One ACME request has a deadline for the whole exchange and a bound on its size (1 MiB): a
// server that trickles its answer a byte at a time, each byte well inside any idle timeout, is cut
// off at the deadline, and a larger answer is refused. Real TLS server on loopback.
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { acmeAgent, send } from '../tls/acme-client.ts'
import { generateSelfSigned } from '../tls/self-signed.ts'

t.test('a CA that sends its answer a byte every 100 ms is cut off at the deadline', async (t) => {
  const pair = await generateSelfSigned(['localhost'])
  const timers = new Set<NodeJS.Timeout>()
  const server = createServer({ key: pair.key, cert: pair.cert }, (req, res) => {
    if (req.url === '/quick') {
      res.end('{"ok":true}')
      return
    }
    if (req.url === '/large') {
      // Past the 1 MiB bound (docs/acme.md): a chain is a few kilobytes.
      res.end(Buffer.alloc((1 << 20) + 1, 'a'))
      return
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    // Thirty bytes over three seconds, then the end: inside the deadline only as bytes go.
    let sent = 0
    const timer = setInterval(() => {
      if (++sent < 30) res.write(' ')
      else res.end('{}')
    }, 100)
    timers.add(timer)
    res.on('close', () => clearInterval(timer))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const agent = acmeAgent(pair.cert)
  t.teardown(() => {
    for (const timer of timers) clearInterval(timer)
    agent.destroy()
    server.closeAllConnections()
    server.close()
  })
  const { port } = server.address() as AddressInfo
  const quick = await send(`https://localhost:${port}/quick`, 'GET', {}, undefined, agent, undefined, 1000)
  t.equal(quick.body, '{"ok":true}', 'an answer inside the deadline is read whole')

  const large = await send(`https://localhost:${port}/large`, 'GET', {}, undefined, agent, undefined, 5000).then(() => null, (e: unknown) => e as NodeJS.ErrnoException)
  t.equal(large?.code, 'ERR_ACME_RESPONSE_TOO_LARGE', 'an answer over 1 MiB is refused')

  const started = Date.now()
  const error = await send(`https://localhost:${port}/trickle`, 'GET', {}, undefined, agent, undefined, 600).then(() => null, (e: unknown) => e as NodeJS.ErrnoException)
  const took = Date.now() - started
  t.equal(error?.code, 'ETIMEDOUT', 'the request fails as timed out')
  t.match(error?.message, /did not answer within 600 ms/)
  t.ok(took < 5000, `and fails near its deadline, not when the server ends its answer (${took} ms)`)
})
