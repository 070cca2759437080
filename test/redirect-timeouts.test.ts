/**
 * The redirect listener's timeouts hold on real sockets: a client that never finishes its headers is
 * closed within the documented 10 s, not when Node's default 30 s connection check comes round.
 */
import t from 'tap'
import { startApp } from './helpers/app.ts'
import { partialRequest } from './helpers/slow-client.ts'

t.test('a socket that never finishes its headers is closed within the 10 s headers timeout', async (t) => {
  const s = await startApp()
  t.teardown(() => s.close())
  const port = s.app.httpsRedirect.address()?.port as number
  // 10 s, checked every second: 11 s at most; 22 s leaves room for a slow machine and is still
  // well below Node's default 30 s check interval.
  const took = await partialRequest(port, 'GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ', 22_000)
  t.ok(took >= 9_000 && took < 22_000, `closed after ${took} ms`)
})
