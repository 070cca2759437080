/**
 * The `metrics` plugin's implementation (see plugins/metrics.ts): loaded when the plugin is
 * registered, so that an app without METRICS does not load it.
 */
import type { FastifyInstance } from 'fastify'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { subscribeDiagnostics } from '../diagnostics.ts'
import { ConfigError, ERR_METRICS_LISTEN } from '../errors.ts'
import { importOptional } from '../optional.ts'
import { parseOptions } from '../schemas/common.ts'
import { metricsExposure, metricsSchema, type MetricsOptions, type MetricsRegistry } from '../schemas/metrics.ts'
import { securityEvents } from './events.ts'
import { isTlsServer } from './instance.ts'
import { listeningPromise } from './listening.ts'
import { metricNames } from './metrics.ts'

/** Buckets of the session store histogram: a Redis on the same network answers in about a millisecond. */
const STORE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
/** Label values are capped: a bug or a flood of names must not grow the scrape without bound. */
const MAX_NAMES = 10_000
const MAX_OPERATIONS = 32
/** Any default metric: its presence means the registry has them already. */
const DEFAULT_METRIC_PROBE = 'process_cpu_user_seconds_total'

type CounterChild = Counter.Internal

/** The suite's metrics in one registry, shared by every app of the process that uses that registry. */
interface SuiteMetrics {
  users: number
  handshakes: { success: CounterChild, failure: CounterChild }
  /** Sets the certificate gauge unless a message already did (for a tls plugin registered first). */
  seedCertificate (name: string, source: string, notAfter: Date): void
  release (): void
}

const shared = new WeakMap<MetricsRegistry, SuiteMetrics>()

type PromClient = typeof import('prom-client')

function createMetrics (prom: PromClient, target: MetricsRegistry, ownRegistry: boolean, defaultMetrics: boolean, warn: (message: string) => void): SuiteMetrics {
  const registry = target as unknown as Registry
  const taken = Object.values(metricNames).filter((name) => registry.getSingleMetric(name) !== undefined)
  if (taken.length > 0) {
    // Another copy of the suite (two versions in node_modules), or the app itself, registered them.
    throw new ConfigError([{
      path: 'metrics.registry',
      message: `already holds ${taken.join(', ')}, registered outside this copy of fastify-secure-https (another copy of the package in this process, or the app); give each a registry of its own, or remove those metrics first`
    }], 'metrics')
  }
  const registers = [registry]
  if (defaultMetrics && registry.getSingleMetric(DEFAULT_METRIC_PROBE) === undefined) prom.collectDefaultMetrics({ register: registry })

  const certificateNotAfter: Gauge<string> = new prom.Gauge({
    name: metricNames.certificateNotAfter,
    help: 'When the certificate served expires, in Unix seconds, by certificate name (the SNI name, or default) and source (self-signed, files, acme)',
    labelNames: ['name', 'source'],
    registers
  })
  const reloads: Counter<string> = new prom.Counter({
    name: metricNames.certificateReloads,
    help: 'Certificate reloads after start: success (a new certificate is served) or failure (it was refused; the previous one keeps serving)',
    labelNames: ['result'],
    registers
  })
  const acmeOrders: Counter<string> = new prom.Counter({
    name: metricNames.acmeOrders,
    help: 'ACME certificate orders, by result (a failure is retried with backoff while the current certificate keeps serving)',
    labelNames: ['result'],
    registers
  })
  const acmeNextAttempt: Gauge<string> = new prom.Gauge({
    name: metricNames.acmeNextAttempt,
    help: 'When the ACME client next checks, renews or retries a certificate, in Unix seconds, by the certificate\'s first name',
    labelNames: ['name'],
    registers
  })
  const events: Counter<string> = new prom.Counter({
    name: metricNames.securityEvents,
    help: 'Security events, by name (session.tampered, proxy.untrusted-forwarded, host.unknown, ...), including those over the log\'s rate limit',
    labelNames: ['event'],
    registers
  })
  const storeErrors: Counter<string> = new prom.Counter({
    name: metricNames.sessionStoreErrors,
    help: 'Session store calls that failed (the request that needed the session got 503), by operation',
    labelNames: ['operation'],
    registers
  })
  const storeSeconds: Histogram<string> = new prom.Histogram({
    name: metricNames.sessionStoreSeconds,
    help: 'Duration of session store calls, failed ones included, by operation',
    labelNames: ['operation'],
    buckets: STORE_BUCKETS,
    registers
  })
  const redirects: Counter<string> = new prom.Counter({
    name: metricNames.redirects,
    help: 'HTTP to HTTPS redirects sent, by status',
    labelNames: ['status'],
    registers
  })
  const handshakes: Counter<string> = new prom.Counter({
    name: metricNames.tlsHandshakes,
    help: 'TLS handshakes on the app\'s server: success, or failure (no shared protocol or cipher, a client that gave up, a scanner)',
    labelNames: ['result'],
    registers
  })

  // Every known series starts at 0, so that rate() and increase() see the first event.
  const eventChildren = new Map<string, CounterChild>(securityEvents.map((event) => [event, events.labels(event)]))
  const reloadSuccess = reloads.labels('success')
  const reloadFailure = reloads.labels('failure')
  const orderSuccess = acmeOrders.labels('success')
  const orderFailure = acmeOrders.labels('failure')
  const handshakeChildren = { success: handshakes.labels('success'), failure: handshakes.labels('failure') }
  for (const child of [...eventChildren.values(), reloadSuccess, reloadFailure, orderSuccess, orderFailure, handshakeChildren.success, handshakeChildren.failure]) child.inc(0)

  const redirectChildren = new Map<number, CounterChild>()
  const storeChildren = new Map<string, { seconds: Histogram.Internal<string>, errors: CounterChild }>()
  const certificates = new Set<string>()
  const acmeNames = new Set<string>()
  let warnedNames = false

  function bounded (set: Set<string>, key: string): boolean {
    if (set.has(key)) return true
    if (set.size >= MAX_NAMES) {
      if (!warnedNames) {
        warnedNames = true
        warn(`metrics: more than ${MAX_NAMES} certificate names; the others are not exported`)
      }
      return false
    }
    set.add(key)
    return true
  }

  function setCertificate (name: string, source: string, notAfter: Date): void {
    if (bounded(certificates, `${name}\u0000${source}`)) certificateNotAfter.labels(name, source).set(notAfter.getTime() / 1000)
  }

  const unsubscribers = [
    subscribeDiagnostics('securityEvent', (message) => {
      eventChildren.get(message.event)?.inc()
    }),
    subscribeDiagnostics('certificate', (message) => {
      if (message.action === 'reload-failed') {
        reloadFailure.inc()
        return
      }
      if (message.action === 'reloaded') reloadSuccess.inc()
      if (message.notAfter !== undefined) setCertificate(message.name, message.source, message.notAfter)
    }),
    subscribeDiagnostics('acme', (message) => {
      if (message.action === 'order-succeeded') orderSuccess.inc()
      else if (message.action === 'order-failed') orderFailure.inc()
      else if (message.at !== undefined) {
        const name = message.names[0] ?? ''
        if (bounded(acmeNames, name)) acmeNextAttempt.labels(name).set(message.at.getTime() / 1000)
      }
    }),
    subscribeDiagnostics('sessionStore', (message) => {
      let children = storeChildren.get(message.operation)
      if (children === undefined) {
        const operation = storeChildren.size < MAX_OPERATIONS ? message.operation : 'other'
        children = storeChildren.get(operation) ?? { seconds: storeSeconds.labels(operation), errors: storeErrors.labels(operation) }
        storeChildren.set(operation, children)
      }
      children.seconds.observe(message.seconds)
      if (message.error !== undefined) children.errors.inc()
    }),
    subscribeDiagnostics('redirect', (message) => {
      let child = redirectChildren.get(message.status)
      if (child === undefined) {
        child = redirects.labels(String(message.status))
        redirectChildren.set(message.status, child)
      }
      child.inc()
    })
  ]

  const metrics: SuiteMetrics = {
    users: 0,
    handshakes: handshakeChildren,
    seedCertificate (name, source, notAfter) {
      if (!certificates.has(`${name}\u0000${source}`)) setCertificate(name, source, notAfter)
    },
    release () {
      if (--metrics.users > 0) return
      for (const unsubscribe of unsubscribers) unsubscribe()
      shared.delete(target)
      // The app's own registry outlives the app: take the suite's metrics out, so that a new app can add them again.
      if (!ownRegistry) for (const name of Object.values(metricNames)) registry.removeSingleMetric(name)
    }
  }
  return metrics
}

function sendText (res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff', ...headers })
  res.end(text)
}

/** The `metrics` plugin's work, loaded by its registration (plugins/metrics.ts). @internal */
export async function registerMetrics (fastify: FastifyInstance, options: MetricsOptions | undefined): Promise<void> {
  const config = parseOptions(metricsSchema, options, 'metrics')
  const prom = await importOptional('prom-client', () => import('prom-client'))
  const ownRegistry = config.registry === undefined
  const registry: MetricsRegistry = config.registry ?? new prom.Registry() as unknown as MetricsRegistry
  let metrics = shared.get(registry)
  if (metrics === undefined) {
    metrics = createMetrics(prom, registry, ownRegistry, config.defaultMetrics, (message) => fastify.log.warn(message))
    shared.set(registry, metrics)
  }
  metrics.users++
  const suite = metrics

  // Handshakes are counted by the TLS server itself, once per connection, never per request.
  const tlsServer = isTlsServer(fastify) ? fastify.server : null
  const onSecure = (): void => { suite.handshakes.success.inc() }
  const onFailure = (): void => { suite.handshakes.failure.inc() }
  if (tlsServer !== null) {
    tlsServer.on('secureConnection', onSecure)
    tlsServer.on('tlsClientError', onFailure)
  }

  let server: Server | null = null
  let closed = false
  const { promise: listening, finish } = listeningPromise()
  if (!config.listener) finish(null)

  function handle (req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? ''
    const query = url.indexOf('?')
    const path = query === -1 ? url : url.slice(0, query)
    if (path !== '/metrics') {
      sendText(res, 404, 'Not found: the metrics are at /metrics\n')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'Method not allowed: use GET\n', { allow: 'GET, HEAD' })
      return
    }
    registry.metrics().then((body) => {
      res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' })
      res.end(req.method === 'HEAD' ? undefined : body)
    }, (error: unknown) => {
      fastify.log.error({ err: error }, 'metrics: the registry could not be collected')
      sendText(res, 500, 'The metrics could not be collected; the app\'s log has the reason\n')
    })
  }

  fastify.decorate('secureHttpsMetrics', {
    registry,
    address () {
      const address = server?.address()
      return address !== null && typeof address === 'object' ? address : null
    },
    listening: () => listening
  })

  fastify.addHook('onReady', async () => {
    // A tls plugin registered before this one loaded its certificate before anyone listened.
    if (fastify.hasDecorator('tls')) {
      // Every certificate under the name its events carry (the SNI name, or default), as the plugin
      // would have heard it: no series for a name no event will ever update.
      const status = fastify.tls.status()
      for (const certificate of status.certificates) suite.seedCertificate(certificate.name, status.mode, certificate.notAfter)
    }
  })

  if (config.listener) {
    fastify.addHook('onListen', async () => {
      if (closed || server !== null) return
      // node:http is loaded when the listener starts, not when an app imports the package. A scraper
      // sends its headers at once; Node enforces these timeouts only when it checks its connections
      // (every 30 s by default), so it checks each second: 64 clients that never finish their headers
      // would otherwise keep every scrape out for half a minute.
      const listener = process.getBuiltinModule('node:http').createServer({ requestTimeout: 10_000, headersTimeout: 5_000, connectionsCheckingInterval: 1_000 }, handle)
      listener.keepAliveTimeout = 5_000
      // A scraper needs a connection or two; a local client opening thousands gets refused.
      listener.maxConnections = 64
      listener.on('connection', (socket: Socket) => socket.on('error', () => {}))
      try {
        await new Promise<void>((resolve, reject) => {
          listener.once('error', (error: NodeJS.ErrnoException) => {
            reject(new ERR_METRICS_LISTEN(`the metrics listener cannot listen on ${config.host}:${config.port} (${error.code ?? error.message}); choose another METRICS_PORT, or a METRICS_HOST that is an address of this host. The app serves without metrics`))
          })
          listener.listen({ host: config.host, port: config.port }, resolve)
        })
      } catch (error) {
        fastify.log.error({ err: error }, (error as Error).message)
        finish(error as Error)
        return
      }
      if (closed) {
        listener.close()
        return
      }
      server = listener
      const address = listener.address() as AddressInfo
      const exposure = metricsExposure(config.host)
      const where = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}/metrics`
      if (config.production && exposure !== 'loopback') {
        fastify.log.warn({ host: address.address, port: address.port, exposure },
          `metrics listening on ${where}, reachable from ${exposure === 'private' ? 'the private network of that address' : 'every network this host is on'}: ` +
          'they name the certificates and count security events and failures, which helps an attacker map the site; let only the scraper reach this port (a firewall or network policy), or set METRICS_HOST=127.0.0.1 with a scraper on this host')
      } else {
        fastify.log.info({ host: address.address, port: address.port }, `metrics listening on ${where}`)
      }
      finish(address)
    })
  }

  fastify.addHook('onClose', async () => {
    closed = true
    finish(null)
    if (tlsServer !== null) {
      tlsServer.off('secureConnection', onSecure)
      tlsServer.off('tlsClientError', onFailure)
    }
    suite.release()
    const listener = server
    server = null
    if (listener === null) return
    await new Promise<void>((resolve) => {
      listener.close(() => resolve())
      listener.closeAllConnections()
    })
  })
}
