/**
 * TLS_MODE=acme: certificates from an ACME CA (Let's Encrypt), one per name of ACME_DOMAINS (or per
 * group of names that share one), served by SNI, and on demand for names an `ask` check allows.
 *
 * `load()` answers at once: the stored certificates while they are in date, a temporary self-signed
 * pair for the names that have none yet, so the app starts without waiting for the CA. `start()` then
 * checks every certificate at once and periodically, each on its own: one failing name never blocks
 * the others. A certificate is ordered when it is missing, misses a configured name, or is due:
 * inside the CA's renewal window (ARI, RFC 9773) when the directory offers one, else when a third of
 * its lifetime remains, a little earlier by a random jitter. A failed order is retried with a
 * doubling delay (retryDelay up to retryMaxDelay, longer when the CA says Retry-After) while the
 * current certificate keeps serving, even past its expiry: a certificate is never replaced by
 * nothing.
 *
 * State lives in a `Storage` (TLS_DIR, or Redis for a fleet): the account, the certificates, a lock
 * per certificate (a lease), and the pending challenge answers, so that whichever instance the CA
 * reaches answers. Instances pick up what another stored at once (Redis pub/sub) or at their next
 * look (`syncInterval`), and never order what another holds the lock for; a holder that dies or
 * pauses loses its lease after `lockTtl`, and its late write is refused.
 */
import { readFile } from 'node:fs/promises'
import type { Agent } from 'node:https'
import { channels } from '../diagnostics.ts'
import { ERR_CERTIFICATE } from '../errors.ts'
import type { TlsConfig } from '../schemas/tls.ts'
import { fileStorage } from '../storage/file.ts'
import { redisStorage } from '../storage/redis.ts'
import { isLease, isStorage, type Lease, type LockHolder, type Storage, type StorageEvent } from '../storage/storage.ts'
import { AcmeOrderError, acmeAgent, createEcdsaKey, fetchRenewalInfo, orderCertificate, renewalInfoUrl, type AcmeProblem, type PublishedChallenge } from './acme-client.ts'
import { ariCertId, renewalTime, timeInWindow, type RenewalWindow } from './acme-renewal.ts'
import { AcmeStore, isChallengeToken, type StoredPair } from './acme-store.ts'
import { inspectCertificate, splitPemCertificates, type CertificateInfo } from './inspect.ts'
import { AskGate, onDemandName, OrderLimiter, type Refusal } from './on-demand.ts'
import { generateSelfSigned } from './self-signed.ts'
import type { CertificatePair, CertificateSource, NamedCertificate, SourceEvents } from './source.ts'

export { AcmeOrderError, type AcmeProblem } from './acme-client.ts'
export { renewalTime } from './acme-renewal.ts'

/** Longest delay Node's timers accept. */
const MAX_TIMER = 2 ** 31 - 1
/** While another instance orders, look for its result at least this often. */
const LOCK_POLL_MAX = 30_000
/** While the storage cannot be reached, look again this often. */
const STORAGE_RETRY = 10_000
/** How long the directory's ARI endpoint (or its absence) is remembered. */
const DIRECTORY_TTL = 24 * 3600_000

/** What the ACME source reports; the `tls` plugin logs these. */
export type AcmeEvent =
  | { type: 'ordering', name: string, domains: string[], reason: string }
  | { type: 'issued', name: string, domains: string[], fingerprint: string, notAfter: Date, renewAt: Date, durationMs: number }
  | { type: 'picked-up', name: string, fingerprint: string, notAfter: Date, from: string }
  | { type: 'checked', name: string, fingerprint: string, renewAt: Date, nextCheck: Date, ari: boolean }
  | { type: 'lock-busy', name: string, holder: LockHolder, retryAt: Date }
  | { type: 'lock-lost', name: string, error: string }
  | {
    type: 'order-failed'
    name: string
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
  | { type: 'storage', state: 'down', where: string, reason: string }
  | { type: 'storage', state: 'up', where: string, downMs: number }
  | { type: 'storage-unavailable', name: string, error: string, retryAt: Date, serving: 'stored' | 'cached' | 'temporary' }
  | { type: 'storage-rejected', name: string, error: string }
  | { type: 'renewal-info', name: string, window: RenewalWindow, renewAt: Date, explanationUrl: string | null }
  | { type: 'on-demand-allowed', name: string }
  | { type: 'on-demand-refused', name: string, reason: Refusal | 'rate-limit' | 'renewal-denied' }
  /**
   * The ask check gave no answer before an on-demand certificate's renewal (it was busy, timed out
   * or failed): the certificate is kept and the check asked again at `retryAt`.
   */
  | { type: 'on-demand-deferred', name: string, reason: 'busy' | 'unanswered', attempt: number, retryAt: Date }

/** Options of the ACME source beyond the `tls` config. */
export interface AcmeSourceOptions {
  /** Receives progress and failures; the `tls` plugin sets it with `onEvent()` otherwise. */
  onEvent?: (event: AcmeEvent) => void
  /** Random numbers in [0, 1) for the jitter and the choice in an ARI window; tests fix them. */
  random?: () => number
}

/** The ACME certificate source: a `CertificateSource` that also answers challenges. */
export interface AcmeCertificateSource extends CertificateSource {
  readonly mode: 'acme'
  /** The key authorization to serve for an HTTP-01 token, or null for an unknown token. */
  challenge (token: string): Promise<string | null>
  /** Sets the listener for progress and failures (one; the last set wins). */
  onEvent (listener: (event: AcmeEvent) => void): void
  /**
   * Checks now, and orders what is due (or everything, with `force`; one certificate, with
   * `name`). Resolves when the checks are over; a failure is reported as an `order-failed` event
   * and retried later, not thrown.
   */
  renew (options?: { force?: boolean, name?: string }): Promise<void>
  /** When the next check runs, or null when stopped. */
  nextCheck (): Date | null
  /** Names allowed on demand so far (by the ask check, or stored by an instance it allowed). */
  onDemandNames (): ReadonlySet<string>
  /** Where the state lives (`file: ...`, `redis: ...`), once loaded. */
  storageDescription (): string | null
}

/** The delay before retry number `failures` (1, 2, ...), in ms. @internal */
export function retryDelay (failures: number, base: number, max: number, retryAfter: number | null = null): number {
  const doubled = Math.min(base * 2 ** Math.min(failures - 1, 40), max)
  return Math.round(Math.max(doubled, retryAfter ?? 0) * 1000)
}

/** The certificates of the configuration: groups as given, every other name on its own. @internal */
export function certificateGroups (acme: TlsConfig['acme']): Array<{ name: string, names: string[] }> {
  const grouped = new Map<string, string[]>()
  for (const group of acme.groups) for (const name of group) grouped.set(name, group)
  const out: Array<{ name: string, names: string[] }> = []
  const done = new Set<string>()
  for (const domain of acme.domains) {
    if (done.has(domain)) continue
    const names = grouped.get(domain) ?? [domain]
    for (const name of names) done.add(name)
    out.push({ name: names[0] as string, names: [...names] })
  }
  return out
}

/** One certificate this instance keeps: its names, what it serves, and its schedule. */
interface Managed {
  name: string
  names: string[]
  onDemand: boolean
  /** The CA's certificate being served (null until there is one). */
  current: CertificatePair | null
  failures: number
  /** Renewals of an on-demand certificate the ask check did not answer, in a row. */
  askFailures: number
  timer: NodeJS.Timeout | undefined
  nextCheckAt: Date | null
  running: Promise<void> | null
  /** A re-read of the storage in progress (another instance stored something). */
  refreshing: boolean
  /** Fixed per certificate, so the jittered renewal time does not move at every check. */
  jitter: number
  ari: { fingerprint: string, at: Date, until: number } | null
  waiters: Array<() => void>
  dropped: boolean
  /** What was last reported about the shared storage's copy (a rollback, a rejected value), so a check does not repeat it. */
  reported: string | null
}

/** The ACME certificate source. */
export function acmeSource (config: TlsConfig, options: AcmeSourceOptions = {}): AcmeCertificateSource {
  const acme = config.acme
  const random = options.random ?? Math.random
  const managed = new Map<string, Managed>()
  const configured: Managed[] = []
  const pending = new Map<string, string>()
  const alpnPending = new Map<string, { key: string, cert: string }>()
  const allowed = new Set<string>()
  const spread = new Set<Managed>()
  const gate = acme.onDemand === undefined ? null : new AskGate({ ask: acme.onDemand.ask, timeoutMs: acme.onDemand.askTimeout * 1000 })
  const limiter = acme.onDemand === undefined ? null : new OrderLimiter(acme.onDemand.maxOrders, acme.onDemand.per * 1000)
  let listener = options.onEvent ?? null
  let events: SourceEvents | null = null
  let temporary: CertificatePair | null = null
  let extraCa: string | undefined
  let agent: Agent | null = null
  let storage: Storage | null = null
  let ownStorage = false
  let store: AcmeStore | null = null
  let opening: Promise<AcmeStore> | null = null
  let ari: { endpoint: string | null, until: number } | null = null
  let syncTimer: NodeJS.Timeout | undefined
  let unwatch: (() => void) | undefined
  let lastVersion: string | null | undefined
  let stopped = false
  const abort = new AbortController()

  function create (name: string, names: string[], onDemand: boolean): Managed {
    const m: Managed = { name, names, onDemand, current: null, failures: 0, askFailures: 0, timer: undefined, nextCheckAt: null, running: null, refreshing: false, jitter: random(), ari: null, waiters: [], dropped: false, reported: null }
    for (const served of names) managed.set(served, m)
    return m
  }
  for (const group of certificateGroups(acme)) configured.push(create(group.name, group.names, false))

  function emit (event: AcmeEvent): void {
    try {
      listener?.(event)
    } catch {
      // A failing logger must not stop renewals.
    }
  }

  function storageName (): string {
    const kind = config.storage
    return kind === 'file' ? 'TLS_DIR' : kind === 'redis' ? 'Redis' : 'the storage'
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

  function onStorageEvent (event: StorageEvent): void {
    if (event.type === 'down') emit({ type: 'storage', state: 'down', where: event.where, reason: event.reason })
    else emit({ type: 'storage', state: 'up', where: event.where, downMs: event.downMs })
  }

  async function openStore (): Promise<AcmeStore> {
    opening ??= (async () => {
      let cache: Storage | undefined
      if (isStorage(config.storage)) {
        storage = config.storage
      } else if (config.storage === 'redis') {
        const redis = await redisStorage({
          url: config.redisUrl,
          prefix: config.redisPrefix,
          keys: config.storageKeys,
          onEvent: onStorageEvent
        })
        // Not fatal: a Redis that is down is reported and joined when it comes back.
        await redis.ready().catch(() => {})
        storage = redis
        ownStorage = true
        cache = fileStorage(config.dir)
      } else {
        storage = fileStorage(config.dir)
        ownStorage = true
      }
      store = new AcmeStore(storage, acme.directory, { lockTtl: acme.lockTtl * 1000, ...(cache === undefined ? {} : { cache }) })
      return store
    })()
    return await opening
  }

  function http (): Agent {
    agent ??= acmeAgent(extraCa)
    return agent
  }

  function named (m: Managed): NamedCertificate | null {
    const pair = m.current ?? (m.onDemand ? null : temporary)
    if (pair === null) return null
    return { name: m.name, names: m.names, pair, ...(m.onDemand ? { onDemand: true } : {}) }
  }

  /** Why the stored pair must be replaced, or null while it is good (computing when it is due). */
  async function dueReason (m: Managed, stored: StoredPair | null, now: number): Promise<string | null> {
    if (stored === null) return 'no certificate stored yet'
    if (!stored.inDate) return `the stored certificate is out of date (valid ${stored.pair.info.notBefore.toISOString()} to ${stored.pair.info.notAfter.toISOString()})`
    if (stored.missing.length > 0) return `the stored certificate does not cover ${stored.missing.join(', ')}`
    const { at, fromAri } = await renewAt(m, stored.pair)
    if (now >= at.getTime()) {
      return fromAri
        ? `the CA's renewal window (ARI) has opened (renew at ${at.toISOString()}, expires ${stored.pair.info.notAfter.toISOString()})`
        : `the stored certificate is due for renewal (expires ${stored.pair.info.notAfter.toISOString()})`
    }
    return null
  }

  async function ariEndpoint (): Promise<string | null> {
    if (ari !== null && ari.until > Date.now()) return ari.endpoint
    try {
      const endpoint = await renewalInfoUrl(acme.directory, http(), abort.signal)
      ari = { endpoint, until: Date.now() + DIRECTORY_TTL }
    } catch {
      // Directory unreachable: try again at the next check; the lifetime rule applies meanwhile.
      return ari?.endpoint ?? null
    }
    return ari.endpoint
  }

  /** When a certificate is due: in the CA's window when it suggests one, else by its lifetime. */
  async function renewAt (m: Managed, pair: CertificatePair): Promise<{ at: Date, fromAri: boolean }> {
    const byLifetime = renewalTime(pair.info, acme.renewWhenRemaining, acme.renewJitter, m.jitter)
    if (!acme.ari) return { at: byLifetime, fromAri: false }
    const now = Date.now()
    if (m.ari !== null && m.ari.fingerprint === pair.info.fingerprint && m.ari.until > now) return { at: m.ari.at, fromAri: true }
    const endpoint = await ariEndpoint()
    const id = endpoint === null ? null : ariCertId(pair.cert)
    if (endpoint === null || id === null) return { at: byLifetime, fromAri: false }
    const info = await fetchRenewalInfo(endpoint, id, http(), abort.signal).catch(() => null)
    if (info === null) {
      return m.ari !== null && m.ari.fingerprint === pair.info.fingerprint ? { at: m.ari.at, fromAri: true } : { at: byLifetime, fromAri: false }
    }
    const at = timeInWindow(info.window, m.jitter)
    const again = Math.min(Math.max((info.retryAfter ?? 6 * 3600) * 1000, 1000), 24 * 3600_000)
    m.ari = { fingerprint: pair.info.fingerprint, at, until: now + again }
    emit({ type: 'renewal-info', name: m.name, window: info.window, renewAt: at, explanationUrl: info.explanationUrl })
    return { at, fromAri: true }
  }

  /** Serves a stored pair written by another instance (or by this one before a restart). */
  function pickUp (m: Managed, stored: StoredPair | null): void {
    if (stored === null || !stored.inDate || m.dropped) return
    const { pair } = stored
    const current = m.current
    const newer = current === null ||
      (pair.info.fingerprint !== current.info.fingerprint && pair.info.notAfter.getTime() > current.info.notAfter.getTime())
    if (!newer) return
    m.current = pair
    wake(m)
    const from = stored.fromCache === true
      ? 'TLS_DIR (a copy: the shared storage is unreachable)'
      : stored.rolledBackTo !== undefined
        ? 'TLS_DIR (a copy newer than the shared storage\'s)'
        : stored.rejected !== undefined
          ? 'TLS_DIR (a copy: the shared storage\'s failed authentication)'
          : stored.mismatched === true ? 'TLS_DIR (a copy: the shared storage\'s key and certificate are not a pair)' : storageName()
    events?.update(pair, `ACME certificate picked up from ${from} (ordered by another instance)`, m.name)
    emit({ type: 'picked-up', name: m.name, fingerprint: pair.info.fingerprint, notAfter: pair.info.notAfter, from })
  }

  /**
   * Reports what is wrong with the shared storage's copy of a certificate, once until it changes:
   * every check reads it, and a rollback stays until the next renewal.
   */
  function reportStorage (m: Managed, stored: StoredPair | null, rejected?: string): void {
    // Unreachable: nothing is known about the storage's copy.
    if (stored?.fromCache === true) return
    const problem = rejected !== undefined
      ? `${rejected}; this instance has no copy in TLS_DIR: ordering a new certificate`
      : stored?.rejected !== undefined
        ? `${stored.rejected}; serving this instance's copy in TLS_DIR until it is renewed`
        : stored?.rolledBackTo === undefined
          ? null
          : `the shared storage holds an older certificate (expiring ${stored.rolledBackTo.toISOString()}) than this instance's copy in TLS_DIR (expiring ${stored.pair.info.notAfter.toISOString()}): a restored dump or values written back; serving the newer copy`
    if (problem === m.reported) return
    m.reported = problem
    if (problem !== null) emit({ type: 'storage-rejected', name: m.name, error: problem })
  }

  /**
   * Reads a certificate and reports what is wrong with the storage's copy. A value that fails
   * authentication counts as none when there is no local copy either: ordered again under the lock,
   * which overwrites it; never an order failure without an order.
   */
  async function read (m: Managed, target: AcmeStore): Promise<StoredPair | null> {
    let stored: StoredPair | null
    try {
      stored = await target.readCertificate(m.name, m.names)
    } catch (error) {
      if ((error as { code?: string }).code !== 'ERR_SECURE_HTTPS_STORAGE_INTEGRITY') throw error
      reportStorage(m, null, (error as Error).message)
      return null
    }
    reportStorage(m, stored)
    return stored
  }

  function wake (m: Managed): void {
    for (const waiter of m.waiters.splice(0)) waiter()
  }

  function schedule (m: Managed, delay: number): void {
    if (stopped || m.dropped) return
    if (m.timer !== undefined) clearTimeout(m.timer)
    const ms = Math.max(0, Math.min(delay, MAX_TIMER))
    m.nextCheckAt = new Date(Date.now() + ms)
    if (channels.acme.hasSubscribers) channels.acme.publish({ action: 'next-attempt', names: m.names, at: m.nextCheckAt })
    m.timer = setTimeout(() => { run(m, false).catch(() => {}) }, ms)
    m.timer.unref()
  }

  async function untilRenewal (m: Managed, pair: CertificatePair): Promise<{ delay: number, at: Date, fromAri: boolean }> {
    const { at, fromAri } = await renewAt(m, pair)
    const due = at.getTime() - Date.now()
    return { delay: Math.min(Math.max(due, 1000), acme.checkInterval * 1000), at, fromAri }
  }

  /**
   * Publishes an answer here and in the storage. An answer that could not be published is taken
   * back at once: the order fails, and `withdraw` is called only for those published.
   */
  async function publish (challenge: PublishedChallenge, target: AcmeStore): Promise<void> {
    if (challenge.type === 'http-01') {
      if (!isChallengeToken(challenge.token)) throw new Error(`the ACME server sent an HTTP-01 token that is not base64url: ${JSON.stringify(challenge.token.slice(0, 40))}`)
      pending.set(challenge.token, challenge.keyAuthorization)
      try {
        await target.putChallenge(challenge.token, challenge.keyAuthorization)
      } catch (error) {
        pending.delete(challenge.token)
        // The write may have happened though it failed (a reply lost): nothing else removes it.
        await target.removeChallenge(challenge.token).catch(() => {})
        throw error
      }
    } else if (challenge.type === 'tls-alpn-01') {
      alpnPending.set(challenge.name, { key: challenge.key, cert: challenge.cert })
      try {
        await target.putAlpn(challenge.name, challenge.key, challenge.cert)
      } catch (error) {
        alpnPending.delete(challenge.name)
        await target.removeAlpn(challenge.name).catch(() => {})
        throw error
      }
    } else {
      await (acme.dns as NonNullable<typeof acme.dns>).set(challenge.name, challenge.value)
    }
  }

  async function withdraw (challenge: PublishedChallenge, target: AcmeStore): Promise<void> {
    if (challenge.type === 'http-01') {
      pending.delete(challenge.token)
      await target.removeChallenge(challenge.token)
    } else if (challenge.type === 'tls-alpn-01') {
      alpnPending.delete(challenge.name)
      await target.removeAlpn(challenge.name)
    } else {
      await (acme.dns as NonNullable<typeof acme.dns>).remove(challenge.name, challenge.value)
    }
  }

  async function order (m: Managed, target: AcmeStore, reason: string, lease: Lease, previous: StoredPair | null): Promise<void> {
    emit({ type: 'ordering', name: m.name, domains: m.names, reason })
    const started = Date.now()
    const replaces = previous !== null && acme.ari && (await ariEndpoint()) !== null ? ariCertId(previous.pair.cert) ?? undefined : undefined
    const issued = await orderCertificate({
      directoryUrl: acme.directory,
      accountKey: await target.accountKey(createEcdsaKey),
      email: acme.email ?? '',
      domains: m.names,
      agent: http(),
      challenge: acme.challenge,
      ...(acme.eab === undefined ? {} : { eab: acme.eab }),
      ...(replaces === undefined ? {} : { replaces }),
      signal: AbortSignal.any([abort.signal, lease.signal]),
      publish: (challenge) => publish(challenge, target),
      withdraw: (challenge) => withdraw(challenge, target)
    })
    // Stored even when stopping meanwhile: the next start serves it instead of ordering again.
    // Guarded: a holder that lost its lease does not overwrite the next holder's certificate.
    await target.writeCertificate(m.name, { names: m.names, onDemand: m.onDemand }, issued.key, issued.cert, lease)
    const pair: CertificatePair = { key: issued.key, cert: issued.cert, info: inspectCertificate(issued.cert) }
    if (channels.acme.hasSubscribers) channels.acme.publish({ action: 'order-succeeded', names: m.names })
    if (stopped) return
    const first = m.current === null
    m.current = pair
    m.failures = 0
    wake(m)
    events?.update(pair, first ? 'ACME certificate issued' : 'ACME certificate renewed', m.name)
    const next = await untilRenewal(m, pair)
    emit({ type: 'issued', name: m.name, domains: m.names, fingerprint: pair.info.fingerprint, notAfter: pair.info.notAfter, renewAt: next.at, durationMs: Date.now() - started })
    schedule(m, next.delay)
  }

  /** Orders, holding the lock, unless the previous holder stored a fresh certificate a moment ago. */
  async function underLock (m: Managed, target: AcmeStore, forced: string | null, lease: Lease): Promise<void> {
    const again = await read(m, target)
    const due = forced ?? await dueReason(m, again, Date.now())
    if (due !== null) {
      // A retry on demand is one more order: within the limit, as the first was when it was allowed.
      if (m.onDemand && limiter !== null && forced === null && m.failures > 0 && !limiter.take()) {
        refused(m.name, 'rate-limit')
        schedule(m, Math.max(limiter.nextIn(), 1000))
        return
      }
      await order(m, target, due, lease, again)
      return
    }
    pickUp(m, again)
    m.failures = 0
    schedule(m, (await untilRenewal(m, (again as StoredPair).pair)).delay)
  }

  function serving (m: Managed, stored: StoredPair | null): 'stored' | 'cached' | 'temporary' {
    if (stored?.fromCache === true) return 'cached'
    return m.current === null ? 'temporary' : 'stored'
  }

  async function check (m: Managed, force: boolean): Promise<void> {
    let stored: StoredPair | null = null
    try {
      const target = await openStore()
      stored = await read(m, target)
      pickUp(m, stored)
      if (stored?.fromCache === true) {
        // Nothing is ordered without the shared storage: its lock is what keeps the fleet to one order.
        throw Object.assign(new Error(`the shared storage (${storage?.description ?? ''}) cannot be reached`), { code: 'ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE' })
      }
      // A rolled-back storage gives this instance's newer copy: judged as any other, renewed when due.
      // So does a storage whose copy failed authentication (or none, without a local copy).
      const reason = force ? 'renewal requested' : await dueReason(m, stored, Date.now())
      if (reason === null) {
        const pair = (stored as StoredPair).pair
        m.failures = 0
        const next = await untilRenewal(m, pair)
        schedule(m, next.delay)
        emit({ type: 'checked', name: m.name, fingerprint: pair.info.fingerprint, renewAt: next.at, nextCheck: m.nextCheckAt as Date, ari: next.fromAri })
        return
      }
      if (m.onDemand && gate !== null && !force && (stored !== null || m.failures > 0)) {
        // A name allowed once is asked again before each renewal, and before each retry of an
        // order that failed: it may have left the platform. Only a no drops it: a check that is
        // busy (a flood of unknown names), slow or failing is asked again later, while the
        // certificate keeps serving.
        const verdict = await gate.verdict(m.name)
        if (verdict === 'denied') {
          drop(m)
          emit({ type: 'on-demand-refused', name: m.name, reason: stored === null ? 'denied' : 'renewal-denied' })
          return
        }
        if (verdict !== true) {
          m.askFailures++
          const wait = retryDelay(m.askFailures, acme.retryDelay, acme.retryMaxDelay)
          emit({ type: 'on-demand-deferred', name: m.name, reason: verdict, attempt: m.askFailures, retryAt: new Date(Date.now() + wait) })
          schedule(m, wait)
          return
        }
        m.askFailures = 0
      }
      const lease = await target.lock(m.name)
      if (!isLease(lease)) {
        const expiresIn = lease.expires === null ? LOCK_POLL_MAX : lease.expires.getTime() - Date.now() + 100
        const wait = Math.max(250, Math.min(acme.retryDelay * 1000, LOCK_POLL_MAX, expiresIn))
        emit({ type: 'lock-busy', name: m.name, holder: lease, retryAt: new Date(Date.now() + wait) })
        schedule(m, wait)
        return
      }
      await underLock(m, target, force ? reason : null, lease).finally(() => target.unlock(lease))
    } catch (error) {
      if (stopped) return
      const code = (error as { code?: string }).code
      const cause = (error as { cause?: { code?: string } }).cause
      if (code === 'ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE' || cause?.code === 'ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE') {
        const wait = Math.min(STORAGE_RETRY, acme.retryDelay * 1000 * 4)
        emit({ type: 'storage-unavailable', name: m.name, error: (error as Error).message, retryAt: new Date(Date.now() + wait), serving: serving(m, stored) })
        schedule(m, wait)
        return
      }
      if (code === 'ERR_SECURE_HTTPS_LOCK_LOST' || cause?.code === 'ERR_SECURE_HTTPS_LOCK_LOST') {
        emit({ type: 'lock-lost', name: m.name, error: (error as Error).message })
        schedule(m, 1000)
        return
      }
      // Only a value read while ordering (the account key) gets here: the certificate's own is read by read().
      if (code === 'ERR_SECURE_HTTPS_STORAGE_INTEGRITY' || cause?.code === 'ERR_SECURE_HTTPS_STORAGE_INTEGRITY') {
        emit({ type: 'storage-rejected', name: m.name, error: (error as Error).message })
      }
      m.failures++
      const failure = error instanceof AcmeOrderError ? error : null
      const delay = retryDelay(m.failures, acme.retryDelay, acme.retryMaxDelay, failure?.retryAfter ?? null)
      const retryAt = new Date(Date.now() + delay)
      const errorCode = failure?.code ?? code
      emit({
        type: 'order-failed',
        name: m.name,
        domains: m.names,
        error: (error as Error).message,
        ...(errorCode === undefined ? {} : { code: errorCode }),
        problem: failure?.problem ?? null,
        attempt: m.failures,
        retryAt
      })
      if (channels.acme.hasSubscribers) channels.acme.publish({ action: 'order-failed', names: m.names, error: (error as Error).message })
      schedule(m, delay)
    }
  }

  function run (m: Managed, force: boolean): Promise<void> {
    if (stopped || m.dropped) return Promise.resolve()
    if (m.running === null) {
      m.running = check(m, force).finally(() => { m.running = null })
    }
    return m.running
  }

  function drop (m: Managed): void {
    m.dropped = true
    // No longer a name of the site: host authorization stops accepting it too.
    if (m.onDemand) for (const name of m.names) allowed.delete(name)
    if (m.timer !== undefined) clearTimeout(m.timer)
    m.nextCheckAt = null
    wake(m)
  }

  function all (): Managed[] {
    return [...new Set(managed.values())]
  }

  /** Re-reads a certificate another instance may have stored (a check in progress reads it anyway). */
  function refresh (m: Managed): void {
    if (m.running !== null || m.refreshing || stopped || store === null) return
    const target = store
    m.refreshing = true
    read(m, target).then((stored) => pickUp(m, stored), () => {}).finally(() => { m.refreshing = false })
  }

  async function sync (): Promise<void> {
    if (store === null || stopped) return
    const version = await store.version().catch(() => undefined)
    if (version === undefined || version === lastVersion) return
    lastVersion = version
    for (const m of all()) refresh(m)
  }

  function refused (name: string, reason: Refusal | 'rate-limit'): null {
    emit({ type: 'on-demand-refused', name, reason })
    return null
  }

  function waitFor (m: Managed, ms: number): Promise<NamedCertificate | null> {
    if (m.current !== null || m.dropped) return Promise.resolve(named(m))
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = m.waiters.indexOf(done)
        if (i !== -1) m.waiters.splice(i, 1)
        resolve(named(m))
      }, ms)
      timer.unref()
      const done = (): void => {
        clearTimeout(timer)
        resolve(named(m))
      }
      m.waiters.push(done)
    })
  }

  async function onDemand (servername: string): Promise<NamedCertificate | null | undefined> {
    const settings = acme.onDemand
    if (settings === undefined || gate === null || limiter === null || stopped) return null
    const name = onDemandName(servername)
    // Not a name a CA could certify (localhost, a single label): the default certificate, as without on-demand TLS.
    if (name === null) return undefined
    const known = managed.get(name)
    if (known !== undefined && !known.dropped) return await waitFor(known, settings.wait * 1000)
    const answer = await gate.allows(name)
    if (answer !== true) return refused(name, answer)
    if (!allowed.has(name)) {
      allowed.add(name)
      emit({ type: 'on-demand-allowed', name })
    }
    let m = managed.get(name)
    if (m !== undefined && !m.dropped) return await waitFor(m, settings.wait * 1000)
    m = create(name, [name], true)
    const target = await openStore()
    try {
      const stored = await read(m, target)
      if (stored !== null && stored.inDate && stored.missing.length === 0) {
        pickUp(m, stored)
        schedule(m, (await untilRenewal(m, stored.pair)).delay)
        return named(m)
      }
    } catch {
      // The storage is away: ordering would fail the same way; refuse for now.
      managed.delete(name)
      return null
    }
    if (!limiter.take()) {
      managed.delete(name)
      return refused(name, 'rate-limit')
    }
    run(m, false).catch(() => {})
    return await waitFor(m, settings.wait * 1000)
  }

  async function loadOnDemand (target: AcmeStore): Promise<void> {
    if (acme.onDemand === undefined) return
    for (const segment of await target.certificateNames()) {
      if (managed.has(segment)) continue
      const meta = await target.readMeta(segment).catch(() => null)
      if (meta === null || !meta.onDemand || meta.names.length !== 1) continue
      const name = onDemandName(meta.names[0] as string)
      if (name === null || managed.has(name)) continue
      const stored = await target.readCertificate(name, [name]).catch(() => null)
      if (stored === null || !stored.inDate) continue
      const m = create(name, [name], true)
      m.current = stored.pair
      allowed.add(name)
      spread.add(m)
    }
  }

  return {
    mode: 'acme',

    async load () {
      await readExtraCa()
      const target = await openStore()
      for (const m of configured) {
        try {
          const stored = await read(m, target)
          if (stored !== null && stored.inDate && m.current === null) m.current = stored.pair
        } catch (error) {
          if ((error as { code?: string }).code !== 'ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE') throw error
        }
      }
      await loadOnDemand(target).catch(() => {})
      if (temporary === null && (configured.length === 0 || configured.some((m) => m.current === null))) {
        // Browsers will warn until the CA's certificate arrives, seconds later; better than not listening.
        const pem = await generateSelfSigned([...acme.domains, ...config.hosts])
        temporary = { key: pem.key, cert: pem.cert, info: inspectCertificate(pem.cert) }
      }
      return configured[0]?.current ?? (temporary as CertificatePair)
    },

    certificates () {
      const list: NamedCertificate[] = []
      for (const m of configured) {
        const entry = named(m)
        if (entry !== null) list.push(entry)
      }
      for (const m of all()) {
        if (!m.onDemand || m.dropped) continue
        const entry = named(m)
        if (entry !== null) list.push(entry)
      }
      return list
    },

    onDemand: acme.onDemand === undefined ? undefined : onDemand,

    async alpnChallenge (servername) {
      const name = servername.toLowerCase()
      const local = alpnPending.get(name)
      if (local !== undefined) return local
      return await (store?.alpn(name) ?? Promise.resolve(null))
    },

    start (sourceEvents: SourceEvents) {
      events = sourceEvents
      // Certificates obtained on demand may be many: their first checks are spread over ten minutes.
      for (const m of all()) schedule(m, spread.has(m) ? random() * 600_000 : 0)
      spread.clear()
      syncTimer = setInterval(() => { sync().catch(() => {}) }, acme.syncInterval * 1000)
      syncTimer.unref()
      openStore().then((target) => {
        if (stopped) return
        target.version().then((version) => { lastVersion ??= version }, () => {})
        const watch = target.storage.watch
        if (typeof watch !== 'function') return
        unwatch = watch.call(target.storage, (key) => {
          for (const m of all()) {
            if (target.certificateKey(m.name) === key) refresh(m)
          }
        })
      }, () => {})
    },

    async stop () {
      stopped = true
      if (syncTimer !== undefined) clearInterval(syncTimer)
      unwatch?.()
      for (const m of all()) {
        if (m.timer !== undefined) clearTimeout(m.timer)
        m.timer = undefined
        m.nextCheckAt = null
        wake(m)
      }
      abort.abort()
      await Promise.allSettled(all().map((m) => m.running))
      agent?.destroy()
      const own = ownStorage ? storage : null
      if (own !== null) await own.close().catch(() => {})
    },

    async challenge (token) {
      return pending.get(token) ?? await (store?.challenge(token) ?? openStore().then((target) => target.challenge(token), () => null))
    },

    onEvent (fn) {
      listener = fn
    },

    async renew ({ force = false, name } = {}) {
      const targets = all().filter((m) => name === undefined || m.name === name || m.names.includes(name))
      await Promise.all(targets.map(async (m) => {
        if (m.running !== null) await m.running
        await run(m, force)
      }))
    },

    nextCheck () {
      let earliest: Date | null = null
      for (const m of all()) {
        if (m.nextCheckAt !== null && (earliest === null || m.nextCheckAt < earliest)) earliest = m.nextCheckAt
      }
      return earliest
    },

    onDemandNames () {
      return allowed
    },

    storageDescription () {
      return storage?.description ?? null
    }
  }
}

/** Facts about a certificate used in events. @internal */
export type { CertificateInfo }
