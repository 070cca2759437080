/**
 * The suite's `node:diagnostics_channel` channels: what apps, APM agents and the metrics plugin
 * subscribe to, without parsing logs. Publishing costs one property read when no one subscribes
 * (`channel.hasSubscribers`), so the sites that publish need no other guard.
 *
 * | channel | message |
 * | --- | --- |
 * | `fastify-secure-https:security-event` | `{ event, fields, message, logged }`: every security event (see plugins/events.ts), also those over the log's rate limit (`logged: false`) |
 * | `fastify-secure-https:certificate` | `{ action: 'loaded' \| 'reloaded' \| 'reload-failed', name, source, notAfter?, fingerprint?, error? }` |
 * | `fastify-secure-https:acme` | `{ action: 'order-succeeded' \| 'order-failed' \| 'next-attempt', names, at?, error? }` |
 * | `fastify-secure-https:session-store` | `{ operation, seconds, error? }`: one message per store call |
 * | `fastify-secure-https:redirect` | `{ status }`: one message per HTTP to HTTPS redirect sent |
 *
 * The channels are process-wide: a subscriber hears every app of the process. A listener runs
 * synchronously where the event happens; keep it short. docs/observability.md documents each message.
 *
 * Knows nothing of Fastify: tls/, sessions/ and storage/ publish here too.
 */
import { channel, subscribe, unsubscribe, type Channel } from 'node:diagnostics_channel'
import { performance } from 'node:perf_hooks'

/** Channel names, stable: they are part of the public interface. */
export const channelNames = {
  securityEvent: 'fastify-secure-https:security-event',
  certificate: 'fastify-secure-https:certificate',
  acme: 'fastify-secure-https:acme',
  sessionStore: 'fastify-secure-https:session-store',
  redirect: 'fastify-secure-https:redirect'
} as const

/** A security event as published. */
export interface SecurityEventMessage {
  /** The event's name, e.g. `session.tampered`. */
  event: string
  /** The fields logged with it (never a cookie or a secret). */
  fields: Readonly<Record<string, unknown>>
  /** The log message. */
  message: string
  /**
   * False for an event over its log rate limit (an attacker's flood): it is published (and counted
   * in metrics) but was not logged, and `fields` is empty.
   */
  logged: boolean
}

/** A certificate applied, renewed or refused. */
export interface CertificateMessage {
  action: 'loaded' | 'reloaded' | 'reload-failed'
  /** The certificate's name: the SNI name it serves, or `default`. */
  name: string
  /** Where it comes from: the TLS mode (`self-signed`, `files`, `acme`). */
  source: string
  notAfter?: Date
  fingerprint?: string
  error?: string
}

/** An ACME order's outcome, or when the next attempt is due. */
export interface AcmeMessage {
  action: 'order-succeeded' | 'order-failed' | 'next-attempt'
  /** The names of the certificate ordered. */
  names: readonly string[]
  /** For `next-attempt`: when. */
  at?: Date
  error?: string
}

/** One call to the server-side session store. */
export interface SessionStoreMessage {
  operation: string
  /** How long it took. */
  seconds: number
  /** Set when the call failed. */
  error?: Error
}

/** One redirect sent. */
export interface RedirectMessage {
  status: number
}

/** The channels, typed by their message. @internal */
export const channels = {
  securityEvent: channel(channelNames.securityEvent) as Channel<SecurityEventMessage>,
  certificate: channel(channelNames.certificate) as Channel<CertificateMessage>,
  acme: channel(channelNames.acme) as Channel<AcmeMessage>,
  sessionStore: channel(channelNames.sessionStore) as Channel<SessionStoreMessage>,
  redirect: channel(channelNames.redirect) as Channel<RedirectMessage>
}

/** The message type of each channel, by its key in `channelNames`. */
export interface DiagnosticsMessages {
  securityEvent: SecurityEventMessage
  certificate: CertificateMessage
  acme: AcmeMessage
  sessionStore: SessionStoreMessage
  redirect: RedirectMessage
}

/** The key of one of the suite's channels in `channelNames`. */
export type DiagnosticsChannel = keyof DiagnosticsMessages

/**
 * Subscribes a typed listener to one of the suite's channels; returns the function that
 * unsubscribes it. The same as `diagnostics_channel.subscribe(channelNames[name], listener)`, except
 * that a listener that throws does not crash the process (Node rethrows a subscriber's error as an
 * uncaught exception, and an attacker can trigger security events at will): the error is reported
 * once as a process warning, and the listener keeps being called.
 *
 * ```ts
 * const stop = subscribeDiagnostics('securityEvent', ({ event, fields }) => { ... })
 * ```
 */
export function subscribeDiagnostics<K extends DiagnosticsChannel> (name: K, listener: (message: DiagnosticsMessages[K]) => void): () => void {
  let warned = false
  const handler = (message: unknown): void => {
    try {
      listener(message as DiagnosticsMessages[K])
    } catch (error) {
      if (warned) return
      warned = true
      process.emitWarning(`a listener of ${channelNames[name]} threw (reported once): ${(error as Error)?.stack ?? String(error)}`, 'SecureHttpsDiagnosticsWarning')
    }
  }
  subscribe(channelNames[name], handler)
  let subscribed = true
  return () => {
    if (!subscribed) return
    subscribed = false
    unsubscribe(channelNames[name], handler)
  }
}

/**
 * Runs one call to the session store and publishes its duration and outcome on the session-store
 * channel; with no subscriber it is the bare call. @internal
 */
export function timedStoreCall<T> (operation: string, call: () => Promise<T>): Promise<T> {
  if (!channels.sessionStore.hasSubscribers) return call()
  const started = performance.now()
  return call().then((result) => {
    channels.sessionStore.publish({ operation, seconds: (performance.now() - started) / 1000 })
    return result
  }, (error: unknown) => {
    channels.sessionStore.publish({ operation, seconds: (performance.now() - started) / 1000, error: error as Error })
    throw error
  })
}
