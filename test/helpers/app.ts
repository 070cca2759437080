/**
 * Starts the suite on real sockets: Fastify built with `serverOptions`, `secureHttps` registered,
 * listening on a free loopback port, the redirect listener on another.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import secureHttps, { resolveConfig, serverOptions, type SecureHttpsOptions } from '../../index.ts'
import { captureLogs, type LogCapture } from './logs.ts'

export interface StartedApp {
  app: FastifyInstance
  /** Base URL of the app: https://localhost:PORT (or http:// when TLS is not in process). */
  url: string
  port: number
  /** Base URL of the HTTP redirect listener, when there is one. */
  redirectUrl: string | null
  /** The certificate being served (PEM; for self-signed, followed by its development CA), to trust in clients; null without TLS. */
  cert: string | null
  logs: LogCapture
  /** The TLS_DIR used (a fresh temporary folder unless given). */
  dir: string
  close (): Promise<void>
}

/** A fresh temporary folder; given a test, it is removed when the test ends. */
export function tempDir (prefix = 'secure-https-test-', t?: { teardown (fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t?.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Builds and starts an app. `options` are the suite's options; defaults here: development, ports 0,
 * TLS_DIR in a fresh temporary folder. `routes` adds routes before listening.
 */
export async function startApp (
  options: SecureHttpsOptions = {},
  routes: (app: FastifyInstance) => void | Promise<void> = () => {}
): Promise<StartedApp> {
  const ownDir = options.tls === false || (typeof options.tls === 'object' && options.tls.dir !== undefined) ? null : tempDir()
  const withDefaults: SecureHttpsOptions = {
    port: 0,
    ...options,
    tls: options.tls === false ? false : { ...(ownDir === null ? {} : { dir: ownDir }), ...(options.tls ?? {}) },
    httpsRedirect: options.httpsRedirect === false ? false : { port: 0, ...(options.httpsRedirect ?? {}) }
  }
  const config = resolveConfig(withDefaults)
  const logs = captureLogs('debug')
  const app = Fastify({ logger: logs.logger, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  await app.register(secureHttps, config)
  await routes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const inProcess = config.tls !== false && ['self-signed', 'files', 'acme'].includes(config.tls.mode)
  // The redirect listener starts in an onListen hook, just after listen() resolves.
  let redirect = app.hasDecorator('httpsRedirect') ? app.httpsRedirect.address() : null
  if (config.httpsRedirect !== false && config.httpsRedirect.mode === 'listener') {
    const deadline = Date.now() + 10_000
    while (redirect === null && app.httpsRedirect.error() === null && Date.now() < deadline) {
      await new Promise((resolve) => setImmediate(resolve))
      redirect = app.httpsRedirect.address()
    }
    const failed = app.httpsRedirect.error()
    if (failed !== null) throw failed
  }
  let cert: string | null = null
  if (inProcess) {
    // The development leaf, then the development CA that issued it: clients trust the pair.
    if (config.tls.mode === 'self-signed') cert = readFileSync(join(config.tls.dir, 'self-signed', 'cert.pem'), 'utf8') + readFileSync(join(config.tls.dir, 'ca', 'cert.pem'), 'utf8')
    else if (config.tls.mode === 'files' && config.tls.certFile !== undefined) cert = readFileSync(config.tls.certFile, 'utf8')
  }
  const dir = config.tls === false ? '' : config.tls.dir
  return {
    app,
    url: `${inProcess ? 'https' : 'http'}://localhost:${port}`,
    port,
    redirectUrl: redirect === null ? null : `http://localhost:${redirect.port}`,
    cert,
    logs,
    dir,
    async close () {
      await app.close()
      if (ownDir !== null) rmSync(ownDir, { recursive: true, force: true })
    }
  }
}

/** A free TCP port on loopback (closed again before returning). */
export async function freePort (): Promise<number> {
  const { createServer } = await import('node:net')
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}
