/**
 * On-demand TLS: a certificate for a name nobody configured, obtained at its first TLS handshake
 * (SaaS custom domains), only when an `ask` check says the name is ours to serve. This module holds
 * what guards it; the ACME source does the ordering.
 *
 * Every unknown SNI name is hostile input until the check says otherwise:
 * - its syntax is checked strictly first (a DNS name of letters, digits and hyphens, two labels or
 *   more, no wildcard, no IP address, at most 253 characters), in time linear in its length;
 * - the check is asked once per name at a time, with a timeout, and a timeout or an error is a no
 *   for a handshake; but only a no the check gave (false, a 4xx) is one for a certificate already
 *   obtained: a check that is busy, slow or failing must not cost a customer their certificate;
 * - refusals are remembered for a minute, so a client repeating a refused name costs nothing;
 * - at most `maxInFlight` checks run at once, and at most `maxOrders` orders start per `per`
 *   seconds (Let's Encrypt allows 300 new orders per 3 hours per account): a burst of allowed names
 *   gets a temporary handshake failure instead of exhausting the CA's limits.
 *
 * Knows nothing of Fastify.
 */
import { isIP } from 'node:net'

/** An ask check in code: true when a certificate may be obtained for the name. */
export type AskFunction = (name: string) => boolean | Promise<boolean>

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/

/**
 * The name to obtain a certificate for, from an SNI server name: lower-cased, without a trailing
 * dot; null when it is not a DNS name a public CA could certify. Linear in the name's length.
 */
export function onDemandName (servername: string): string | null {
  if (typeof servername !== 'string' || servername.length === 0 || servername.length > 254) return null
  const name = (servername.endsWith('.') ? servername.slice(0, -1) : servername).toLowerCase()
  if (name.length === 0 || name.length > 253 || isIP(name) !== 0) return null
  const labels = name.split('.')
  if (labels.length < 2) return null
  for (const label of labels) {
    if (!LABEL.test(label)) return null
  }
  // A top-level label of digits only is never a public name (and makes 1.2.3.4-like names).
  if (/^\d+$/.test(labels[labels.length - 1] as string)) return null
  return name
}

/**
 * An ask check for a URL, as Caddy does it: `GET <url>?domain=<name>`; 200 means yes (true), a 4xx
 * no (false); anything else (another status, a redirect, a 5xx, a timeout, a connection error) is
 * no answer (null), which a handshake takes as a no. The body is not read beyond a few kilobytes.
 */
export function askUrl (url: string, timeoutMs: number): (name: string) => Promise<boolean | null> {
  const base = new URL(url)
  // Loaded when an ask check runs, not when an app imports the package.
  const send = base.protocol === 'https:' ? process.getBuiltinModule('node:https').request : process.getBuiltinModule('node:http').request
  return (name) => new Promise((resolve) => {
    const target = new URL(base.href)
    target.searchParams.set('domain', name)
    let settled = false
    const done = (answer: boolean | null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(answer)
    }
    const req = send(target, { method: 'GET', headers: { accept: '*/*', 'user-agent': 'fastify-secure-https on-demand ask' } }, (res) => {
      let read = 0
      res.on('data', (chunk: Buffer) => {
        read += chunk.length
        if (read > 16_384) res.destroy()
      })
      res.on('error', () => done(null))
      res.on('close', () => {
        const status = res.statusCode ?? 0
        done(status === 200 ? true : status >= 400 && status < 500 ? false : null)
      })
      res.resume()
    })
    const timer = setTimeout(() => { req.destroy(new Error('ask timeout')); done(null) }, timeoutMs)
    timer.unref()
    req.on('error', () => done(null))
    req.end()
  })
}

/** Counts orders in a sliding window: `take()` is true while fewer than `max` started in the last `windowMs`. */
export class OrderLimiter {
  private readonly times: number[] = []
  readonly max: number
  readonly windowMs: number
  private readonly now: () => number

  constructor (max: number, windowMs: number, now: () => number = Date.now) {
    this.max = max
    this.windowMs = windowMs
    this.now = now
  }

  /** Takes one order from the budget; false when the budget is spent. */
  take (): boolean {
    const t = this.now()
    while (this.times.length > 0 && (this.times[0] as number) <= t - this.windowMs) this.times.shift()
    if (this.times.length >= this.max) return false
    this.times.push(t)
    return true
  }

  /** When the next order may start, in ms from now (0 when one may start now). */
  nextIn (): number {
    if (this.times.length < this.max) return 0
    return Math.max(0, (this.times[0] as number) + this.windowMs - this.now())
  }
}

/** Options of `AskGate`. */
export interface AskGateOptions {
  /** The check: a function in code, or a URL (ACME_ON_DEMAND_ASK). */
  ask: AskFunction | string
  /** Milliseconds before a check counts as a no. */
  timeoutMs: number
  /** Checks running at once at most; beyond it, names are refused for now. Default 16. */
  maxInFlight?: number
  /** How long a refusal is remembered, in ms. Default 60 s. */
  refusedFor?: number
  /** Remembered refusals at most. Default 10,000. */
  maxRemembered?: number
  now?: () => number
}

/** Why the ask gate refused a name. */
export type Refusal = 'denied' | 'busy'

/**
 * What the ask gate says of a name, with a refusal told apart by its cause: `denied` when the check
 * said no, `unanswered` when it timed out or failed, `busy` when it was not asked (too many checks
 * running). Only `denied` is a reason to give up a certificate already obtained.
 */
export type AskVerdict = true | 'denied' | 'unanswered' | 'busy'

/** The ask check with its guards: one check per name at a time, refusals remembered, a cap on checks in flight. */
export class AskGate {
  private readonly check: (name: string) => Promise<boolean | null>
  private readonly inFlight = new Map<string, Promise<boolean | null>>()
  private readonly refused = new Map<string, { until: number, verdict: 'denied' | 'unanswered' }>()
  private readonly maxInFlight: number
  private readonly refusedFor: number
  private readonly maxRemembered: number
  private readonly now: () => number

  constructor (options: AskGateOptions) {
    const { ask, timeoutMs } = options
    this.check = typeof ask === 'string'
      ? askUrl(ask, timeoutMs)
      : async (name) => {
        const answer = await withTimeout(Promise.resolve().then(() => ask(name)), timeoutMs)
        return answer === null ? null : answer === true
      }
    this.maxInFlight = options.maxInFlight ?? 16
    this.refusedFor = options.refusedFor ?? 60_000
    this.maxRemembered = options.maxRemembered ?? 10_000
    this.now = options.now ?? Date.now
  }

  /** Asks about a name (already checked by `onDemandName`): true, or why not (no answer is a no). */
  async allows (name: string): Promise<true | Refusal> {
    const verdict = await this.verdict(name)
    return verdict === 'unanswered' ? 'denied' : verdict
  }

  /** Asks about a name: true, or why not, a no told apart from no answer (for renewals). */
  async verdict (name: string): Promise<AskVerdict> {
    const remembered = this.refused.get(name)
    if (remembered !== undefined) {
      if (remembered.until > this.now()) return remembered.verdict
      this.refused.delete(name)
    }
    let pending = this.inFlight.get(name)
    if (pending === undefined) {
      if (this.inFlight.size >= this.maxInFlight) return 'busy'
      pending = this.check(name).catch(() => null).finally(() => { this.inFlight.delete(name) })
      this.inFlight.set(name, pending)
    }
    const answer = await pending
    if (answer === true) return true
    const verdict = answer === false ? 'denied' : 'unanswered'
    this.remember(name, verdict)
    return verdict
  }

  private remember (name: string, verdict: 'denied' | 'unanswered'): void {
    if (this.refused.size >= this.maxRemembered) {
      // The oldest refusal goes first (Map keeps insertion order).
      const oldest = this.refused.keys().next().value
      if (oldest !== undefined) this.refused.delete(oldest)
    }
    this.refused.set(name, { until: this.now() + this.refusedFor, verdict })
  }
}

/** The promise's value, or null when it takes longer than `ms`. */
async function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
