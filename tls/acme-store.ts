/**
 * What TLS_MODE=acme keeps on disk, under `TLS_DIR/acme/<directory>/` (one folder per ACME
 * directory, so that a staging certificate is never served once production is configured):
 *
 * - `account-key.pem` the account's private key (0600), reused so the CA sees one account;
 * - `key.pem` + `cert.pem` the certificate's key (0600) and full chain, leaf first;
 * - `lock` held by the instance that is ordering, so that instances sharing TLS_DIR order once;
 * - `challenges/<token>` pending HTTP-01 answers, so that any instance sharing TLS_DIR can answer
 *   the CA's validation request, whichever one it reaches.
 */
import { randomBytes } from 'node:crypto'
import { open, readFile, rm, stat, unlink, utimes } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { checkPrivateFile, ensurePrivateDir } from '../storage/private-dir.js'
import { assertUsablePair, inspectCertificate, uncoveredHosts } from './inspect.js'
import { writeAtomic, writePrivateFile } from './self-signed.js'
import type { CertificatePair } from './source.js'

/** A lock older than this was left by a crashed instance (a live holder refreshes it every minute). */
export const LOCK_STALE_AFTER = 10 * 60_000
const LOCK_REFRESH_EVERY = 60_000

/** HTTP-01 tokens are base64url (RFC 8555 section 8.3); anything else never reaches the disk. */
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/

/** The folder name for a directory URL: its host and port, e.g. `acme-v02.api.letsencrypt.org`. @internal */
export function directoryFolder (directoryUrl: string): string {
  const url = new URL(directoryUrl)
  return (url.port === '' ? url.hostname : `${url.hostname}_${url.port}`).replace(/[^A-Za-z0-9._-]/g, '_')
}

/** A stored pair, with why it is or is not fit to serve and to keep. @internal */
export interface StoredPair {
  pair: CertificatePair
  /** True while the certificate is within its validity period. */
  inDate: boolean
  /** Domains the certificate does not cover (the configuration changed). */
  missing: string[]
}

/** A held lock; `release()` removes it if it is still ours. @internal */
export interface Lock {
  release (): Promise<void>
}

/** Who holds a lock, from its content. @internal */
export interface LockHolder {
  pid: number
  host: string
  since: string
}

/** Disk storage of one ACME directory's account, certificate, lock and challenges. @internal */
export class AcmeStore {
  readonly folder: string
  readonly challengeFolder: string

  readonly tlsDir: string

  constructor (tlsDir: string, directoryUrl: string) {
    this.tlsDir = tlsDir
    this.folder = join(tlsDir, 'acme', directoryFolder(directoryUrl))
    this.challengeFolder = join(this.folder, 'challenges')
  }

  private path (name: string): string {
    return join(this.folder, name)
  }

  /** Creates (0700) or checks TLS_DIR and the folders under it: nothing another user could write is used. */
  async ensureFolder (): Promise<void> {
    for (const folder of [this.tlsDir, join(this.tlsDir, 'acme'), this.folder, this.challengeFolder]) {
      await ensurePrivateDir(folder, { variable: 'TLS_DIR' })
    }
  }

  /** The account key, created (ECDSA P-256 by the caller's `create`) on first use. */
  async accountKey (create: () => Promise<string>): Promise<string> {
    await this.ensureFolder()
    try {
      await checkPrivateFile(this.path('account-key.pem'), true)
      return await readFile(this.path('account-key.pem'), 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    const key = await create()
    await this.ensureFolder()
    await writePrivateFile(this.path('account-key.pem'), key)
    return key
  }

  /**
   * The stored certificate and key, or null when there are none or they do not belong together
   * (another instance may be between writing the key and the certificate).
   */
  async readPair (domains: readonly string[], now = Date.now()): Promise<StoredPair | null> {
    let key: string
    let cert: string
    await this.ensureFolder()
    try {
      await checkPrivateFile(this.path('key.pem'), true)
      await checkPrivateFile(this.path('cert.pem'), false)
      key = await readFile(this.path('key.pem'), 'utf8')
      cert = await readFile(this.path('cert.pem'), 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw error
    }
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
    return { pair: { key, cert, info }, inDate, missing: uncoveredHosts(info.sans, domains) }
  }

  /** Stores a new pair: the key first, so that a reader seeing the new certificate finds its key. */
  async writePair (key: string, cert: string): Promise<void> {
    await this.ensureFolder()
    await writePrivateFile(this.path('key.pem'), key)
    await writeAtomic(this.path('cert.pem'), cert, 0o644)
  }

  /**
   * Takes the lock, or returns who holds it. A lock left by a dead process on this host, or not
   * refreshed for LOCK_STALE_AFTER, is taken over.
   */
  async lock (now = Date.now): Promise<Lock | LockHolder> {
    await this.ensureFolder()
    const path = this.path('lock')
    const mine: LockHolder = { pid: process.pid, host: hostname(), since: new Date(now()).toISOString() }
    const token = randomBytes(8).toString('hex')
    const content = JSON.stringify({ ...mine, token })
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(path, 'wx', 0o600)
        try {
          await handle.writeFile(content)
        } finally {
          await handle.close()
        }
        return this.heldLock(path, content)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      const holder = await this.lockHolder(path, now)
      if (holder !== null) return holder
      // Stale: remove it and try once more (if another instance beats us to it, it holds the lock).
      await rm(path, { force: true })
    }
    return (await this.lockHolder(path, now)) ?? { pid: 0, host: 'unknown', since: new Date(now()).toISOString() }
  }

  /** The live holder of the lock, or null when there is none or it is stale. */
  private async lockHolder (path: string, now: () => number): Promise<LockHolder | null> {
    let text: string
    let modified: number
    try {
      text = await readFile(path, 'utf8')
      modified = (await stat(path)).mtimeMs
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw error
    }
    let holder: LockHolder
    try {
      const parsed = JSON.parse(text) as Partial<LockHolder>
      holder = { pid: Number(parsed.pid), host: String(parsed.host), since: String(parsed.since) }
    } catch {
      // Half-written by its creator a moment ago, or garbage: trust it only while it is fresh.
      return now() - modified > LOCK_STALE_AFTER ? null : { pid: 0, host: 'unknown', since: new Date(modified).toISOString() }
    }
    if (now() - modified > LOCK_STALE_AFTER) return null
    if (holder.host === hostname() && !processAlive(holder.pid)) return null
    return holder
  }

  private heldLock (path: string, content: string): Lock {
    // Refreshing the lock's mtime tells other instances that its holder is alive.
    const refresh = setInterval(() => {
      const t = new Date()
      utimes(path, t, t).catch(() => {})
    }, LOCK_REFRESH_EVERY)
    refresh.unref()
    return {
      async release () {
        clearInterval(refresh)
        try {
          if (await readFile(path, 'utf8') === content) await unlink(path)
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
        }
      }
    }
  }

  /** Publishes an HTTP-01 answer for every instance sharing TLS_DIR. */
  async putChallenge (token: string, keyAuthorization: string): Promise<void> {
    if (!TOKEN.test(token)) throw new Error(`the ACME server sent an HTTP-01 token that is not base64url: ${JSON.stringify(token.slice(0, 40))}`)
    await this.ensureFolder()
    await writeAtomic(join(this.challengeFolder, token), keyAuthorization, 0o644)
  }

  async removeChallenge (token: string): Promise<void> {
    if (TOKEN.test(token)) await rm(join(this.challengeFolder, token), { force: true })
  }

  /** The answer for a token published by any instance, or null. */
  async challenge (token: string): Promise<string | null> {
    if (!TOKEN.test(token)) return null
    try {
      return await readFile(join(this.challengeFolder, token), 'utf8')
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

function processAlive (pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
