/**
 * `fastify-secure-https keygen`: a fresh session key for SESSION_KEYS.
 */
import { createHash, randomBytes } from 'node:crypto'
import { isLowEntropy, SESSION_KEY_BYTES } from '../schemas/secure-session.ts'

/**
 * A new random 32-byte session key in base64, as SESSION_KEYS takes it. Put it first in
 * SESSION_KEYS to rotate: cookies are then written with it and still read with the older keys.
 */
export function generateSessionKey (): string {
  for (;;) {
    const key = randomBytes(SESSION_KEY_BYTES)
    // Never happens in practice (fewer than 12 distinct bytes out of 32 random ones), but the
    // config would refuse such a key, so keygen must never print one.
    if (!isLowEntropy(key)) return key.toString('base64')
  }
}

/** Short SHA-256 fingerprint of a session key: safe to print, share and compare. */
export function keyFingerprint (key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16)
}
