/**
 * Security events: logged at `warn` with a `securityEvent` field, so that log pipelines can alert on
 * them, published on the `fastify-secure-https:security-event` diagnostics channel (also those over
 * the log's rate limit), and never turned into a 500.
 */
import type { FastifyBaseLogger } from 'fastify'
import { channels } from '../diagnostics.ts'

/** Every security event the suite logs. */
export const securityEvents = [
  'session.tampered',
  'session.expired',
  'proxy.untrusted-forwarded',
  'proxy.conflicting-forwarded',
  'redirect.unknown-host',
  'host.unknown',
  'csrf.rejected',
  'tls.reload-failed',
  'tls.expiring',
  'acme.order-failed',
  'acme.on-demand-refused',
  'tls.storage-rejected'
] as const

/** The name of a security event. */
export type SecurityEventName = typeof securityEvents[number]

/**
 * Logs a security event, and publishes it on the `fastify-secure-https:security-event` diagnostics
 * channel (nothing more than a property read when no one subscribes). @internal
 */
export function securityEvent (log: FastifyBaseLogger, event: SecurityEventName, fields: Record<string, unknown>, message: string): void {
  log.warn({ securityEvent: event, ...fields }, message)
  if (channels.securityEvent.hasSubscribers) channels.securityEvent.publish({ event, fields, message, logged: true })
}

const NO_FIELDS: Readonly<Record<string, unknown>> = Object.freeze({})

/**
 * An event that its `eventLimiter` kept out of the log: still published (with `logged: false` and no
 * fields), so that metrics and subscribers count every one while an attacker's flood fills no log.
 * @internal
 */
export function unloggedSecurityEvent (event: SecurityEventName): void {
  if (channels.securityEvent.hasSubscribers) channels.securityEvent.publish({ event, fields: NO_FIELDS, message: 'not logged: over the rate limit of this event', logged: false })
}

/**
 * Lets through at most `perMinute` events a minute and counts the rest, so that an attacker cannot
 * flood the log; the count of suppressed events is reported with the next one let through.
 * @internal
 */
export function eventLimiter (perMinute: number, now: () => number = Date.now): () => number | false {
  let windowStart = 0
  let count = 0
  let suppressed = 0
  return () => {
    const t = now()
    if (t - windowStart >= 60_000) {
      windowStart = t
      count = 0
    }
    if (count >= perMinute) {
      suppressed++
      return false
    }
    count++
    const report = suppressed
    suppressed = 0
    return report
  }
}
