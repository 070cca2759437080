/**
 * An ioredis client's health, shared by the session store and the certificate storage: waiting for
 * it to be ready with a deadline, and following its connection (lost, back). @internal
 */
import type { Redis, RedisOptions } from 'ioredis'

/**
 * The client options of the suite's own Redis clients: commands fail at once while Redis is away
 * instead of queueing (a request waiting on a Redis that is down holds its socket; an ACME check
 * keeps serving what it has and tries again later), each waits at most `timeout` ms, and the client
 * reconnects in the background every 0.1 s to 2 s. @internal
 */
export function failFastOptions (timeout: number): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: timeout,
    commandTimeout: timeout,
    retryStrategy: (times) => Math.min(times * 100, 2000)
  }
}

/** Resolves when `client` is ready; rejects with `timedOut()` after `timeout` ms. @internal */
export async function redisReady (client: Pick<Redis, 'status' | 'once' | 'off'>, timeout: number, timedOut: () => Error): Promise<void> {
  if (client.status === 'ready') return
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', ok)
      reject(timedOut())
    }, timeout)
    const ok = (): void => { clearTimeout(timer); resolve() }
    client.once('ready', ok)
  })
}

/** What `trackRedisHealth` reports to. @internal */
export interface RedisHealthEvents {
  /** The connection is lost (an error, or closed): once per outage. */
  down (reason: string): void
  /** The client is ready again after an outage of `downMs`. */
  up (downMs: number): void
}

/** A client followed by `trackRedisHealth`. @internal */
export interface RedisHealth {
  /** The last error code (or message) of the client: why it is down, for messages. */
  reason (): string
  /** No more events (a close in progress: the disconnection that follows is no outage). */
  mute (): void
  /** Mutes and removes the listeners from the client. */
  stop (): void
}

/**
 * Follows the connection of `client`: `down` once when it is lost (its first error, or a close
 * without one), `up` when it is ready again, with how long it was away. @internal
 */
export function trackRedisHealth (client: Pick<Redis, 'on' | 'off'>, events: RedisHealthEvents): RedisHealth {
  let downSince: number | null = null
  let lastReason = 'not connected yet'
  let muted = false
  const onError = (error: Error & { code?: string }): void => {
    lastReason = error.code ?? error.message
    if (downSince !== null || muted) return
    downSince = Date.now()
    events.down(lastReason)
  }
  const onReady = (): void => {
    if (downSince !== null && !muted) events.up(Date.now() - downSince)
    downSince = null
  }
  const onClose = (): void => {
    if (downSince === null && !muted) onError(Object.assign(new Error('connection closed'), { code: 'CONNECTION_CLOSED' }))
  }
  client.on('error', onError)
  client.on('ready', onReady)
  client.on('close', onClose)
  return {
    reason: () => lastReason,
    mute () { muted = true },
    stop () {
      muted = true
      client.off('error', onError)
      client.off('ready', onReady)
      client.off('close', onClose)
    }
  }
}
