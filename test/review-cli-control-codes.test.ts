/**
 * `check` prints what a hostile server sends (headers, cookie names, a Location) without letting it
 * drive the terminal: C0 and C1 control codes (0x9b is CSI, 0x9d OSC, each a one-byte ESC [ and
 * ESC ]) are written escaped in the text report, and as \u escapes in the JSON one.
 */
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Server } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { SiteReport } from '../index.ts'
import { main } from '../bin/cli.ts'
import { generateSelfSigned } from '../tls/self-signed.ts'
import { tempDir } from './helpers/app.ts'

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/

async function listen (t: Test, server: Server & { closeAllConnections?: () => void }): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections?.()
    server.close()
  })
  return (server.address() as AddressInfo).port
}

async function run (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await main(args, { out: (text) => { stdout += text }, err: (text) => { stderr += text } })
  return { code, stdout, stderr }
}

t.test('control codes from a hostile server are escaped in the text report and in the JSON one', async (t) => {
  const dir = tempDir('secure-https-control-', t)
  const pair = await generateSelfSigned(['hostile.test'])
  const caFile = join(dir, 'ca.pem')
  writeFileSync(caFile, pair.cert)
  // Header values are Latin-1: the byte 0x9b arrives as U+009B.
  const hsts = 'max-age=\u009b2J\u009b31mpwned'
  const cookie = 'c\u009d0=1; Path=/'
  const location = 'https://hostile.test/\u009b2J'
  const https = createHttpsServer({ key: pair.key, cert: pair.cert }, (_request, response) => {
    response.setHeader('strict-transport-security', hsts)
    response.setHeader('set-cookie', cookie)
    // No body: Node writes the head alone, in Latin-1 (with a string body it writes both as UTF-8).
    response.end()
  })
  const http = createHttpServer((_request, response) => {
    response.writeHead(301, { location })
    response.end()
  })
  const [port, httpPort] = [await listen(t, https), await listen(t, http)]
  const args = ['check', `https://hostile.test:${port}/`, '--connect-to', '127.0.0.1', '--http-port', String(httpPort), '--ca', caFile, '--timeout', '3000']

  const text = await run(args)
  t.equal(text.code, 1, text.stderr)
  t.notMatch(text.stdout, CONTROL, 'no control code reaches the terminal')
  t.match(text.stdout, /HSTS\s+max-age=\\x9b2J\\x9b31mpwned\n/, 'the HSTS header, escaped')
  t.match(text.stdout, /cookies\s+c\\x9d0: /, 'the cookie name, escaped')
  t.match(text.stdout, /-> 301 https:\/\/hostile\.test\/\\x9b2J\n/, 'the Location, escaped')
  t.match(text.stdout, /Strict-Transport-Security: max-age=\\x9b2J\\x9b31mpwned is invalid/, 'and in the checks\' messages')

  const json = await run([...args, '--json'])
  t.notMatch(json.stdout, CONTROL, 'the JSON has none either')
  t.match(json.stdout, /\\u009b2J\\u009b31mpwned/, 'written as \\u escapes')
  const report = JSON.parse(json.stdout) as SiteReport
  t.equal(report.hsts.header, hsts, 'which JSON reads back as sent')
  t.equal(report.redirect.location, location)
  t.equal(report.cookies[0]?.name, 'c\u009d0')
})
