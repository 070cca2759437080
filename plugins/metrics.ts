/**
 * The `metrics` plugin: Prometheus metrics, with prom-client, for what a fleet alerts on:
 * certificate expiry, reloads and ACME orders, TLS handshakes, security events, the session store
 * and redirects; plus prom-client's default process metrics.
 *
 * Counters move where the events already happen: the plugin subscribes to the suite's diagnostics
 * channels (diagnostics.ts), and counts handshakes with the TLS server's own `secureConnection` and
 * `tlsClientError` events, once per connection. A request that triggers no event costs nothing more.
 *
 * `GET /metrics` is served on a listener of its own (METRICS_PORT on METRICS_HOST, loopback by
 * default), started by the app's `listen()` and closed with the app; never on the app's port.
 *
 * This module is the registration and the names; the work is in plugins/metrics-exporter.ts, loaded
 * when the plugin is registered (an app without METRICS never loads it).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { AddressInfo } from 'node:net'
import type { MetricsOptions, MetricsRegistry } from '../schemas/metrics.ts'

/** The `fastify.secureHttpsMetrics` decorator. */
export interface MetricsControl {
  /** The registry the suite's metrics are in: yours (`registry`), or the plugin's own. */
  readonly registry: MetricsRegistry
  /** Address of the metrics listener while it listens, else null. */
  address (): AddressInfo | null
  /**
   * Resolves with the listener's address once it listens (the app's `listen()` starts it), or null
   * without a listener or when the app closed first; rejects with ERR_SECURE_HTTPS_METRICS_LISTEN
   * when it could not listen.
   */
  listening (): Promise<AddressInfo | null>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Prometheus metrics, from fastify-secure-https. */
    secureHttpsMetrics: MetricsControl
  }
}

/** Names of the suite's metrics (stable: dashboards and alerts use them). */
export const metricNames = {
  certificateNotAfter: 'secure_https_certificate_not_after_seconds',
  certificateReloads: 'secure_https_certificate_reloads_total',
  acmeOrders: 'secure_https_acme_orders_total',
  acmeNextAttempt: 'secure_https_acme_next_attempt_seconds',
  securityEvents: 'secure_https_security_events_total',
  sessionStoreErrors: 'secure_https_session_store_errors_total',
  sessionStoreSeconds: 'secure_https_session_store_seconds',
  redirects: 'secure_https_redirects_total',
  tlsHandshakes: 'secure_https_tls_handshakes_total'
} as const

const metricsPlugin: FastifyPluginAsync<MetricsOptions> = async function metricsPlugin (fastify: FastifyInstance, options) {
  const { registerMetrics } = await import('./metrics-exporter.ts')
  await registerMetrics(fastify, options)
}

/**
 * Prometheus metrics on a listener of their own (needs the `prom-client` package): certificate
 * expiry, reloads, ACME orders, TLS handshakes, security events, the session store, redirects and
 * the process. Register it before `tls` to see the first certificate load (the aggregate does).
 */
export const metrics = fp(metricsPlugin, { fastify: '5.x', name: 'fastify-secure-https/metrics' })
export default metrics
