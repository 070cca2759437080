/**
 * Options of the app's listener that Node leaves generous: how long a TLS handshake, a request's
 * headers, a whole request and an idle connection may take, and how many connections are served
 * at once. Fastify fixes the first three at construction, so `serverOptions` applies them; the
 * aggregate plugin applies the connection timeout and cap to the server it is registered on.
 */
import { z } from 'zod'

const milliseconds = (what: string) => z
  .number({ error: `${what} must be a number of milliseconds` })
  .int({ error: `${what} must be a whole number of milliseconds` })
  .min(1, { error: `${what} must be at least 1 ms` })

/** Options of the app's listener. */
export const listenerSchema = z.strictObject({
  /** A TLS handshake not finished in this time is cut (Node's default: 120 s). */
  handshakeTimeout: milliseconds('handshakeTimeout').default(10_000),
  /** A request whose headers have not all arrived in this time gets 408 (Node's default: 60 s). */
  headersTimeout: milliseconds('headersTimeout').default(20_000),
  /** A request (headers and body) not received in this time gets 408 (Fastify's default: none). */
  requestTimeout: milliseconds('requestTimeout').default(60_000),
  /**
   * A connection whose bytes have not moved for this long is closed (at most two sweeps later; a sweep
   * every quarter of the timeout, at most 5 s); above Fastify's 72 s keep-alive (Fastify's default:
   * none). Applied by the aggregate, by a sweep of the connections rather than Node's per-socket
   * timer, which costs every request.
   */
  connectionTimeout: milliseconds('connectionTimeout').default(90_000),
  /** Most connections served at once; more are refused at accept (Node's default: no cap). 0 for no cap. */
  maxConnections: z.number({ error: 'maxConnections must be a number' }).int({ error: 'maxConnections must be a whole number' }).min(0, { error: 'maxConnections must be 0 (no cap) or more' }).default(10_000)
}).superRefine((value, ctx) => {
  if (value.headersTimeout > value.requestTimeout) {
    ctx.addIssue({ code: 'custom', path: ['headersTimeout'], message: `must not exceed requestTimeout (${value.requestTimeout} ms): Node refuses a headers timeout longer than the request timeout` })
  }
})

/** What a user passes as the `listener` options. */
export type ListenerOptions = z.input<typeof listenerSchema>
/** The resolved `listener` options. */
export type ListenerConfig = z.output<typeof listenerSchema>
