/**
 * Instances of the suite for the certificate tests: built as a user builds them (`serverOptions`,
 * `secureHttps`), listening on a chosen or free loopback port, with their log lines kept; and a
 * haproxy that spreads plain HTTP (the CA's HTTP-01 requests) over several instances.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import secureHttps, { resolveConfig, serverOptions, type SecureHttpsOptions } from '../../index.ts'
import { freePort, tempDir } from './app.ts'
import { captureLogs, type LogCapture } from './logs.ts'
import { stopProcess, waitForPort } from './proxy-process.ts'

export interface Instance {
  app: FastifyInstance
  /** The HTTPS port. */
  port: number
  /** The redirect listener's port (HTTP-01), or null. */
  httpPort: number | null
  logs: LogCapture
  /** The TLS_DIR it runs with. */
  dir: string
  close (): Promise<void>
}

/** Builds and starts an instance; `port` 0 (default) picks a free one. */
export async function startInstance (options: SecureHttpsOptions, port = 0, routes: (app: FastifyInstance) => void = () => {}): Promise<Instance> {
  const config = resolveConfig({ port, ...options })
  const logs = captureLogs('debug')
  const app = Fastify({ logger: logs.logger, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  await app.register(secureHttps, config)
  routes(app)
  await app.listen({ host: '127.0.0.1', port })
  const address = app.server.address()
  const redirect = app.hasDecorator('httpsRedirect') ? app.httpsRedirect.address() : null
  return {
    app,
    port: typeof address === 'object' && address !== null ? address.port : 0,
    httpPort: redirect?.port ?? null,
    logs,
    dir: config.tls === false ? '' : config.tls.dir,
    close: () => app.close()
  }
}

export interface Balancer {
  /** The port haproxy listens on (plain HTTP). */
  port: number
  /** haproxy's own log of each request: which backend answered. */
  close (): Promise<void>
}

/** haproxy on `port` (or a free one) balancing plain HTTP round robin over the backends' ports. */
export async function startBalancer (backends: number[], port?: number, bin = 'haproxy'): Promise<Balancer> {
  const { spawn } = await import('node:child_process')
  const dir = tempDir('secure-https-balancer-')
  const listen = port ?? await freePort()
  const config = `global
  maxconn 256

defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  retries 2
  option redispatch 1
  retry-on conn-failure

frontend http
  bind 127.0.0.1:${listen}
  default_backend app

backend app
  balance roundrobin
${backends.map((backend, i) => `  server a${i + 1} 127.0.0.1:${backend}`).join('\n')}
`
  writeFileSync(join(dir, 'haproxy.cfg'), config)
  let output = ''
  const child = spawn(bin, ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  await waitForPort(child, listen, 'haproxy', () => output)
  return {
    port: listen,
    async close () {
      await stopProcess(child)
      const { rmSync } = await import('node:fs')
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
