/**
 * The redirect listener's timeouts hold on real sockets: a client that never finishes its headers is
 * closed within the documented 10 s, not when Node's default 30 s connection check comes round.
 */
import { connect } from 'node:net'
import t from 'tap'
import { startApp } from './helpers/app.ts'

/** Opens a socket that sends half a request; resolves with the ms until the server closed it, or rejects after `cap` ms. */
function partialRequest (port: number, cap: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const socket = connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: '))
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`the redirect listener kept a socket with unfinished headers open for ${cap} ms`))
    }, cap)
    socket.on('data', () => {})
    socket.once('error', () => {})
    socket.once('close', () => {
      clearTimeout(timer)
      resolve(Date.now() - started)
    })
  })
}

t.test('a socket that never finishes its headers is closed within the 10 s headers timeout', async (t) => {
  const s = await startApp()
  t.teardown(() => s.close())
  const port = s.app.httpsRedirect.address()?.port as number
  // 10 s, checked every second: 11 s at most; 22 s leaves room for a slow machine and is still
  // well below Node's default 30 s check interval.
  const took = await partialRequest(port, 22_000)
  t.ok(took >= 9_000 && took < 22_000, `closed after ${took} ms`)
})
