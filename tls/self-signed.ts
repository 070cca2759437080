/**
 * Self-signed development certificates: ECDSA P-256, generated with WebCrypto (OpenSSL underneath, a
 * few milliseconds) and signed with @peculiar/x509, cached under TLS_DIR and reused until the names
 * change or fewer than 30 days remain.
 */
import { randomBytes, webcrypto } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { ERR_INSECURE_STORAGE } from '../errors.js'
import { checkPrivateFile, ensurePrivateDir } from '../storage/private-dir.js'
import { assertUsablePair, uncoveredHosts, type CertificateInfo } from './inspect.js'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

/** Names every development certificate covers. */
export const DEFAULT_SELF_SIGNED_HOSTS = ['localhost', '127.0.0.1', '::1'] as const
/** Lifetime of a generated certificate. */
export const SELF_SIGNED_DAYS = 90
/** A cached certificate with fewer days left is replaced. */
export const SELF_SIGNED_RENEW_DAYS = 30

const DAY = 86_400_000

/** A key and certificate in PEM. */
export interface PemPair {
  key: string
  cert: string
}

/** The names a self-signed certificate for these hosts covers, defaults first, deduplicated. */
export function selfSignedHosts (hosts: readonly string[]): string[] {
  return [...new Set([...DEFAULT_SELF_SIGNED_HOSTS, ...hosts])]
}

/** Generates a self-signed ECDSA P-256 certificate for the hosts. */
export async function generateSelfSigned (hosts: readonly string[], days = SELF_SIGNED_DAYS, now = Date.now()): Promise<PemPair> {
  const names = selfSignedHosts(hosts)
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const serial = randomBytes(16)
  serial[0] = (serial[0] as number) & 0x7f
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: 'CN=fastify-secure-https development certificate',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * DAY),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: isIP(value) === 0 ? 'dns' as const : 'ip' as const, value }))),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)
    ]
  })
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey)
  const key = x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')
  return { key: `${key}\n`, cert: `${cert.toString('pem')}\n` }
}

/** Why a cached pair cannot be reused, or null when it can. */
export function staleReason (pair: PemPair, hosts: readonly string[], now = Date.now()): string | null {
  let info: CertificateInfo
  try {
    // Also checks the key belongs to the certificate: a crash between writing the two files must
    // not leave a pair that fails in setSecureContext() at every start.
    info = assertUsablePair(pair.cert, pair.key, undefined, now)
  } catch (error) {
    return `the cached pair is unusable (${(error as Error).message})`
  }
  const missing = uncoveredHosts(info.sans, selfSignedHosts(hosts))
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
  /** True when a new pair was generated; `reason` says why. */
  generated: boolean
  reason?: string
}

/**
 * Returns the cached pair under `dir/self-signed/` when it covers the hosts and has time left,
 * otherwise generates and stores a new one (key file mode 0600).
 */
export async function loadOrCreateSelfSigned (dir: string, hosts: readonly string[], now = Date.now()): Promise<SelfSignedResult> {
  const folder = join(dir, 'self-signed')
  const keyPath = join(folder, 'key.pem')
  const certPath = join(folder, 'cert.pem')
  // TLS_DIR and its key are checked before anything in them is read: a key another local user could
  // have written is never served.
  await ensurePrivateDir(dir, { variable: 'TLS_DIR' })
  await ensurePrivateDir(folder, { variable: 'TLS_DIR' })
  let reason = 'no cached certificate'
  try {
    await checkPrivateFile(keyPath, true)
    await checkPrivateFile(certPath, false)
    const cached = { key: await readFile(keyPath, 'utf8'), cert: await readFile(certPath, 'utf8') }
    const stale = staleReason(cached, hosts, now)
    if (stale === null) return { ...cached, generated: false }
    reason = stale
  } catch (error) {
    if (error instanceof ERR_INSECURE_STORAGE) throw error
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') reason = `the cache is unreadable (${(error as Error).message})`
  }
  const pair = await generateSelfSigned(hosts, SELF_SIGNED_DAYS, now)
  await writePrivateFile(keyPath, pair.key)
  await writePrivateFile(certPath, pair.cert)
  return { ...pair, generated: true, reason }
}
