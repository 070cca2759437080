/**
 * TLS_MODE=acme: certificates from an ACME CA (Let's Encrypt) with the HTTP-01 challenge.
 *
 * `load()` answers at once: the stored certificate while it is in date, else a temporary
 * self-signed pair, so the app starts without waiting for the CA. `start()` then checks at once and
 * periodically; when no certificate is stored, when it misses a configured name, or when a third
 * of its lifetime remains, it orders one in the background and hands it to the `tls` plugin, which
 * swaps it in without a restart. A failed order is retried with a doubling delay (retryDelay up to
 * retryMaxDelay, longer when the CA says Retry-After) while the current certificate keeps serving,
 * even past its expiry: a certificate is never replaced by nothing.
 *
 * Instances sharing TLS_DIR share the certificate: a lock file lets one order while the others
 * wait and pick the result up from disk; HTTP-01 answers are published on disk too, so whichever
 * instance the CA reaches can answer.
 */
import { readFile } from 'node:fs/promises'
import { channels } from '../diagnostics.js'
import { ERR_CERTIFICATE } from '../errors.js'
import type { TlsConfig } from '../schemas/tls.js'
import { AcmeOrderError, createEcdsaKey, orderCertificate, type AcmeProblem } from './acme-client.js'
import { AcmeStore, isChallengeToken, type LockHolder, type StoredPair } from './acme-store.js'
import { inspectCertificate, splitPemCertificates, type CertificateInfo } from './inspect.js'
import { generateSelfSigned } from './self-signed.js'
import type { CertificatePair, CertificateSource, SourceEvents } from './source.js'

export { AcmeOrderError, type AcmeProblem } from './acme-client.js'

/** Longest delay Node's timers accept. */
const MAX_TIMER = 2 ** 31 - 1
/** While another instance orders, look for its result at least this often. */
const LOCK_POLL_MAX = 30_000

/** What the ACME source reports; the `tls` plugin logs these. */
export type AcmeEvent =
  | { type: 'ordering', domains: string[], reason: string }
  | { type: 'issued', domains: string[], fingerprint: string, notAfter: Date, renewAt: Date, durationMs: number }
  | { type: 'picked-up', fingerprint: string, notAfter: Date }
  | { type: 'checked', fingerprint: string, renewAt: Date, nextCheck: Date }
  | { type: 'lock-busy', holder: LockHolder, retryAt: Date }
  | {
    type: 'order-failed'
    domains: string[]
    error: string
    /** Node's code for network failures (ECONNREFUSED, ...). */
    code?: string
    /** The CA's problem document (RFC 8555 section 6.7), when it sent one. */
    problem: AcmeProblem | null
    /** Failures in a row, this one included. */
    attempt: number
    retryAt: Date
  }

/** Options of the ACME source beyond the `tls` config. */
export interface AcmeSourceOptions {
  /** Receives progress and failures; the `tls` plugin sets it with `onEvent()` otherwise. */
  onEvent?: (event: AcmeEvent) => void
}

/** The ACME certificate source: a `CertificateSource` that also answers HTTP-01 challenges. */
export interface AcmeCertificateSource extends CertificateSource {
  readonly mode: 'acme'
  /** The key authorization to serve for an HTTP-01 token, or null for an unknown token. */
  challenge (token: string): Promise<string | null>
  /** Sets the listener for progress and failures (one; the last set wins). */
  onEvent (listener: (event: AcmeEvent) => void): void
  /**
   * Checks now, and orders when a renewal is due (or always, with `force`). Resolves when the check
   * is over; a failure is reported as an `order-failed` event and retried later, not thrown.
   */
  renew (options?: { force?: boolean }): Promise<void>
  /** When the next check runs, or null when stopped. */
  nextCheck (): Date | null
}

/** True when the source is the ACME source (the `tls` plugin's source can be injected). */
export function isAcmeSource (source: CertificateSource): source is AcmeCertificateSource {
  return source.mode === 'acme' && typeof (source as Partial<AcmeCertificateSource>).challenge === 'function'
}

/** When a certificate with this validity is due for renewal. @internal */
export function renewalTime (info: Pick<CertificateInfo, 'notBefore' | 'notAfter'>, renewWhenRemaining: number): Date {
  const end = info.notAfter.getTime()
  return new Date(end - (end - info.notBefore.getTime()) * renewWhenRemaining)
}

/** The delay before retry number `failures` (1, 2, ...), in ms. @internal */
export function retryDelay (failures: number, base: number, max: number, retryAfter: number | null = null): number {
  const doubled = Math.min(base * 2 ** Math.min(failures - 1, 40), max)
  return Math.round(Math.max(doubled, retryAfter ?? 0) * 1000)
}

/** The ACME certificate source. */
export function acmeSource (config: TlsConfig, options: AcmeSourceOptions = {}): AcmeCertificateSource {
  const acme = config.acme
  const domains = [...acme.domains]
  const store = new AcmeStore(config.dir, acme.directory)
  const pending = new Map<string, string>()
  let listener = options.onEvent ?? null
  let events: SourceEvents | null = null
  let current: CertificatePair | null = null
  let temporary: CertificatePair | null = null
  let extraCa: string | undefined
  let failures = 0
  let timer: NodeJS.Timeout | undefined
  let nextCheckAt: Date | null = null
  let running: Promise<void> | null = null
  let stopped = false
  const abort = new AbortController()

  function emit (event: AcmeEvent): void {
    try {
      listener?.(event)
    } catch {
      // A failing logger must not stop renewals.
    }
  }

  async function readExtraCa (): Promise<string | undefined> {
    if (acme.caFile === undefined || extraCa !== undefined) return extraCa
    let text: string
    try {
      text = await readFile(acme.caFile, 'utf8')
    } catch (error) {
      throw new ERR_CERTIFICATE(`ACME_CA_FILE: cannot read ${acme.caFile} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); point it at the PEM certificate of the CA that signed the ACME server's HTTPS certificate`)
    }
    if (splitPemCertificates(text).length === 0) {
      throw new ERR_CERTIFICATE(`ACME_CA_FILE: ${acme.caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----); point it at the CA certificate of the ACME server`)
    }
    extraCa = text
    return extraCa
  }

  /** Why the stored pair must be replaced, or null while it is good. */
  function dueReason (stored: StoredPair | null, now: number): string | null {
    if (stored === null) return 'no certificate stored yet'
    if (!stored.inDate) return `the stored certificate is out of date (valid ${stored.pair.info.notBefore.toISOString()} to ${stored.pair.info.notAfter.toISOString()})`
    if (stored.missing.length > 0) return `the stored certificate does not cover ${stored.missing.join(', ')}`
    if (now >= renewalTime(stored.pair.info, acme.renewWhenRemaining).getTime()) {
      return `the stored certificate is due for renewal (expires ${stored.pair.info.notAfter.toISOString()})`
    }
    return null
  }

  /** Serves a stored pair written by another instance (or by this one before a restart). */
  function pickUp (stored: StoredPair | null): void {
    if (stored === null || !stored.inDate) return
    const { pair } = stored
    const newer = current === null || current === temporary ||
      (pair.info.fingerprint !== current.info.fingerprint && pair.info.notAfter.getTime() > current.info.notAfter.getTime())
    if (!newer) return
    current = pair
    events?.update(pair, 'ACME certificate picked up from TLS_DIR (ordered by another instance)')
    emit({ type: 'picked-up', fingerprint: pair.info.fingerprint, notAfter: pair.info.notAfter })
  }

  function schedule (delay: number): void {
    if (stopped) return
    if (timer !== undefined) clearTimeout(timer)
    const ms = Math.max(0, Math.min(delay, MAX_TIMER))
    nextCheckAt = new Date(Date.now() + ms)
    if (channels.acme.hasSubscribers) channels.acme.publish({ action: 'next-attempt', names: domains, at: nextCheckAt })
    timer = setTimeout(() => { run(false).catch(() => {}) }, ms)
    timer.unref()
  }

  function untilRenewal (info: CertificateInfo): number {
    const due = renewalTime(info, acme.renewWhenRemaining).getTime() - Date.now()
    return Math.min(Math.max(due, 1000), acme.checkInterval * 1000)
  }

  async function order (reason: string): Promise<void> {
    emit({ type: 'ordering', domains, reason })
    const started = Date.now()
    const issued = await orderCertificate({
      directoryUrl: acme.directory,
      accountKey: await store.accountKey(createEcdsaKey),
      email: acme.email ?? '',
      domains,
      ca: await readExtraCa(),
      signal: abort.signal,
      async publish (token, keyAuthorization) {
        pending.set(token, keyAuthorization)
        await store.putChallenge(token, keyAuthorization)
      },
      async withdraw (token) {
        pending.delete(token)
        await store.removeChallenge(token)
      }
    })
    // Stored even when stopping meanwhile: the next start serves it instead of ordering again.
    await store.writePair(issued.key, issued.cert)
    if (stopped) return
    const pair: CertificatePair = { key: issued.key, cert: issued.cert, info: inspectCertificate(issued.cert) }
    const first = current === null || current === temporary
    current = pair
    failures = 0
    if (channels.acme.hasSubscribers) channels.acme.publish({ action: 'order-succeeded', names: domains })
    events?.update(pair, first ? 'ACME certificate issued' : 'ACME certificate renewed')
    emit({
      type: 'issued',
      domains,
      fingerprint: pair.info.fingerprint,
      notAfter: pair.info.notAfter,
      renewAt: renewalTime(pair.info, acme.renewWhenRemaining),
      durationMs: Date.now() - started
    })
    schedule(untilRenewal(pair.info))
  }

  async function check (force: boolean): Promise<void> {
    try {
      const stored = await store.readPair(domains)
      pickUp(stored)
      const reason = force ? 'renewal requested' : dueReason(stored, Date.now())
      if (reason === null) {
        const { info } = (stored as StoredPair).pair
        failures = 0
        schedule(untilRenewal(info))
        emit({ type: 'checked', fingerprint: info.fingerprint, renewAt: renewalTime(info, acme.renewWhenRemaining), nextCheck: nextCheckAt as Date })
        return
      }
      const lock = await store.lock()
      if (!('release' in lock)) {
        const wait = Math.min(acme.retryDelay * 1000, LOCK_POLL_MAX)
        emit({ type: 'lock-busy', holder: lock, retryAt: new Date(Date.now() + wait) })
        schedule(wait)
        return
      }
      try {
        // The previous holder may have stored a fresh certificate a moment ago.
        const again = await store.readPair(domains)
        const stillDue = force ? reason : dueReason(again, Date.now())
        if (stillDue === null) {
          pickUp(again)
          failures = 0
          schedule(untilRenewal((again as StoredPair).pair.info))
          return
        }
        await order(stillDue)
      } finally {
        await lock.release()
      }
    } catch (error) {
      if (stopped) return
      failures++
      const failure = error instanceof AcmeOrderError ? error : null
      const delay = retryDelay(failures, acme.retryDelay, acme.retryMaxDelay, failure?.retryAfter ?? null)
      const code = failure?.code ?? (error as NodeJS.ErrnoException).code
      if (channels.acme.hasSubscribers) channels.acme.publish({ action: 'order-failed', names: domains, error: (error as Error).message })
      emit({
        type: 'order-failed',
        domains,
        error: (error as Error).message,
        ...(code === undefined ? {} : { code }),
        problem: failure?.problem ?? null,
        attempt: failures,
        retryAt: new Date(Date.now() + delay)
      })
      schedule(delay)
    }
  }

  function run (force: boolean): Promise<void> {
    if (stopped) return Promise.resolve()
    if (running === null) {
      running = check(force).finally(() => { running = null })
    }
    return running
  }

  return {
    mode: 'acme',

    async load () {
      await readExtraCa()
      const stored = await store.readPair(domains)
      if (stored !== null && stored.inDate) {
        current = stored.pair
        return stored.pair
      }
      if (current !== null && current !== temporary) return current
      if (temporary === null) {
        // Browsers will warn until the CA's certificate arrives, seconds later; better than not listening.
        const pem = await generateSelfSigned([...domains, ...config.hosts])
        temporary = { key: pem.key, cert: pem.cert, info: inspectCertificate(pem.cert) }
      }
      current = temporary
      return temporary
    },

    start (sourceEvents: SourceEvents) {
      events = sourceEvents
      schedule(0)
    },

    async stop () {
      stopped = true
      nextCheckAt = null
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      abort.abort()
      await running
    },

    async challenge (token) {
      if (!isChallengeToken(token)) return null
      return pending.get(token) ?? await store.challenge(token)
    },

    onEvent (fn) {
      listener = fn
    },

    async renew ({ force = false } = {}) {
      if (running !== null) await running
      await run(force)
    },

    nextCheck () {
      return nextCheckAt
    }
  }
}
