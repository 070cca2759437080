/**
 * Options of the `metrics` plugin: Prometheus metrics on a listener of their own, never on the app's
 * public port.
 */
import { BlockList, isIP } from 'node:net'
import { z } from 'zod'
import { portSchema } from './common.ts'

/** Default port of the metrics listener (the OpenTelemetry Prometheus exporter's). */
export const DEFAULT_METRICS_PORT = 9464
/** Default address of the metrics listener: loopback, reached by a scraper on the same host. */
export const DEFAULT_METRICS_HOST = '127.0.0.1'

/**
 * The part of a prom-client `Registry` the plugin uses. prom-client's `Registry`, and its default
 * `register`, fit: pass your own to have the suite's metrics in it. Written out here so that the
 * suite's types do not need prom-client installed.
 */
export interface MetricsRegistry {
  /** The exposition format's content type. */
  readonly contentType: string
  /** The registry in the exposition format. */
  metrics (): Promise<string>
  /** The metric of this name, if registered. */
  getSingleMetric (name: string): unknown
  /** Removes the metric of this name. */
  removeSingleMetric (name: string): void
  /** Registers a metric (prom-client's metrics call it when given `registers`). */
  registerMetric (metric: never): void
}

function isRegistry (value: unknown): value is MetricsRegistry {
  if (typeof value !== 'object' || value === null) return false
  const registry = value as Record<string, unknown>
  return typeof registry.metrics === 'function' && typeof registry.registerMetric === 'function' &&
    typeof registry.getSingleMetric === 'function' && typeof registry.removeSingleMetric === 'function' &&
    typeof registry.contentType === 'string'
}

/** Where an address of the metrics listener can be reached from. @internal */
export type MetricsExposure = 'loopback' | 'private' | 'all-interfaces' | 'public'

const loopback = new BlockList()
loopback.addSubnet('127.0.0.0', 8, 'ipv4')
loopback.addAddress('::1', 'ipv6')
const privateRanges = new BlockList()
for (const [address, prefix] of [['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16], ['100.64.0.0', 10], ['169.254.0.0', 16]] as const) {
  privateRanges.addSubnet(address, prefix, 'ipv4')
}
privateRanges.addSubnet('fc00::', 7, 'ipv6')
privateRanges.addSubnet('fe80::', 10, 'ipv6')

/**
 * Who can reach a listener bound to `host` (an IP address or `localhost`): this host only, a private
 * network, every interface (0.0.0.0 or ::), or the internet. @internal
 */
export function metricsExposure (host: string): MetricsExposure {
  if (host === 'localhost') return 'loopback'
  let address = host.replace(/%.*$/, '')
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address)
  if (mapped !== null) address = mapped[1] as string
  const family = isIP(address)
  if (family === 0) return 'public'
  const type = family === 4 ? 'ipv4' : 'ipv6'
  if (address === '0.0.0.0' || (family === 6 && /^[0:]+$/.test(address))) return 'all-interfaces'
  if (loopback.check(address, type)) return 'loopback'
  if (privateRanges.check(address, type)) return 'private'
  return 'public'
}

const ZONE = /%[a-z0-9_.-]{1,64}$/

/** `localhost`, an IPv4 or an IPv6 address (with a zone id, `fe80::1%eth0`). */
function isListenAddress (value: string): boolean {
  if (value === 'localhost') return true
  const bare = value.replace(ZONE, '')
  if (bare.includes('%')) return false
  // A zone id names the interface of an IPv6 link-local address, and nothing else.
  return bare === value ? isIP(value) !== 0 : isIP(bare) === 6
}

/**
 * The longest METRICS_HOST read: an IPv6 address with brackets and a zone id is about 112
 * characters. A longer value is refused on its length alone, before it is trimmed, lower-cased or
 * matched, so that a value of megabytes costs nothing to refuse and no copy of it is made.
 */
const MAX_HOST_CHARS = 256

/** An IP address or `localhost`, trimmed, lower-cased, without brackets. */
const metricsHostSchema = z
  .string({ error: 'must be an IP address such as 127.0.0.1' })
  .max(MAX_HOST_CHARS, { error: (issue) => `is ${String((issue.input as string).length)} characters long, more than an IP address can be (at most ${MAX_HOST_CHARS}); use 127.0.0.1 (the default: a scraper on this host), an address of a private interface such as 10.0.0.5, or 0.0.0.0 in a container` })
  .transform((value) => value.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1'))
  .refine(isListenAddress, {
    error: (issue) => `"${String(issue.input).slice(0, 100)}" is not an IP address; use 127.0.0.1 (the default: a scraper on this host), an address of a private interface such as 10.0.0.5, or 0.0.0.0 in a container; a host name is refused because it is resolved only when the listener starts`
  })

/** The listener's settings alone, for METRICS_PORT and METRICS_HOST set without METRICS. @internal */
export const metricsListenerFields = { port: portSchema, host: metricsHostSchema } as const

/** Options of the `metrics` plugin. */
export const metricsSchema = z.strictObject({
  /** Port of the metrics listener; 0 asks the OS for a free one. Never the app's PORT or HTTP_PORT. */
  port: portSchema.default(DEFAULT_METRICS_PORT),
  /** Address of the metrics listener: an IP address or `localhost`. */
  host: metricsHostSchema.default(DEFAULT_METRICS_HOST),
  /**
   * Serve `GET /metrics` on a listener of its own (started with the app's `listen()`, closed with
   * it). `false` when the app already serves its registry (`registry`).
   */
  listener: z.boolean({ error: 'listener must be true or false' }).default(true),
  /** A prom-client registry to put the suite's metrics in (the app's own). Default: a registry of the plugin's. */
  registry: z.custom<MetricsRegistry>(isRegistry, {
    error: 'must be a prom-client Registry (new Registry(), or prom-client\'s default register)'
  }).optional(),
  /**
   * Also register prom-client's default process metrics (CPU, memory, event loop lag, ...).
   * Default: true with the plugin's own registry, false with yours (which has them already, or not by your choice).
   */
  defaultMetrics: z.boolean({ error: 'defaultMetrics must be true or false' }).optional(),
  /** The app's own ports, which the metrics listener must not take. Filled in by the aggregate. */
  appPorts: z.array(portSchema).default([]),
  production: z.boolean().default(false)
}).superRefine((value, ctx) => {
  if (value.listener && value.port !== 0 && value.appPorts.includes(value.port)) {
    ctx.addIssue({
      code: 'custom',
      path: ['port'],
      message: `is ${value.port}, a port of the app (PORT or HTTP_PORT): metrics are never served where the public connects; choose a port of their own, e.g. the default ${DEFAULT_METRICS_PORT}`
    })
  }
  if (value.listener && value.production && metricsExposure(value.host) === 'public') {
    ctx.addIssue({
      code: 'custom',
      path: ['host'],
      message: `is ${value.host}, a public address: in production the metrics (certificate names, security event rates, store health) are not served to the internet; use 127.0.0.1 with a scraper on this host, or the address of a private interface, e.g. 10.0.0.5`
    })
  }
}).transform((value) => ({ ...value, defaultMetrics: value.defaultMetrics ?? value.registry === undefined }))

/** What a user passes to the `metrics` plugin. */
export type MetricsOptions = z.input<typeof metricsSchema>
/** The resolved `metrics` options. */
export type MetricsConfig = z.output<typeof metricsSchema>
