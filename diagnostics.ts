/**
 * The suite's `node:diagnostics_channel` channels: what apps, APM agents and the metrics plugin
 * subscribe to, without parsing logs. Publishing costs one property read when no one subscribes
 * (`channel.hasSubscribers`), so the sites that publish need no other guard.
 *
 * | channel | message |
 * | --- | --- |
 * | `fastify-secure-https:security-event` | `{ event, fields, message }`: every security event (see plugins/events.ts) |
 * | `fastify-secure-https:certificate` | `{ action: 'loaded' \| 'reloaded' \| 'reload-failed', name, source, notAfter?, fingerprint?, error? }` |
 * | `fastify-secure-https:acme` | `{ action: 'order-succeeded' \| 'order-failed' \| 'next-attempt', names, at?, error? }` |
 * | `fastify-secure-https:session-store` | `{ operation, seconds, error? }`: one message per store call |
 * | `fastify-secure-https:redirect` | `{ status }`: one message per HTTP to HTTPS redirect sent |
 *
 * Knows nothing of Fastify: tls/, sessions/ and storage/ publish here too.
 */
import { channel, type Channel } from 'node:diagnostics_channel'

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
