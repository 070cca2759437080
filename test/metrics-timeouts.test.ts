/**
 * The metrics listener's timeouts hold on real sockets: a client that never finishes its headers is
 * closed within the documented bound (5 s), not when Node's default 30 s connection check comes
 * round. With at most 64 connections, 64 such sockets would otherwise keep scrapes out for 30 s.
 */
import { connect } from 'node:net'
import t from 'tap'
import { startApp } from './helpers/app.ts'
import { scrape } from './helpers/metrics.ts'

/** Opens a socket that sends half a request; resolves with the ms until the server closed it, or rejects after `cap` ms. */
function partialRequest (port: number, cap: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const socket = connect(port, '127.0.0.1', () => socket.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: '))
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`the server kept a socket with unfinished headers open for ${cap} ms`))
    }, cap)
    socket.on('data', () => {})
    socket.once('error', () => {})
    socket.once('close', () => {
      clearTimeout(timer)
      resolve(Date.now() - started)
    })
  })
}

t.test('64 sockets that never finish their headers are closed within the headers timeout, and scrapes get through again', async (t) => {
  const s = await startApp({ httpsRedirect: false, metrics: { port: 0 } })
  t.teardown(() => s.close())
  const port = (await s.app.secureHttpsMetrics.listening())?.port as number
  // Headers timeout 5 s, checked every second: 6 s at most; 20 s leaves room for a slow machine
  // and is still well below Node's default 30 s check interval.
  const times = await Promise.all(Array.from({ length: 64 }, () => partialRequest(port, 20_000)))
  const slowest = Math.max(...times)
  t.ok(slowest < 20_000, `every socket was closed, the last after ${slowest} ms`)
  t.ok(Math.min(...times) >= 4_000, 'not before the headers timeout')
  const got = await scrape(port)
  t.ok(got.types.size > 0, 'a scrape gets through once they are gone')
})
