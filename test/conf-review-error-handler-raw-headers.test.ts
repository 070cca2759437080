/**
 * The production error handler drops the failed answer's body and session headers (Set-Cookie,
 * Content-Encoding, Transfer-Encoding, ETag, Content-Disposition, ...) from its answer, also when the
 * route set them on the raw response (`reply.raw.setHeader`): those went out with the JSON error,
 * which then carried a session cookie of the failed request, a gzip encoding it does not have, or
 * Transfer-Encoding beside Content-Length. Read as bytes from a real TLS socket.
 */
import t from 'tap'
import { connect } from 'node:tls'
import { startApp } from './helpers/app.ts'

function rawGet (port: number, ca: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`)
    })
    let text = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { text += chunk })
    socket.on('end', () => resolve(text))
    socket.on('error', reject)
  })
}

t.test('headers set on the raw response by a failed route do not reach the error answer', async (t) => {
  const s = await startApp({ errorHandler: true }, (app) => {
    app.get('/raw-headers', async (_request, reply) => {
      reply.raw.setHeader('set-cookie', 'sid=of-the-failed-request; Path=/')
      reply.raw.setHeader('content-encoding', 'gzip')
      reply.raw.setHeader('etag', '"v1"')
      reply.raw.setHeader('last-modified', 'Thu, 01 Jan 2026 00:00:00 GMT')
      reply.raw.setHeader('content-disposition', 'attachment; filename=report.html')
      reply.raw.setHeader('cache-control', 'public, max-age=86400')
      reply.raw.setHeader('x-trace', 'kept')
      throw new Error('db-7.internal refused')
    })
    app.get('/raw-chunked', async (_request, reply) => {
      reply.raw.setHeader('transfer-encoding', 'chunked')
      throw new Error('db-7.internal refused')
    })
  })
  t.teardown(() => s.close())

  const text = await rawGet(s.port, s.cert as string, '/raw-headers')
  const [head = '', body = ''] = text.split('\r\n\r\n')
  const lines = head.toLowerCase().split('\r\n')
  t.equal(lines[0], 'http/1.1 500 internal server error')
  for (const name of ['set-cookie', 'content-encoding', 'etag', 'last-modified', 'content-disposition']) {
    t.notOk(lines.some((line) => line.startsWith(`${name}:`)), `no ${name}`)
  }
  t.strictSame(lines.filter((line) => line.startsWith('cache-control:')), ['cache-control: no-store'], 'Cache-Control: no-store only')
  t.ok(lines.includes('x-trace: kept'), 'other headers the route set stay')
  t.equal(JSON.parse(body).message, 'Internal Server Error')
  t.notMatch(text, /db-7/)

  const chunked = await rawGet(s.port, s.cert as string, '/raw-chunked')
  const chunkedHead = (chunked.split('\r\n\r\n')[0] ?? '').toLowerCase().split('\r\n')
  t.notOk(chunkedHead.some((line) => line.startsWith('transfer-encoding:')), 'no Transfer-Encoding beside Content-Length')
  t.equal(chunkedHead.filter((line) => line.startsWith('content-length:')).length, 1)
  t.equal(JSON.parse(chunked.split('\r\n\r\n')[1] ?? '').message, 'Internal Server Error', 'the body is the JSON answer, unframed')
})
