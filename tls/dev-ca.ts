/**
 * The local development CA, as mkcert and Caddy make one: an ECDSA P-256 root created once under
 * TLS_DIR/ca/ (key 0600), which issues the development certificates. Trusting the root once
 * (`npx fastify-secure-https trust`) trusts every certificate it issues later, so a new leaf (new
 * names in ALLOWED_HOSTS, a renewal) keeps working in the browser.
 *
 * The root carries X.509 name constraints: it can only issue for local names (localhost, the
 * reserved test TLDs, loopback and private addresses) and for the names ALLOWED_HOSTS held when it
 * was made. Whoever steals its key can impersonate those names to this machine's browsers, not
 * every site on the web. Chromium, Firefox (NSS), OpenSSL and Node enforce the constraints.
 *
 * Knows nothing of Fastify.
 */
import { createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto'
import { createRequire } from 'node:module'
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { hostname, userInfo } from 'node:os'
import { isIP } from 'node:net'
import { dirname, join } from 'node:path'
import { ERR_CERTIFICATE, ERR_INSECURE_STORAGE } from '../errors.ts'
import { devCaPaths } from './dev-ca-paths.ts'
import { isHostname } from '../schemas/common.ts'
import { checkPrivateDir, checkPrivateFile, ensurePrivateDir } from '../storage/private-dir.ts'
import { buildCertificate, certificateParts, generateEcdsaKey, ipBytes, permittedNames, privateKeyPem, type DistinguishedName } from './x509.ts'

/** The common name of every development CA the suite makes (trust stores list it by this). */
export const DEV_CA_NAME = 'fastify-secure-https development CA'
/** Lifetime of the CA. */
export const DEV_CA_DAYS = 3650
/** A CA with fewer days left is replaced (and must be trusted again). */
export const DEV_CA_RENEW_DAYS = 30

/**
 * Names the CA may always issue for: the loopback name, the TLDs reserved for testing and local
 * use (RFC 2606, RFC 6761, RFC 6762, RFC 8375, ICANN's .internal). A DNS constraint covers the name
 * and every name under it.
 */
export const DEV_CA_DNS: readonly string[] = Object.freeze(['localhost', 'test', 'example', 'invalid', 'local', 'internal', 'home.arpa'])
/** Address ranges the CA may always issue for: loopback, private, link-local and CGNAT (Tailscale). */
export const DEV_CA_IP: readonly string[] = Object.freeze([
  '127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10',
  '::1/128', 'fc00::/7', 'fe80::/10'
])

const DAY = 86_400_000

/** A development CA, loaded or made. */
export interface DevCa {
  /** The root certificate, PEM: what trust stores get. */
  cert: string
  key: KeyObject
  /** TLS_DIR/ca/cert.pem, absolute. */
  certPath: string
  /** TLS_DIR/ca/key.pem, absolute (0600). */
  keyPath: string
  /** SHA-256 fingerprint, colon-separated hex. */
  fingerprint: string
  /** Its subject Name (DER), the issuer field of every leaf. */
  subject: Buffer
  /** The name constraints it carries. */
  permitted: { dns: string[], ip: string[] }
  notAfter: Date
  /** True when this call made it (the trust stores do not know it yet). */
  created: boolean
  /** Why a new one was made (no CA yet, expiring, unreadable), when `created`. */
  reason?: string
}

function inCidr (address: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/') as [string, string]
  if (isIP(address) !== isIP(base)) return false
  const a = ipBytes(address)
  const b = ipBytes(base)
  let left = Number(bits)
  for (let i = 0; left > 0; i++, left -= 8) {
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff
    if (((a[i] as number) & mask) !== ((b[i] as number) & mask)) return false
  }
  return true
}

/** True when name constraints with these permitted subtrees allow the host. */
export function permits (permitted: { dns: readonly string[], ip: readonly string[] }, host: string): boolean {
  if (isIP(host) !== 0) return permitted.ip.some((cidr) => inCidr(host, cidr))
  return permitted.dns.some((dns) => host === dns || host.endsWith(`.${dns}`))
}

let tldts: typeof import('tldts') | undefined
/**
 * True for a public suffix (`co.uk`, `github.io`): a DNS constraint on one would let the CA issue
 * for every site registered under it. tldts and its list load only when a name outside the local
 * ones is looked at.
 */
function isPublicSuffix (name: string): boolean {
  tldts ??= createRequire(import.meta.url)('tldts') as typeof import('tldts')
  const parsed = tldts.parse(name, { allowPrivateDomains: true })
  return parsed.domain === null || parsed.publicSuffix === name
}

/**
 * The constraints of a new CA: the local names, plus the configured exact hosts outside them.
 *
 * A DNS constraint permits the name and every name under it, so only exact host names of two
 * labels or more become one. A wildcard (`*.co.uk` would become `co.uk`: every bank in the UK), a
 * single label (`com`), a public suffix (`co.uk`, `github.io`) or anything that is not a host name
 * (a path, a port) adds nothing, whatever the caller passes.
 */
export function constraintsFor (hosts: readonly string[]): { dns: string[], ip: string[] } {
  const permitted = { dns: [...DEV_CA_DNS], ip: [...DEV_CA_IP] }
  for (const raw of hosts) {
    const host = raw.trim().toLowerCase()
    if (!isHostname(host) || permits(permitted, host)) continue
    if (isIP(host) === 0 && (!host.includes('.') || isPublicSuffix(host))) continue
    if (isIP(host) === 4) permitted.ip.push(`${host}/32`)
    else if (isIP(host) === 6) permitted.ip.push(`${host}/128`)
    else permitted.dns.push(host)
  }
  return permitted
}

function caName (): DistinguishedName {
  let who = 'developer'
  try {
    who = `${userInfo().username}@${hostname()}`
  } catch {
    // No passwd entry (some containers): the generic name will do.
  }
  // The OU tells one machine's root from another's in a trust store's list, as mkcert's does.
  return { commonName: DEV_CA_NAME, organization: DEV_CA_NAME, organizationalUnit: who.slice(0, 64) }
}

/**
 * Why a CA found on disk must not be used, or null. Whatever sits in TLS_DIR/ca is what `trust`
 * installs and what issues the development certificates, so it must be the suite's own kind: a
 * self-signed root named DEV_CA_NAME whose name constraints permit localhost and nothing wider than
 * `constraintsFor` would write (a root without constraints could impersonate every site).
 */
function unfitReason (cert: X509Certificate, permitted: { dns: readonly string[], ip: readonly string[] }): string | null {
  if (!cert.subject.split('\n').includes(`CN=${DEV_CA_NAME}`)) return `its subject is "${cert.subject.replace(/\n/g, ', ')}", not CN=${DEV_CA_NAME}`
  if (cert.subject !== cert.issuer || !cert.verify(cert.publicKey)) return 'it is not a self-signed root'
  if (permitted.dns.length === 0 && permitted.ip.length === 0) return 'it carries no name constraints, so it could issue certificates for any site'
  if (!permits(permitted, 'localhost') || !permits(permitted, '127.0.0.1')) return 'its name constraints do not permit localhost and 127.0.0.1'
  const wide = [
    ...permitted.dns.filter((dns) => !DEV_CA_DNS.includes(dns) && (!dns.includes('.') || !isHostname(dns) || isPublicSuffix(dns))),
    ...permitted.ip.filter((cidr) => !DEV_CA_IP.includes(cidr) && !cidr.endsWith(isIP(cidr.split('/')[0] as string) === 4 ? '/32' : '/128'))
  ]
  if (wide.length > 0) return `its name constraints permit ${wide.map((name) => name === '' ? 'every name' : name).join(', ')}, wider than a development CA needs`
  return null
}

/** The CA in TLS_DIR/ca/, checked, or null when there is none or it is unusable (with the reason). */
async function readCa (dir: string, now: number): Promise<{ ca: DevCa | null, reason: string }> {
  const { folder, certPath, keyPath } = devCaPaths(dir)
  let certPem: string
  let keyPem: string
  try {
    await checkPrivateDir(folder, { variable: 'TLS_DIR' })
    await checkPrivateFile(keyPath, true)
    await checkPrivateFile(certPath, false)
    certPem = await readFile(certPath, 'utf8')
    keyPem = await readFile(keyPath, 'utf8')
  } catch (error) {
    if (error instanceof ERR_INSECURE_STORAGE) throw error
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ca: null, reason: 'no development CA yet' }
    return { ca: null, reason: `the development CA is unreadable (${(error as Error).message})` }
  }
  try {
    const cert = new X509Certificate(certPem)
    const key = createPrivateKey(keyPem)
    if (!cert.ca || !cert.checkPrivateKey(key)) return { ca: null, reason: 'the development CA\'s key does not match its certificate' }
    const notAfter = new Date(cert.validTo)
    if (notAfter.getTime() - now < DEV_CA_RENEW_DAYS * DAY) return { ca: null, reason: `the development CA expires on ${notAfter.toISOString()}` }
    const permitted = permittedNames(cert.raw)
    const unfit = unfitReason(cert, permitted)
    if (unfit !== null) return { ca: null, reason: `the development CA is not one this suite would make: ${unfit}` }
    return {
      ca: {
        cert: certPem,
        key,
        certPath,
        keyPath,
        fingerprint: cert.fingerprint256,
        subject: certificateParts(cert.raw).subject,
        permitted,
        notAfter,
        created: false
      },
      reason: ''
    }
  } catch (error) {
    return { ca: null, reason: `the development CA cannot be parsed (${(error as Error).message})` }
  }
}

/**
 * Loads the CA of TLS_DIR, or makes one: on first use, or when the old one is unusable or about to
 * expire (then the old folder is kept beside it as `ca.replaced-TIME`, and the new root must be
 * trusted again). Two processes starting at once agree on one CA: each writes its own into a
 * temporary folder and renames it into place; the loser reads the winner's.
 * @throws ERR_SECURE_HTTPS_INSECURE_STORAGE when TLS_DIR or the CA's files are not private
 */
export async function loadOrCreateDevCa (dir: string, hosts: readonly string[] = [], now = Date.now()): Promise<DevCa> {
  await ensurePrivateDir(dir, { variable: 'TLS_DIR' })
  const found = await readCa(dir, now)
  if (found.ca !== null) return found.ca
  const { folder, certPath, keyPath } = devCaPaths(dir)
  const permitted = constraintsFor(hosts)
  const keys = await generateEcdsaKey()
  const cert = buildCertificate({
    subject: caName(),
    publicKey: keys.publicKey,
    selfKey: keys.privateKey,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + DEV_CA_DAYS * DAY),
    ca: true,
    permitted
  })
  const temp = `${folder}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  await mkdir(temp, { mode: 0o700 })
  try {
    await writeFile(join(temp, 'key.pem'), privateKeyPem(keys.privateKey), { mode: 0o600 })
    await writeFile(join(temp, 'cert.pem'), cert, { mode: 0o644 })
    if (found.reason !== 'no development CA yet') {
      await rename(folder, `${folder}.replaced-${new Date(now).toISOString().replace(/[:.]/g, '-')}`).catch(() => {})
    }
    try {
      await rename(temp, folder)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error
      // Another process made one first: use it.
      const winner = await readCa(dir, now)
      if (winner.ca === null) throw new ERR_CERTIFICATE(`the development CA in ${folder} cannot be used (${winner.reason}); delete the folder to have a new one made`)
      return winner.ca
    }
  } finally {
    await rm(temp, { recursive: true, force: true })
  }
  const info = new X509Certificate(cert)
  return {
    cert,
    key: keys.privateKey,
    certPath,
    keyPath,
    fingerprint: info.fingerprint256,
    subject: certificateParts(info.raw).subject,
    permitted,
    notAfter: new Date(info.validTo),
    created: true,
    reason: found.reason
  }
}

/** The CA of TLS_DIR if there is a usable one; never makes one. */
export async function findDevCa (dir: string, now = Date.now()): Promise<DevCa | null> {
  return (await readCa(dir, now)).ca
}

/** A development CA that TLS_DIR held before, or holds but will not use: one to take out of the trust stores. */
export interface RetiredDevCa {
  cert: string
  certPath: string
  fingerprint: string
  /** Why it is not the CA in use: replaced (and when), or why the one in TLS_DIR/ca is unfit. */
  reason: string
}

async function readRetired (certPath: string, reason: string): Promise<RetiredDevCa | null> {
  try {
    const cert = await readFile(certPath, 'utf8')
    const info = new X509Certificate(cert)
    // Only roots named as this suite names them: a trust store is never asked about anything else.
    if (!info.ca || !info.subject.split('\n').includes(`CN=${DEV_CA_NAME}`)) return null
    return { cert, certPath, fingerprint: info.fingerprint256, reason }
  } catch {
    return null
  }
}

/**
 * The development CAs of TLS_DIR that are not in use: the one in TLS_DIR/ca when it is unfit (not
 * one the suite would make, or expiring), and every one kept as `ca.replaced-TIME`. A root replaced
 * because it was unfit (no name constraints, or wider ones) stays trusted by the browsers that
 * trusted it until it is removed: `trust` and `trust --uninstall` remove these.
 */
export async function retiredDevCas (dir: string, now = Date.now()): Promise<RetiredDevCa[]> {
  const { folder, certPath } = devCaPaths(dir)
  const retired: RetiredDevCa[] = []
  const current = await readCa(dir, now).catch((error: unknown) => ({ ca: null, reason: (error as Error).message }))
  if (current.ca === null && current.reason !== 'no development CA yet') {
    const found = await readRetired(certPath, current.reason)
    if (found !== null) retired.push(found)
  }
  const prefix = 'ca.replaced-'
  const entries = await readdir(dirname(folder)).catch(() => [] as string[])
  for (const entry of entries.filter((name) => name.startsWith(prefix)).sort()) {
    const found = await readRetired(join(dirname(folder), entry, 'cert.pem'), `replaced ${entry.slice(prefix.length)}`)
    if (found !== null) retired.push(found)
  }
  return retired
}

/** True when the certificate (leaf first) was issued by this CA. */
export function issuedBy (ca: Pick<DevCa, 'cert'>, certPem: string): boolean {
  try {
    const leaf = new X509Certificate(certPem)
    const root = new X509Certificate(ca.cert)
    return leaf.checkIssued(root) && leaf.verify(root.publicKey)
  } catch {
    return false
  }
}
