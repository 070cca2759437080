/**
 * The demo as a user runs it (`node dist/examples/demo/server.js`, a separate process built by
 * `npm run build`): SIGHUP reloads the certificate files, and with TLS_TICKET_KEYS its TLS sessions
 * resume on another instance, although the two processes were started with different command lines.
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { connect } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { createPki, served } from './helpers/certs.ts'
import { startApp, tempDir } from './helpers/app.ts'
import type { LogLine } from './helpers/logs.ts'

const server = fileURLToPath(new URL('../dist/examples/demo/server.js', import.meta.url))

interface Demo { child: ChildProcess, port: number, lines: LogLine[], waitFor (predicate: (line: LogLine) => boolean, timeout?: number): Promise<LogLine> }

async function startDemo (env: Record<string, string>): Promise<Demo> {
  const child = spawn(process.execPath, [server], {
    // The child runs the compiled dist/: its coverage would be merged wrongly with the sources'.
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', HTTP_PORT: 'off', LOG_LEVEL: 'info', _TAPJS_PROCESSINFO_COVERAGE_: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const lines: LogLine[] = []
  const waiters: Array<{ predicate: (line: LogLine) => boolean, resolve: (line: LogLine) => void }> = []
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
    let line: LogLine
    try {
      line = JSON.parse(text) as LogLine
    } catch {
      return
    }
    lines.push(line)
    for (const waiter of waiters.slice()) {
      if (waiter.predicate(line)) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve(line)
      }
    }
  })
  const waitFor = (predicate: (line: LogLine) => boolean, timeout = 10_000): Promise<LogLine> => {
    const found = lines.find(predicate)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`demo: no matching log line in ${timeout} ms; stderr: ${stderr}`)), timeout)
      waiters.push({ predicate, resolve: (line) => { clearTimeout(timer); resolve(line) } })
      child.once('exit', (code) => reject(new Error(`demo exited with ${String(code)}: ${stderr}`)))
    })
  }
  const listening = await waitFor((line) => /^Server listening at https:\/\/127\.0\.0\.1:\d+/.test(String(line.msg)))
  const port = Number(/:(\d+)$/.exec(String(listening.msg))?.[1])
  return { child, port, lines, waitFor }
}

function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.pid === undefined) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    process.kill(child.pid as number, 'SIGTERM')
  })
}

function session (port: number, ca: string, resume?: Buffer): Promise<{ reused: boolean, ticket: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, session: resume })
    socket.on('secureConnect', () => {
      if (resume !== undefined) {
        resolve({ reused: socket.isSessionReused(), ticket: resume })
        socket.end()
      }
    })
    socket.once('session', (ticket: Buffer) => {
      if (resume === undefined) {
        resolve({ reused: socket.isSessionReused(), ticket })
        socket.end()
      }
    })
    socket.on('data', () => {})
    socket.on('error', reject)
  })
}

t.test('demo process: SIGHUP reloads the certificate; sessions resume across processes', async (t) => {
  if (!existsSync(server)) {
    if (process.env.CI === 'true') throw new Error(`${server} is missing; npm test builds it first`)
    t.skip('needs the build: npm run build', () => {})
    return
  }
  const pki = await createPki()
  const dir = tempDir()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const first = await pki.leaf()
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  writeFileSync(certFile, first.fullchain)
  writeFileSync(keyFile, first.key)
  const ticketKey = randomBytes(48).toString('base64')
  const demo = await startDemo({ TLS_MODE: 'files', TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, TLS_DIR: dir, TLS_TICKET_KEYS: ticketKey })
  t.teardown(() => stop(demo.child))
  const ca = pki.root.cert
  t.equal((await served(demo.port, { ca })).fingerprint, first.fingerprint, 'the demo serves the files')

  // Another instance in this process: a different command line, the same ticket key.
  const other = await startApp({ tls: { mode: 'files', certFile, keyFile, ticketKeys: [ticketKey] }, httpsRedirect: false })
  t.teardown(() => other.close())
  const fromDemo = await session(demo.port, ca)
  t.equal((await session(other.port, ca, fromDemo.ticket)).reused, true, 'a session from the demo process resumes on the other instance')
  const fromOther = await session(other.port, ca)
  t.equal((await session(demo.port, ca, fromOther.ticket)).reused, true, 'and the other way round')

  // SIGHUP: the reload a user triggers by hand.
  const second = await pki.leaf()
  writeFileSync(keyFile, second.key)
  writeFileSync(certFile, second.fullchain)
  process.kill(demo.child.pid as number, 'SIGHUP')
  const checked = await demo.waitFor((line) => line.msg === 'SIGHUP: certificate checked')
  t.equal(checked.fingerprint, second.fingerprint, 'SIGHUP reports the new certificate')
  t.equal((await served(demo.port, { ca })).fingerprint, second.fingerprint, 'which is served')

  // A broken pair on SIGHUP: logged, the previous one keeps serving, the process keeps running.
  writeFileSync(keyFile, first.key)
  process.kill(demo.child.pid as number, 'SIGHUP')
  const failed = await demo.waitFor((line) => line.msg === 'SIGHUP: reload failed, still serving the previous certificate')
  t.match((failed.err as { message?: string } | undefined)?.message, /private key does not match/)
  t.ok(demo.lines.some((line) => line.securityEvent === 'tls.reload-failed'), 'with a tls.reload-failed event')
  t.equal((await served(demo.port, { ca })).fingerprint, second.fingerprint, 'the previous certificate is still served')
  t.equal(demo.child.exitCode, null, 'the process is still up')
})
