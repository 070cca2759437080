/**
 * Development certificates (TLS_MODE=self-signed): ECDSA P-256 leaves issued by the local
 * development CA (tls/dev-ca.ts), cached under TLS_DIR/self-signed/ and reused until the names
 * change, the CA changes or fewer than 30 days remain. Trusting the CA once trusts every leaf.
 *
 * `generateSelfSigned` still makes a standalone self-signed certificate, for tests and tools that
 * need a pair in a millisecond and trust it by pinning.
 */
import { createPublicKey, randomBytes } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'
import { ERR_CERTIFICATE, ERR_INSECURE_STORAGE } from '../errors.ts'
import { checkPrivateFile, ensurePrivateDir } from '../storage/private-dir.ts'
import { issuedBy, loadOrCreateDevCa, permits, type DevCa } from './dev-ca.ts'
import { assertUsablePair, uncoveredHosts, type CertificateInfo } from './inspect.ts'
import { SELF_SIGNED_RENEW_DAYS } from './source.ts'
import { buildCertificate, generateEcdsaKey, privateKeyPem } from './x509.ts'

/** Names every development certificate covers. */
export const DEFAULT_SELF_SIGNED_HOSTS = ['localhost', '127.0.0.1', '::1'] as const
/** Lifetime of a development certificate: within the 398 days browsers accept. */
export const SELF_SIGNED_DAYS = 365

const DAY = 86_400_000

/** A key and certificate in PEM. */
export interface PemPair {
  key: string
  cert: string
}

/** The names a development certificate for these hosts covers, defaults first, deduplicated. */
export function selfSignedHosts (hosts: readonly string[]): string[] {
  return [...new Set([...DEFAULT_SELF_SIGNED_HOSTS, ...hosts])]
}

function leafSubject (names: readonly string[]): { commonName: string } {
  // The CN is for people reading the certificate; clients match the SANs. A DNS name there stays
  // inside the CA's name constraints (OpenSSL checks a CN that looks like a host name against them).
  return { commonName: names.find((name) => isIP(name) === 0) ?? 'localhost' }
}

/**
 * Generates a standalone self-signed ECDSA P-256 certificate for the hosts (and localhost,
 * 127.0.0.1, ::1). Clients must pin it; for browsers, TLS_MODE=self-signed issues from the
 * development CA instead, which can be trusted once.
 */
export async function generateSelfSigned (hosts: readonly string[], days = 90, now = Date.now()): Promise<PemPair> {
  const names = selfSignedHosts(hosts)
  const keys = await generateEcdsaKey()
  const cert = buildCertificate({
    subject: { commonName: 'fastify-secure-https self-signed certificate' },
    publicKey: keys.publicKey,
    selfKey: keys.privateKey,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * DAY),
    ca: false,
    hosts: names
  })
  return { key: privateKeyPem(keys.privateKey), cert }
}

/** Issues a leaf for the hosts from the development CA; names outside its constraints are left out. */
export async function issueDevelopmentCertificate (ca: Pick<DevCa, 'key' | 'subject' | 'permitted'>, hosts: readonly string[], days = SELF_SIGNED_DAYS, now = Date.now()): Promise<PemPair> {
  const names = coverableHosts(ca, hosts)
  // A leaf without SANs matches no name in any client; such a CA is replaced before it gets here.
  if (names.length === 0) throw new ERR_CERTIFICATE(`the development CA may issue for none of ${selfSignedHosts(hosts).join(', ')}; delete TLS_DIR/ca to have a new one made`)
  const keys = await generateEcdsaKey()
  const cert = buildCertificate({
    subject: leafSubject(names),
    publicKey: keys.publicKey,
    issuer: { subject: ca.subject, key: ca.key, publicKey: createPublicKey(ca.key) },
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * DAY),
    ca: false,
    hosts: names
  })
  return { key: privateKeyPem(keys.privateKey), cert }
}

/** The names of `selfSignedHosts(hosts)` the CA may issue for. */
export function coverableHosts (ca: Pick<DevCa, 'permitted'>, hosts: readonly string[]): string[] {
  return selfSignedHosts(hosts).filter((host) => permits(ca.permitted, host))
}

/** The names of `hosts` outside the CA's name constraints: no development certificate can cover them. */
export function excludedHosts (ca: Pick<DevCa, 'permitted'>, hosts: readonly string[]): string[] {
  return selfSignedHosts(hosts).filter((host) => !permits(ca.permitted, host))
}

/**
 * Why a cached pair cannot be reused, or null when it can. With a CA, the pair must also have
 * been issued by it, and only the names it may issue for are required.
 */
export function staleReason (pair: PemPair, hosts: readonly string[], now = Date.now(), ca?: Pick<DevCa, 'cert' | 'permitted'>): string | null {
  let info: CertificateInfo
  try {
    // Also checks the key belongs to the certificate: a crash between writing the two files must
    // not leave a pair that fails in setSecureContext() at every start.
    info = assertUsablePair(pair.cert, pair.key, undefined, now)
  } catch (error) {
    return `the cached pair is unusable (${(error as Error).message})`
  }
  if (ca !== undefined && !issuedBy(ca, pair.cert)) return 'it was not issued by the current development CA'
  const missing = uncoveredHosts(info.sans, ca === undefined ? selfSignedHosts(hosts) : coverableHosts(ca, hosts))
  if (missing.length > 0) return `it does not cover ${missing.join(', ')}`
  const daysLeft = (info.notAfter.getTime() - now) / DAY
  if (daysLeft < SELF_SIGNED_RENEW_DAYS) return `it has ${Math.max(0, Math.floor(daysLeft))} days left`
  return null
}

/** Writes a file atomically (a temporary file with the final mode, then rename). @internal */
export async function writeAtomic (path: string, content: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  await writeFile(temp, content, { mode })
  await rename(temp, path)
}

/** Writes a file readable by its owner only, atomically. @internal */
export async function writePrivateFile (path: string, content: string): Promise<void> {
  await writeAtomic(path, content, 0o600)
}

/** Result of `loadOrCreateSelfSigned`. */
export interface SelfSignedResult extends PemPair {
  /** True when a new pair was issued; `reason` says why. */
  generated: boolean
  reason?: string
  /** The development CA that issued it. */
  ca: DevCa
  /** Configured names the CA may not issue for (outside its name constraints), left out of the leaf. */
  excluded: string[]
}

/**
 * Returns the cached leaf under `dir/self-signed/` when the development CA issued it, it covers
 * the hosts and has time left; otherwise issues and stores a new one (key file mode 0600). Makes
 * the CA on first use.
 */
export async function loadOrCreateSelfSigned (dir: string, hosts: readonly string[], now = Date.now()): Promise<SelfSignedResult> {
  const folder = join(dir, 'self-signed')
  const keyPath = join(folder, 'key.pem')
  const certPath = join(folder, 'cert.pem')
  // TLS_DIR and its key are checked before anything in them is read: a key another local user could
  // have written is never served.
  await ensurePrivateDir(dir, { variable: 'TLS_DIR' })
  const ca = await loadOrCreateDevCa(dir, hosts, now)
  await ensurePrivateDir(folder, { variable: 'TLS_DIR' })
  const excluded = excludedHosts(ca, hosts)
  let reason = !ca.created ? 'no cached certificate' : ca.reason === 'no development CA yet' ? 'the development CA was just made' : `the development CA was replaced: ${ca.reason ?? ''}`
  try {
    await checkPrivateFile(keyPath, true)
    await checkPrivateFile(certPath, false)
    const cached = { key: await readFile(keyPath, 'utf8'), cert: await readFile(certPath, 'utf8') }
    const stale = staleReason(cached, hosts, now, ca)
    if (stale === null) return { ...cached, generated: false, ca, excluded }
    if (!ca.created) reason = stale
  } catch (error) {
    if (error instanceof ERR_INSECURE_STORAGE) throw error
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && !ca.created) reason = `the cache is unreadable (${(error as Error).message})`
  }
  const pair = await issueDevelopmentCertificate(ca, hosts, SELF_SIGNED_DAYS, now)
  await writePrivateFile(keyPath, pair.key)
  await writePrivateFile(certPath, pair.cert)
  return { ...pair, generated: true, reason, ca, excluded }
}
