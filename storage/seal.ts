/**
 * Values at rest in a shared store (Redis) are sealed: AES-256-GCM with a key derived (HKDF-SHA256)
 * from a configured secret (TLS_STORAGE_KEYS), and the storage key as additional data.
 *
 * Why, when the filesystem stores the same values in clear: a file under TLS_DIR is protected by its
 * owner and mode (0600 in a 0700 folder, checked at every read); a Redis value is readable and
 * writable by everything that can reach the Redis (other apps sharing it, backups and RDB dumps, a
 * replica, anyone on the network when it has no password). Sealing keeps the private keys secret
 * there, and authenticates every value: someone who can write to Redis cannot plant a certificate
 * and key, nor an HTTP-01 or TLS-ALPN-01 answer that would make this fleet validate their own order
 * for our names. Binding the storage key as additional data stops a sealed value from being moved
 * to another key (a challenge answer replayed as a certificate).
 *
 * Format: `v1.<key id>.<iv>.<ciphertext and tag>` (base64url), the key id being the first 8 hex
 * digits of SHA-256 of the derived key, so that rotation (new key first, old one second) finds the
 * right key at once. Knows nothing of Fastify.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto'
import { ERR_STORAGE_INTEGRITY } from '../errors.ts'

/** A derived sealing key. @internal */
export interface SealKey {
  id: string
  key: Buffer
}

const VERSION = 'v1'
const SALT = 'fastify-secure-https tls storage'
const INFO = 'aes-256-gcm v1'

/** Derives sealing keys from secrets (32 random bytes each, newest first). @internal */
export function deriveSealKeys (secrets: readonly Buffer[]): SealKey[] {
  return secrets.map((secret) => {
    const key = Buffer.from(hkdfSync('sha256', secret, SALT, INFO, 32))
    return { id: createHash('sha256').update(key).digest('hex').slice(0, 8), key }
  })
}

/** Seals `plaintext` for `name` with the newest key. @internal */
export function seal (keys: readonly SealKey[], name: string, plaintext: string): string {
  const newest = keys[0]
  if (newest === undefined) throw new ERR_STORAGE_INTEGRITY('no TLS_STORAGE_KEYS to seal with; set TLS_STORAGE_KEYS (openssl rand -base64 32)')
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', newest.key, iv)
  cipher.setAAD(Buffer.from(name, 'utf8'))
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()])
  return `${VERSION}.${newest.id}.${iv.toString('base64url')}.${body.toString('base64url')}`
}

/**
 * Opens a sealed value stored under `name`.
 * @throws ERR_SECURE_HTTPS_STORAGE_INTEGRITY when it is malformed, sealed with an unknown key, or
 * fails authentication (changed, or moved from another key).
 * @internal
 */
export function open (keys: readonly SealKey[], name: string, sealed: string): string {
  const parts = sealed.split('.')
  if (parts.length !== 4 || parts[0] !== VERSION) {
    throw new ERR_STORAGE_INTEGRITY(`the stored value of ${name} is not sealed by fastify-secure-https (${parts[0]?.slice(0, 8) ?? ''}...); something else wrote it`)
  }
  const [, id, ivText, bodyText] = parts as [string, string, string, string]
  const entry = keys.find((candidate) => candidate.id === id)
  if (entry === undefined) {
    throw new ERR_STORAGE_INTEGRITY(`the stored value of ${name} was sealed with a key this instance does not have (key id ${id.slice(0, 8)}); give every instance the same TLS_STORAGE_KEYS, newest first`)
  }
  const iv = Buffer.from(ivText, 'base64url')
  const body = Buffer.from(bodyText, 'base64url')
  if (iv.length !== 12 || body.length < 16) throw new ERR_STORAGE_INTEGRITY(`the stored value of ${name} is truncated`)
  try {
    const decipher = createDecipheriv('aes-256-gcm', entry.key, iv)
    decipher.setAAD(Buffer.from(name, 'utf8'))
    decipher.setAuthTag(body.subarray(body.length - 16))
    return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString('utf8')
  } catch {
    throw new ERR_STORAGE_INTEGRITY(`the stored value of ${name} failed authentication: it was changed or moved by something other than fastify-secure-https; it is ignored`)
  }
}
