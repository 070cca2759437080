/**
 * What TLS_MODE=acme keeps, on top of a `Storage` (TLS_DIR or Redis), under
 * `acme/<directory>/` (one space per ACME directory, so that a staging certificate is never served
 * once production is configured):
 *
 * - `account-key.pem` the account's private key, reused so the CA sees one account;
 * - `certificates/<name>/key.pem`, `cert.pem`, `meta.json` each certificate (its key, its full
 *   chain leaf first, and the names it was ordered for), by the first of its names;
 * - `key.pem` + `cert.pem` the single certificate of earlier versions, still served for the names
 *   it covers until their own certificates arrive (no burst of orders on upgrade);
 * - `locks/<name>` the lock of whoever is ordering that certificate (or creating the account);
 * - `challenges/<token>` pending HTTP-01 answers, `alpn/<name>` pending TLS-ALPN-01 certificates,
 *   so that whichever instance the CA reaches can answer;
 * - `version` changed after every certificate written: a cheap poll for the other instances.
 *
 * With a remote storage (Redis), certificates read from it are also kept in TLS_DIR, so an instance
 * that restarts while Redis is away still serves them.
 */
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { fileStorage } from '../storage/file.ts'
import { isLease, type Lease, type LockHolder, type Storage } from '../storage/storage.ts'
import { ERR_STORAGE_UNAVAILABLE } from '../errors.ts'
import { assertUsablePair, inspectCertificate, uncoveredHosts } from './inspect.ts'
import type { CertificatePair } from './source.ts'

/** HTTP-01 tokens are base64url (RFC 8555 section 8.3); anything else never reaches the storage. */
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/

/** The folder name for a directory URL: its host and port, e.g. `acme-v02.api.letsencrypt.org`. @internal */
export function directoryFolder (directoryUrl: string): string {
  const url = new URL(directoryUrl)
  return (url.port === '' ? url.hostname : `${url.hostname}_${url.port}`).replace(/[^A-Za-z0-9._-]/g, '_')
}

/** The storage segment of a certificate name: `*.example.com` is `wildcard_.example.com`. @internal */
export function certificateSegment (name: string): string {
  return name.replace(/^\*\./, 'wildcard_.').replace(/[^A-Za-z0-9._-]/g, '_')
}

/** A stored pair, with why it is or is not fit to serve and to keep. @internal */
export interface StoredPair {
  pair: CertificatePair
  /** True while the certificate is within its validity period. */
  inDate: boolean
  /** Names the certificate does not cover (the configuration changed). */
  missing: string[]
  /** Read from the single certificate of earlier versions. */
  legacy?: boolean
  /**
   * Read from the local copy in TLS_DIR because the shared storage could not be reached: nothing may
   * be ordered (the storage's lock is what keeps the fleet to one order).
   */
  fromCache?: boolean
  /**
   * The local copy was issued later than what the shared storage holds: the storage went back to an
   * older certificate (a restored dump, or values written back by someone who kept them). The
   * older certificate's expiry. The pair is the local copy; the storage is reachable, so it is
   * judged, and renewed when due, as any other.
   */
  rolledBackTo?: Date
  /**
   * The shared storage's copy failed authentication (ERR_SECURE_HTTPS_STORAGE_INTEGRITY: changed or
   * planted by something else); this is the error. The pair is the local copy; the storage is
   * reachable, so it is judged, and renewed when due, as any other.
   */
  rejected?: string
  /**
   * The shared storage's key and certificate do not belong together: a write cut between the two
   * (the key is written first), or another instance's write seen half-way. The pair is the local
   * copy, judged as any other.
   */
  mismatched?: boolean
}

/** What `meta.json` holds. @internal */
export interface CertificateMeta {
  names: string[]
  onDemand: boolean
}

/** Options of `AcmeStore`. @internal */
export interface AcmeStoreOptions {
  /** A local copy of the certificates (TLS_DIR) for when `storage` cannot be reached. */
  cache?: Storage
  /** Lease of the locks, in ms. */
  lockTtl?: number
}

/** The ACME state of one directory, in a storage. @internal */
export class AcmeStore {
  readonly storage: Storage
  /** Storage key prefix: `acme/<directory>`. */
  readonly prefix: string
  /** With a file storage, the folder of this directory's state (TLS_DIR/acme/<directory>). */
  readonly folder: string
  private readonly cache: Storage | null
  private readonly lockTtl: number | undefined

  /** `storage` is a Storage, or a TLS_DIR path for the filesystem storage. */
  constructor (storage: Storage | string, directoryUrl: string, options: AcmeStoreOptions = {}) {
    this.storage = typeof storage === 'string' ? fileStorage(storage) : storage
    this.prefix = `acme/${directoryFolder(directoryUrl)}`
    const root = (this.storage as Partial<ReturnType<typeof fileStorage>>).root
    this.folder = root === undefined ? this.prefix : join(root, 'acme', directoryFolder(directoryUrl))
    this.cache = options.cache ?? null
    this.lockTtl = options.lockTtl
  }

  private key (...parts: string[]): string {
    return [this.prefix, ...parts].join('/')
  }

  /** With a file storage, creates (0700) or checks the folders; nothing another user could write is used. */
  async ensureFolder (): Promise<void> {
    // Reading a key below each folder creates and checks the folders on the way.
    await this.storage.load(this.key('challenges', 'placeholder')).catch((error: unknown) => {
      if ((error as { code?: string }).code !== 'ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE') throw error
    })
  }

  /**
   * The account key, created on first use by `create` under the account lock, so that instances
   * starting together share one account. Waits up to `waitMs` for another instance creating it.
   */
  async accountKey (create: () => Promise<string>, waitMs = 30_000): Promise<string> {
    const name = this.key('account-key.pem')
    const existing = await this.storage.load(name)
    if (existing !== null) return existing
    const deadline = Date.now() + waitMs
    for (;;) {
      const lease = await this.lock('account')
      if (isLease(lease)) {
        try {
          const again = await this.storage.load(name)
          if (again !== null) return again
          const key = await create()
          await this.storage.store(name, key, { guard: lease })
          return key
        } finally {
          await this.unlock(lease)
        }
      }
      if (Date.now() >= deadline) {
        throw new ERR_STORAGE_UNAVAILABLE(`the ACME account key is being created by another instance (${lease.owner}) and did not appear within ${waitMs} ms`)
      }
      await new Promise((resolve) => setTimeout(resolve, 250))
      const appeared = await this.storage.load(name)
      if (appeared !== null) return appeared
    }
  }

  /** Reads a key and certificate from `storage` under `base`, or null when missing or not a pair. */
  private async readFrom (storage: Storage, base: string, names: readonly string[], now: number): Promise<StoredPair | null> {
    const found = await this.readBoth(storage, base, names, now)
    return found === 'mismatched' ? null : found
  }

  /** As `readFrom`, telling a key and certificate that are both there but not a pair from none. */
  private async readBoth (storage: Storage, base: string, names: readonly string[], now: number): Promise<StoredPair | 'mismatched' | null> {
    const [key, cert] = await Promise.all([storage.load(`${base}/key.pem`), storage.load(`${base}/cert.pem`)])
    if (key === null || cert === null) return null
    return judge(key, cert, names, now) ?? 'mismatched'
  }

  /**
   * The single stored certificate of earlier versions (TLS_DIR/acme/<directory>/cert.pem), or null
   * when there is none or its key and certificate do not belong together.
   */
  async readPair (names: readonly string[], now = Date.now()): Promise<StoredPair | null> {
    const found = await this.readFrom(this.storage, this.prefix, names, now)
    return found === null ? null : { ...found, legacy: true }
  }

  /** Stores the single certificate of earlier versions (tests of the upgrade path). */
  async writePair (key: string, cert: string): Promise<void> {
    await this.storage.store(this.key('key.pem'), key)
    await this.storage.store(this.key('cert.pem'), cert)
  }

  /**
   * The certificate named `name`, for `names`: its own, else the single certificate of earlier
   * versions when that covers every name and is in date. With a remote storage, the local copy when
   * the storage cannot be reached (`fromCache`), holds an older certificate (`rolledBackTo`), one
   * that fails authentication (`rejected`) or a key and certificate that are not a pair
   * (`mismatched`). Null when there is none.
   * @throws ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE or ERR_SECURE_HTTPS_STORAGE_INTEGRITY when there
   * is no local copy to fall back to.
   */
  async readCertificate (name: string, names: readonly string[], now = Date.now()): Promise<StoredPair | null> {
    const base = this.key('certificates', certificateSegment(name))
    try {
      const found = await this.readBoth(this.storage, base, names, now)
      if (found === 'mismatched' && this.cache !== null) {
        // Two writes, not one: a writer cut between them leaves the new key beside the old
        // certificate. This instance's copy is the last pair it saw whole.
        const local = await this.readFrom(this.cache, base, names, now).catch(() => null)
        if (local !== null) return { ...local, mismatched: true }
      }
      const own = found === 'mismatched' ? null : found
      if (own !== null) {
        if (this.cache !== null) {
          // Sealing proves a value was written by a holder of TLS_STORAGE_KEYS, not that it is the
          // latest: a local copy issued later and in date wins, and is not overwritten. (Issued:
          // notBefore. A later certificate may expire sooner, after a switch to short-lived ones.)
          const local = await this.readFrom(this.cache, base, names, now).catch(() => null)
          if (local !== null && local.inDate && local.missing.length === 0 &&
            local.pair.info.notBefore.getTime() > own.pair.info.notBefore.getTime()) {
            return { ...local, rolledBackTo: own.pair.info.notAfter }
          }
          await this.mirror(base, own).catch(() => {})
        }
        return own
      }
      const legacy = await this.readPair(names, now)
      return legacy !== null && legacy.inDate && legacy.missing.length === 0 ? legacy : null
    } catch (error) {
      const code = (error as { code?: string }).code
      if (this.cache === null || (code !== 'ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE' && code !== 'ERR_SECURE_HTTPS_STORAGE_INTEGRITY')) throw error
      const cached = await this.readFrom(this.cache, base, names, now).catch(() => null)
      if (cached === null) throw error
      return code === 'ERR_SECURE_HTTPS_STORAGE_UNAVAILABLE' ? { ...cached, fromCache: true } : { ...cached, rejected: (error as Error).message }
    }
  }

  /** Keeps a local copy of a certificate read from the remote storage, if it changed. */
  private async mirror (base: string, stored: StoredPair): Promise<void> {
    const cache = this.cache as Storage
    if (await cache.load(`${base}/cert.pem`) === stored.pair.cert) return
    await cache.store(`${base}/key.pem`, stored.pair.key)
    await cache.store(`${base}/cert.pem`, stored.pair.cert)
  }

  /**
   * Stores a new certificate: the key first, so that a reader seeing the new certificate finds its
   * key; with `guard`, only while that lease is held. Then tells the other instances.
   */
  async writeCertificate (name: string, meta: CertificateMeta, key: string, cert: string, guard?: Lease): Promise<void> {
    const base = this.key('certificates', certificateSegment(name))
    const options = guard === undefined ? {} : { guard }
    await this.storage.store(`${base}/key.pem`, key, options)
    await this.storage.store(`${base}/cert.pem`, cert, options)
    await this.storage.store(`${base}/meta.json`, JSON.stringify(meta), options)
    await this.storage.store(this.key('version'), randomBytes(8).toString('hex'))
    if (this.cache !== null) await this.mirror(base, { pair: { key, cert, info: inspectCertificate(cert) }, inDate: true, missing: [] }).catch(() => {})
  }

  /** The names and kind of a stored certificate, or null. */
  async readMeta (name: string): Promise<CertificateMeta | null> {
    const text = await this.storage.load(this.key('certificates', certificateSegment(name), 'meta.json'))
    if (text === null) return null
    try {
      const parsed = JSON.parse(text) as Partial<CertificateMeta>
      if (!Array.isArray(parsed.names) || !parsed.names.every((entry) => typeof entry === 'string')) return null
      return { names: parsed.names, onDemand: parsed.onDemand === true }
    } catch {
      return null
    }
  }

  /** The names (storage segments) of every stored certificate. */
  async certificateNames (): Promise<string[]> {
    const keys = await this.storage.list(this.key('certificates'))
    return keys.map((key) => key.slice(key.lastIndexOf('/') + 1))
  }

  /** Changes whenever a certificate is written; null before the first. */
  async version (): Promise<string | null> {
    return await this.storage.load(this.key('version'))
  }

  /** The storage key of a certificate's files, to recognise them in change notifications. */
  certificateKey (name: string): string {
    return this.key('certificates', certificateSegment(name), 'cert.pem')
  }

  /** Takes the lock for a certificate (by name) or for the account, or says who holds it. */
  async lock (name = 'certificate'): Promise<Lease | LockHolder> {
    return await this.storage.lock(this.key('locks', certificateSegment(name)), this.lockTtl === undefined ? {} : { ttl: this.lockTtl })
  }

  async unlock (lease: Lease): Promise<void> {
    await this.storage.unlock(lease).catch(() => {
      // Unreachable: the lease runs out by itself.
    })
  }

  /** Publishes an HTTP-01 answer for every instance. */
  async putChallenge (token: string, keyAuthorization: string): Promise<void> {
    if (!TOKEN.test(token)) throw new Error(`the ACME server sent an HTTP-01 token that is not base64url: ${JSON.stringify(token.slice(0, 40))}`)
    await this.storage.store(this.key('challenges', token), keyAuthorization)
  }

  async removeChallenge (token: string): Promise<void> {
    if (TOKEN.test(token)) await this.storage.delete(this.key('challenges', token))
  }

  /** The answer for a token published by any instance, or null. */
  async challenge (token: string): Promise<string | null> {
    if (!TOKEN.test(token)) return null
    try {
      return await this.storage.load(this.key('challenges', token))
    } catch {
      return null
    }
  }

  /** Publishes a TLS-ALPN-01 certificate (key and certificate PEM) for a name, for every instance. */
  async putAlpn (name: string, key: string, cert: string): Promise<void> {
    await this.storage.store(this.key('alpn', certificateSegment(name)), JSON.stringify({ key, cert }))
  }

  async removeAlpn (name: string): Promise<void> {
    await this.storage.delete(this.key('alpn', certificateSegment(name)))
  }

  /** The pending TLS-ALPN-01 certificate for a name, or null. */
  async alpn (name: string): Promise<{ key: string, cert: string } | null> {
    try {
      const text = await this.storage.load(this.key('alpn', certificateSegment(name)))
      if (text === null) return null
      const parsed = JSON.parse(text) as { key?: unknown, cert?: unknown }
      return typeof parsed.key === 'string' && typeof parsed.cert === 'string' ? { key: parsed.key, cert: parsed.cert } : null
    } catch {
      return null
    }
  }
}

/** True when `token` has the shape of an HTTP-01 token. @internal */
export function isChallengeToken (token: string): boolean {
  return TOKEN.test(token)
}

function safeInspect (cert: string): ReturnType<typeof inspectCertificate> | null {
  try {
    return inspectCertificate(cert)
  } catch {
    return null
  }
}

/** Judges a stored key and certificate: null when they do not belong together or cannot be read. */
function judge (key: string, cert: string, names: readonly string[], now: number): StoredPair | null {
  let inDate = true
  try {
    // Checks the key matches; an expired certificate is still returned (flagged), never dropped.
    assertUsablePair(cert, key, undefined, now, 'stored ACME certificate')
  } catch (error) {
    const info = safeInspect(cert)
    if (info === null || !/expired|not valid before/.test((error as Error).message)) return null
    inDate = false
  }
  const info = inspectCertificate(cert)
  return { pair: { key, cert, info }, inDate, missing: uncoveredHosts(info.sans, names) }
}
