/**
 * The metrics listener's timeouts hold on real sockets: a client that never finishes its headers is
 * closed within the documented bound (5 s), not when Node's default 30 s connection check comes
 * round. With at most 64 connections, 64 such sockets would otherwise keep scrapes out for 30 s.
 */
import t from 'tap'
import { startApp } from './helpers/app.ts'
import { scrape } from './helpers/metrics.ts'
import { partialRequest } from './helpers/slow-client.ts'

t.test('64 sockets that never finish their headers are closed within the headers timeout, and scrapes get through again', async (t) => {
  const s = await startApp({ httpsRedirect: false, metrics: { port: 0 } })
  t.teardown(() => s.close())
  const port = (await s.app.secureHttpsMetrics.listening())?.port as number
  // Headers timeout 5 s, checked every second: 6 s at most; 20 s leaves room for a slow machine
  // and is still well below Node's default 30 s check interval.
  const times = await Promise.all(Array.from({ length: 64 }, () => partialRequest(port, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ', 20_000)))
  const slowest = Math.max(...times)
  t.ok(slowest < 20_000, `every socket was closed, the last after ${slowest} ms`)
  t.ok(Math.min(...times) >= 4_000, 'not before the headers timeout')
  const got = await scrape(port)
  t.ok(got.types.size > 0, 'a scrape gets through once they are gone')
})
