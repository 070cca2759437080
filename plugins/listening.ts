/**
 * The `listening()` promise of a listener the suite starts beside the app (the redirect listener,
 * the metrics listener). @internal
 */
import type { AddressInfo } from 'node:net'

/** A listener's `listening()`: settled once, by `finish`, with its address, null or its error. @internal */
export interface Listening {
  promise: Promise<AddressInfo | null>
  /** The address once it listens, null when it never will (closed first, not started), or the error; later calls do nothing. */
  finish (result: AddressInfo | null | Error): void
}

/** @internal */
export function listeningPromise (): Listening {
  let settle: { resolve (address: AddressInfo | null): void, reject (error: Error): void } | null = null
  const promise = new Promise<AddressInfo | null>((resolve, reject) => { settle = { resolve, reject } })
  // Nobody has to ask: a failure is logged, and must not surface as an unhandled rejection.
  promise.catch(() => {})
  return {
    promise,
    finish (result) {
      const pending = settle as { resolve (address: AddressInfo | null): void, reject (error: Error): void } | null
      settle = null
      if (pending === null) return
      if (result instanceof Error) pending.reject(result)
      else pending.resolve(result)
    }
  }
}
