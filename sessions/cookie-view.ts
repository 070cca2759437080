/**
 * `request.session` in cookie mode: @fastify/secure-session's own session object, seen through a
 * thin view that adds two things through its public surface. `options(opts)` is recorded, so that
 * the suite knows whether the cookie of this response needs per-response options (then
 * @fastify/secure-session writes it) or can take the fast path; and `data()` leaves out the
 * suite's reserved `__created`, as @fastify/secure-session's leaves out its `__ts`. Everything else
 * (get, set, delete, touch, regenerate, property access, `changed`, `deleted`) is the peer's
 * object itself. Pure: no Fastify.
 */
import { CREATED_KEY } from './lifetimes.ts'

/**
 * The part of @fastify/secure-session's `Session` (a Proxy) the suite relies on; property access
 * reads and writes session values, as there.
 */
export interface PeerSession {
  get (key: string): unknown
  set (key: string, value: unknown): void
  delete (): void
  touch (): void
  regenerate (keep?: string[]): void
  data (): Record<string, unknown> | undefined
  options (opts: object): void
  changed: boolean
  deleted: boolean
  [key: string]: unknown
}

/** Per-request state behind the view. @internal */
export class CookieViewState {
  inner: PeerSession
  /**
   * The object `inner` keeps its values and `__ts` in, when the suite made `inner` from it with
   * `createSecureSession` (a cookie opened from the cache): sealed as it is. Null otherwise.
   */
  values: Record<string, unknown> | null
  /** What the route passed to `options()`, if anything. */
  cookieOptions: object | null = null
  /** A cookie came that is no session (tampered, expired): expire it unless a session is written. */
  expireOld = false
  /**
   * No cookie came and nothing has been asked of the session that could change it: `changed` is
   * false without asking the peer's proxy (its onSend and the suite's each read it on every
   * response). Cleared, for good, by any write through the view and by reading any property that
   * could change the session (`set`, `touch`, `delete`, `regenerate` and whatever else is not a
   * reading method), so that a method kept for later cannot change it unseen.
   */
  pristine = false
  private optionsFn: ((opts: object) => void) | null = null
  private dataFn: (() => Record<string, unknown> | undefined) | null = null
  private getFn: ((key: string) => unknown) | null = null

  constructor (inner: PeerSession, values: Record<string, unknown> | null = null) {
    this.inner = inner
    this.values = values
  }

  options (): (opts: object) => void {
    this.optionsFn ??= (opts: object) => { this.cookieOptions = opts }
    return this.optionsFn
  }

  /**
   * `get` reading `values` (what the peer's get() reads, `this[kObj][key]`) instead of going through
   * its proxy, which makes a proxy of the method on every access; the peer's get() without them.
   */
  get (): (key: string) => unknown {
    this.getFn ??= (key: string) => this.values !== null ? this.values[key] : this.inner.get(key)
    return this.getFn
  }

  data (): () => Record<string, unknown> | undefined {
    this.dataFn ??= () => {
      const copy = this.inner.data()
      if (copy !== undefined) delete copy[CREATED_KEY]
      return copy
    }
    return this.dataFn
  }
}

/** The properties whose reading cannot change the session (a value read by name clears `pristine` too). */
const READING = new Set<string | symbol>(['changed', 'deleted', 'get', 'data', 'options'])

const viewHandler: ProxyHandler<CookieViewState> = {
  get (state, prop) {
    if (state.pristine) {
      if (prop === 'changed' || prop === 'deleted') return false
      if (!READING.has(prop)) state.pristine = false
    }
    if (prop === 'options') return state.options()
    if (prop === 'data') return state.data()
    if (prop === 'get') return state.get()
    return state.inner[prop as string]
  },
  set (state, prop, value) {
    state.pristine = false
    state.inner[prop as string] = value
    return true
  },
  has: (state, prop) => Reflect.has(state.inner, prop),
  ownKeys: (state) => Reflect.ownKeys(state.inner),
  getOwnPropertyDescriptor: (state, prop) => Reflect.getOwnPropertyDescriptor(state.inner, prop),
  deleteProperty: (state, prop) => {
    state.pristine = false
    return Reflect.deleteProperty(state.inner, prop)
  },
  defineProperty: (state, prop, descriptor) => {
    state.pristine = false
    return Reflect.defineProperty(state.inner, prop, descriptor)
  }
}

/** The view for `request.session`. @internal */
export function cookieView (state: CookieViewState): PeerSession {
  return new Proxy(state, viewHandler) as unknown as PeerSession
}
