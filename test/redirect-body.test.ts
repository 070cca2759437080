/**
 * The redirect listener answers a request with a body and closes the connection: it does not read
 * the rest of a body that may never end (Node drains an unread body to keep the connection alive).
 */
import { connect } from 'node:net'
import t from 'tap'
import { startApp } from './helpers/app.ts'
import { endlessBody } from './helpers/slow-client.ts'

t.test('a request whose body never ends gets its redirect with Connection: close, and the connection is closed', async (t) => {
  const s = await startApp()
  t.teardown(() => s.close())
  const port = s.app.httpsRedirect.address()?.port as number
  const piece = Buffer.alloc(16 * 1024, 'a')
  const chunked = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')])

  for (const [label, head, chunk] of [
    ['chunked', 'POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n', () => chunked],
    ['Content-Length of 100 GB', 'PUT /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 107374182400\r\n\r\n', () => piece]
  ] as const) {
    // The connection check runs each second and the request timeout is 10 s: 5 s tells a prompt
    // close from a drain cut short by the timeout.
    const outcome = await endlessBody(port, head, chunk, 5_000)
    t.match(outcome.head, /^HTTP\/1\.1 30[78] /, `${label}: the redirect is sent`)
    t.match(outcome.head, /\r\nconnection: close\r\n/i, `${label}: with Connection: close`)
    t.ok(outcome.closedAfter < 5_000, `${label}: the connection closed after ${outcome.closedAfter} ms`)
  }
})

t.test('a request without a body keeps its connection alive', async (t) => {
  const s = await startApp()
  t.teardown(() => s.close())
  const port = s.app.httpsRedirect.address()?.port as number
  const answers = await new Promise<string>((resolve, reject) => {
    let text = ''
    const socket = connect(port, '127.0.0.1', () => socket.write('GET /a HTTP/1.1\r\nHost: localhost\r\n\r\nGET /b HTTP/1.1\r\nHost: localhost\r\n\r\n'))
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1')
      if (text.split('HTTP/1.1 307').length === 3) {
        socket.destroy()
        resolve(text)
      }
    })
    socket.once('error', reject)
    socket.once('close', () => reject(new Error(`closed after ${JSON.stringify(text)}`)))
  })
  t.match(answers, /location: https:\/\/localhost:\d+\/a\r\n[\s\S]*location: https:\/\/localhost:\d+\/b\r\n/i, 'two requests on one connection')
  t.notMatch(answers, /connection: close/i)
})
