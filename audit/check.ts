/**
 * `fastify-secure-https check URL`: the live audit of a running site, from the outside, with
 * nothing but Node's own TLS: which protocol versions it offers, the suite it negotiates, its
 * certificate chain, HSTS, the HTTP to HTTPS redirect and the flags of its cookies. Every finding
 * is a check with a stable id, documented in docs/check.md.
 */
import { X509Certificate } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { connect as netConnect, isIP, type LookupFunction } from 'node:net'
import {
  checkServerIdentity,
  connect as tlsConnect,
  createServer as createTlsServer,
  rootCertificates,
  type ConnectionOptions,
  type DetailedPeerCertificate,
  type SecureVersion,
  type TLSSocket
} from 'node:tls'
import { isLocalHostname } from '../schemas/common.ts'
import { PRELOAD_MIN_MAX_AGE } from '../schemas/hsts.ts'
import { inspectCertificate } from '../tls/inspect.ts'
import { HSTS_MIN_RECOMMENDED, LIVE_EXPIRY_WARNING_DAYS, siteCheckIds, siteChecks, type SiteCheckId } from './checks.ts'
import { result, summarize, type CheckResult, type ReportSummary } from './report.ts'

const DAY = 86_400_000

/** The TLS versions probed, oldest first. */
export const probedVersions = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const satisfies readonly SecureVersion[]

/** Options of `checkSite`. */
export interface CheckSiteOptions {
  /** Extra CA certificates to trust (PEM), besides the bundled and system roots. */
  ca?: string | Buffer
  /** Port of the plain HTTP redirect to test; default 80. */
  httpPort?: number
  /**
   * Milliseconds allowed for each connection and request, from start to end (a server that keeps
   * sending a byte at a time is cut too); default 5000, at most 2147483647.
   */
  timeout?: number
  /**
   * Milliseconds allowed for the whole audit; default 60000, or 12 times `timeout` when that is
   * more. Probes still running then are cut, and what they would have told is reported as not
   * checked.
   */
  deadline?: number
  /**
   * IP address to connect to instead of resolving the URL's host; the host name is still sent as
   * SNI and Host. For a site not yet in DNS, or a test on loopback under a real name.
   */
  connectTo?: string
}

/** One protocol version probe. */
export interface ProtocolProbe {
  version: typeof probedVersions[number]
  /** null when it could not be tested (`note` says why). */
  offered: boolean | null
  /** The suite the server picked, when offered. */
  cipher?: string
  note?: string
}

/** What the server's certificate says. */
export interface SiteCertificate {
  subject: string
  issuer: string
  sans: string[]
  notBefore: string
  notAfter: string
  daysLeft: number
  keyType: string
  fingerprint: string
  /** The chain as sent, leaf first: subject and issuer of each. */
  chain: Array<{ subject: string, issuer: string }>
  trusted: boolean
  /** OpenSSL's reason when not trusted, e.g. DEPTH_ZERO_SELF_SIGNED_CERT. */
  trustError: string | null
  validForHost: boolean
}

/** A cookie's flags (never its value). */
export interface SiteCookie {
  name: string
  secure: boolean
  httpOnly: boolean
  sameSite: string | null
  path: string | null
  domain: string | null
  maxAge: string | null
  expires: string | null
}

/** What `checkSite` returns. */
export interface SiteReport extends ReportSummary {
  url: string
  host: string
  port: number
  /** The address connected to, when --connect-to gave one. */
  connectTo: string | null
  reachable: boolean
  protocols: ProtocolProbe[]
  negotiated: { protocol: string | null, cipher: string, alpn: string | null } | null
  certificate: SiteCertificate | null
  hsts: { header: string | null, maxAge: number | null, includeSubDomains: boolean, preload: boolean, invalid?: string }
  redirect: { url: string, status: number | null, location: string | null, error: string | null }
  cookies: SiteCookie[]
  checks: CheckResult[]
}

interface Target {
  url: URL
  /** Host name without IPv6 brackets. */
  hostname: string
  port: number
  path: string
  lookup: LookupFunction | undefined
  ca: Array<string | Buffer> | undefined
  timeout: number
  /** Date.now() past which no probe may run. */
  deadline: number
}

/**
 * Milliseconds a probe may take: its own timeout, or what is left of the whole run. @internal
 */
export function probeBudget (target: Pick<Target, 'timeout' | 'deadline'>, now = Date.now()): number {
  return Math.max(0, Math.min(target.timeout, target.deadline - now))
}

/**
 * Calls `cut` once the probe's budget is spent, whatever the peer does meanwhile: Node's socket
 * timeouts are idle timeouts, which a server that trickles a byte now and then never trips.
 * Returns the function that cancels it.
 */
function deadlineTimer (target: Target, cut: () => void): () => void {
  const timer = setTimeout(cut, probeBudget(target))
  timer.unref()
  return () => clearTimeout(timer)
}

function fixedLookup (address: string): LookupFunction {
  const family = isIP(address)
  return ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options.all === true) callback(null, [{ address, family }])
    else callback(null, address, family)
  }) as unknown as LookupFunction
}

/** A network failure in words a person can act on. @internal */
export function describeNetworkError (error: NodeJS.ErrnoException, where: string, timeout: number): string {
  switch (error.code) {
    case 'ECONNREFUSED': return `connection refused: nothing listens on ${where}; check the port and that the server is running`
    case 'ENOTFOUND': return `the host name of ${where} does not resolve; check the spelling, or give the address with --connect-to`
    case 'EAI_AGAIN': return `the host name of ${where} could not be resolved (DNS did not answer); try again, or give the address with --connect-to`
    case 'ETIMEDOUT': return `no answer from ${where} within ${timeout} ms; a firewall may drop the packets, or raise --timeout`
    case 'EHOSTUNREACH': case 'ENETUNREACH': return `${where} is unreachable from this machine (${error.code}); check the address and the network`
    case 'ECONNRESET': return `${where} closed the connection during the TLS handshake; does this port speak TLS?`
    case 'ERR_SSL_WRONG_VERSION_NUMBER': case 'ERR_SSL_PACKET_LENGTH_TOO_LONG': return `${where} does not speak TLS (it may be plain HTTP); check the port`
    default: return `${where}: ${error.code ?? ''} ${error.message}`.replace(/\s+/g, ' ').trim()
  }
}

function timeoutError (): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error('timed out')
  error.code = 'ETIMEDOUT'
  return error
}

/** Opens and closes a TCP connection: can the site be reached at all? */
function tcpProbe (target: Target): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: target.hostname, port: target.port, lookup: target.lookup })
    const cancel = deadlineTimer(target, () => socket.destroy(timeoutError()))
    socket.once('connect', () => {
      cancel()
      socket.destroy()
      resolve(null)
    })
    socket.once('error', (error) => {
      cancel()
      resolve(error)
    })
  })
}

interface Handshake {
  protocol: string | null
  cipher: string
  alpn: string | null
  peer: DetailedPeerCertificate
  authorizationError: string | null
}

/** One TLS handshake; resolves with what was negotiated or the error, and closes the socket. */
function handshake (target: Target, extra: ConnectionOptions): Promise<Handshake | NodeJS.ErrnoException> {
  return new Promise((resolve) => {
    const options: ConnectionOptions = {
      host: target.hostname,
      port: target.port,
      rejectUnauthorized: false,
      ...extra
    }
    if (isIP(target.hostname) === 0) options.servername = target.hostname
    if (target.lookup !== undefined) (options as { lookup?: LookupFunction }).lookup = target.lookup
    if (target.ca !== undefined) options.ca = target.ca
    let settled = false
    let cancel = (): void => {}
    const socket: TLSSocket = tlsConnect(options, () => {
      settled = true
      cancel()
      const error = socket.authorizationError as unknown
      resolve({
        protocol: socket.getProtocol(),
        cipher: socket.getCipher().name,
        alpn: typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : null,
        peer: socket.getPeerCertificate(true),
        authorizationError: error === null || error === undefined ? null : String((error as { code?: string }).code ?? error)
      })
      socket.destroy()
    })
    cancel = deadlineTimer(target, () => socket.destroy(timeoutError()))
    socket.once('error', (error) => {
      cancel()
      if (!settled) resolve(error)
    })
  })
}

function isHandshake (value: Handshake | NodeJS.ErrnoException): value is Handshake {
  return !(value instanceof Error)
}

// Old versions need old suites (SHA-1 signatures, CBC), which OpenSSL 3 hides below security level 1.
const LEGACY_CIPHERS = 'DEFAULT:@SECLEVEL=0'
const CBC_CIPHERS = 'SHA1:SHA256:SHA384:!aNULL:!eNULL:@SECLEVEL=0'

let localSupport: Promise<Map<string, string | null>> | undefined

/**
 * Whether this machine's OpenSSL can speak each old version at all: a handshake with itself on
 * loopback. A version it cannot speak cannot be probed, and the report says so rather than
 * "not offered". @internal
 */
export function localVersionSupport (): Promise<Map<string, string | null>> {
  localSupport ??= (async () => {
    const { generateSelfSigned } = await import('../tls/self-signed.ts')
    const pair = await generateSelfSigned([], 1)
    const support = new Map<string, string | null>()
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      support.set(version, await new Promise<string | null>((resolve) => {
        let server: ReturnType<typeof createTlsServer>
        try {
          server = createTlsServer({ key: pair.key, cert: pair.cert, minVersion: version, maxVersion: version, ciphers: LEGACY_CIPHERS }, (socket) => socket.end())
        } catch (error) {
          resolve((error as Error).message)
          return
        }
        server.listen(0, '127.0.0.1', () => {
          const address = server.address()
          const port = typeof address === 'object' && address !== null ? address.port : 0
          const socket = tlsConnect({ host: '127.0.0.1', port, minVersion: version, maxVersion: version, ciphers: LEGACY_CIPHERS, rejectUnauthorized: false }, () => {
            socket.destroy()
            server.close()
            resolve(null)
          })
          socket.once('error', (error: NodeJS.ErrnoException) => {
            server.close()
            resolve(`${error.code ?? ''} ${error.message}`.trim())
          })
        })
      }))
    }
    return support
  })()
  return localSupport
}

async function probeVersion (target: Target, version: typeof probedVersions[number]): Promise<ProtocolProbe> {
  const legacy = version === 'TLSv1' || version === 'TLSv1.1'
  if (legacy) {
    const local = (await localVersionSupport()).get(version)
    if (local !== null && local !== undefined) {
      return { version, offered: null, note: `not tested: this machine's OpenSSL cannot speak ${version} (${local})` }
    }
  }
  const options: ConnectionOptions = { minVersion: version, maxVersion: version }
  if (version !== 'TLSv1.3') options.ciphers = LEGACY_CIPHERS
  const outcome = await handshake(target, options)
  if (isHandshake(outcome)) return { version, offered: true, cipher: outcome.cipher }
  const code = outcome.code ?? ''
  // Anything the server says or does to end the handshake means it does not speak this version;
  // only a timeout leaves the question open.
  if (code === 'ETIMEDOUT') return { version, offered: null, note: `not tested: ${describeNetworkError(outcome, `${target.hostname}:${target.port}`, target.timeout)}` }
  return { version, offered: false, note: code || outcome.message }
}

function certificateChain (peer: DetailedPeerCertificate): Array<{ subject: string, issuer: string }> {
  const chain: Array<{ subject: string, issuer: string }> = []
  const seen = new Set<string>()
  let current: DetailedPeerCertificate | undefined = peer
  while (current !== undefined && current.raw !== undefined && !seen.has(current.fingerprint256)) {
    seen.add(current.fingerprint256)
    const x509 = new X509Certificate(current.raw)
    chain.push({ subject: x509.subject.replace(/\n/g, ', '), issuer: x509.issuer.replace(/\n/g, ', ') })
    current = current.issuerCertificate
  }
  return chain
}

function describeCertificate (target: Target, shake: Handshake, now: number): SiteCertificate | null {
  if (shake.peer.raw === undefined) return null
  const pem = new X509Certificate(shake.peer.raw).toString()
  const info = inspectCertificate(pem)
  const hostError = checkServerIdentity(target.hostname, shake.peer)
  // Node checks the name only once the chain verifies, so a name error means the chain is fine.
  const chainError = shake.authorizationError === 'ERR_TLS_CERT_ALTNAME_INVALID' ? null : shake.authorizationError
  return {
    subject: info.subject,
    issuer: info.issuer,
    sans: info.sans,
    notBefore: info.notBefore.toISOString(),
    notAfter: info.notAfter.toISOString(),
    daysLeft: Math.floor((info.notAfter.getTime() - now) / DAY),
    keyType: info.keyType,
    fingerprint: info.fingerprint,
    chain: certificateChain(shake.peer),
    trusted: chainError === null,
    trustError: chainError,
    validForHost: hostError === undefined
  }
}

interface HttpOutcome {
  status: number
  headers: IncomingHttpHeaders
  /** Each header's values as sent, one per field line: Node joins repeated ones with ", " in `headers`. */
  headersDistinct: NodeJS.Dict<string[]>
}

/**
 * One GET without following redirects; done at the headers. Everything checked is in the status
 * line and the header fields, so the body is never read: a body that never ends cannot hold the
 * audit, nor hide what the headers said.
 */
async function get (target: Target, url: URL, secure: boolean): Promise<HttpOutcome> {
  // Loaded when a site is checked, not when an app imports the package.
  const { request } = secure ? await import('node:https') : await import('node:http')
  return await new Promise((resolve, reject) => {
    const options: import('node:https').RequestOptions = {
      method: 'GET',
      hostname: target.hostname,
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
      headers: { host: url.host, 'user-agent': 'fastify-secure-https-check', accept: 'text/html,*/*;q=0.8' },
      agent: false,
      timeout: target.timeout
    }
    if (target.lookup !== undefined) options.lookup = target.lookup
    if (secure) {
      options.rejectUnauthorized = false
      if (isIP(target.hostname) === 0) options.servername = target.hostname
      if (target.ca !== undefined) options.ca = target.ca
    }
    let settled = false
    const settle = (outcome: HttpOutcome | Error): void => {
      if (settled) return
      settled = true
      cancel()
      if (outcome instanceof Error) reject(outcome)
      else resolve(outcome)
    }
    const req = request(options, (res) => {
      settle({ status: res.statusCode ?? 0, headers: res.headers, headersDistinct: res.headersDistinct })
      // Closing a response before its end makes it emit 'error' (aborted): expected, and settled.
      res.on('error', () => {})
      req.destroy()
    })
    // From the request's start to the end of the headers: a server that trickles them cannot hold the audit.
    const cancel = deadlineTimer(target, () => {
      settle(timeoutError())
      req.destroy()
    })
    req.once('timeout', () => req.destroy(timeoutError()))
    // Every error, not the first only: settle keeps the first outcome, and an unheard 'error' would throw.
    req.on('error', settle)
    req.end()
  })
}

/**
 * Parses a Strict-Transport-Security value as browsers do (RFC 6797 sections 6.1 and 8.1): each
 * directive at most once and a max-age of digits, or the whole header is ignored; then `invalid`
 * says why and no policy is reported. @internal
 */
export function parseHsts (header: string | undefined): SiteReport['hsts'] {
  if (header === undefined) return { header: null, maxAge: null, includeSubDomains: false, preload: false }
  const ignored = (invalid: string): SiteReport['hsts'] => ({ header, maxAge: null, includeSubDomains: false, preload: false, invalid })
  let maxAge: number | null = null
  let includeSubDomains = false
  let preload = false
  const seen = new Set<string>()
  for (const directive of header.split(';')) {
    const [rawName = '', ...rest] = directive.split('=')
    const name = rawName.trim().toLowerCase()
    if (name === '' && rest.length === 0) continue
    if (seen.has(name)) return ignored(`the ${name} directive appears twice, so browsers ignore the whole header`)
    seen.add(name)
    const value = rest.join('=').trim().replace(/^"(.*)"$/, '$1')
    if (name === 'max-age') {
      if (!/^\d+$/.test(value)) return ignored('max-age is not a number of seconds, so browsers ignore the whole header')
      maxAge = Number(value)
    } else if (name === 'includesubdomains') includeSubDomains = true
    else if (name === 'preload') preload = true
  }
  if (maxAge === null) return ignored('it has no max-age, so browsers ignore it')
  return { header, maxAge, includeSubDomains, preload }
}

/** Parses a Set-Cookie line into its flags; the value is left out on purpose. @internal */
export function parseCookieFlags (line: string): SiteCookie {
  const [pair = '', ...attributes] = line.split(';')
  const eq = pair.indexOf('=')
  const cookie: SiteCookie = { name: (eq === -1 ? pair : pair.slice(0, eq)).trim(), secure: false, httpOnly: false, sameSite: null, path: null, domain: null, maxAge: null, expires: null }
  for (const attribute of attributes) {
    const i = attribute.indexOf('=')
    const name = (i === -1 ? attribute : attribute.slice(0, i)).trim().toLowerCase()
    const value = i === -1 ? '' : attribute.slice(i + 1).trim()
    if (name === 'secure') cookie.secure = true
    else if (name === 'httponly') cookie.httpOnly = true
    else if (name === 'samesite') cookie.sameSite = value
    else if (name === 'path') cookie.path = value
    else if (name === 'domain') cookie.domain = value
    else if (name === 'max-age') cookie.maxAge = value
    else if (name === 'expires') cookie.expires = value
  }
  return cookie
}

function flagsText (cookie: SiteCookie): string {
  return [
    cookie.secure ? 'Secure' : 'no Secure',
    cookie.httpOnly ? 'HttpOnly' : 'no HttpOnly',
    cookie.sameSite === null ? 'no SameSite' : `SameSite=${cookie.sameSite}`,
    ...(cookie.path === null ? [] : [`Path=${cookie.path}`]),
    ...(cookie.domain === null ? [] : [`Domain=${cookie.domain}`]),
    ...(cookie.maxAge === null ? [] : [`Max-Age=${cookie.maxAge}`]),
    ...(cookie.expires === null ? [] : [`Expires=${cookie.expires}`])
  ].join(' ')
}

/** A cookie's flags as one line, for the table. @internal */
export function cookieLine (cookie: SiteCookie): string {
  return `${cookie.name}: ${flagsText(cookie)}`
}

/** The longest `timeout` (2^31 - 1 ms, about 24.8 days): a Node timer set longer fires after 1 ms. @internal */
export const MAX_CHECK_TIMEOUT = 2_147_483_647

function parseTarget (input: string | URL, options: CheckSiteOptions): Target {
  let url: URL
  try {
    url = new URL(input)
  } catch {
    throw new TypeError(`"${String(input)}" is not a URL; write it as https://host[:port][/path]`)
  }
  if (url.protocol !== 'https:') throw new TypeError(`${url.href} is not an https:// URL; check audits HTTPS sites (it tests the plain HTTP redirect itself)`)
  if (url.username !== '' || url.password !== '') throw new TypeError('the URL must not carry a user name or password')
  if (options.connectTo !== undefined && isIP(options.connectTo) === 0) throw new TypeError(`--connect-to ${options.connectTo} is not an IP address`)
  const timeout = options.timeout ?? 5000
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > MAX_CHECK_TIMEOUT) throw new TypeError(`timeout ${String(timeout)} must be a whole number of milliseconds from 1 to ${MAX_CHECK_TIMEOUT}`)
  const deadline = options.deadline ?? Math.max(60_000, timeout * 12)
  if (!Number.isFinite(deadline) || deadline <= 0) throw new TypeError(`deadline ${String(options.deadline)} is not a positive number of milliseconds`)
  return {
    url,
    hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 443 : Number(url.port),
    path: `${url.pathname}${url.search}`,
    lookup: options.connectTo === undefined ? undefined : fixedLookup(options.connectTo),
    ca: options.ca === undefined ? undefined : [...rootCertificates, options.ca],
    timeout,
    deadline: Date.now() + deadline
  }
}

function isStrongSuite (protocol: string | null, cipher: string): boolean {
  if (protocol === 'TLSv1.3') return true
  return /^(ECDHE|DHE)-/.test(cipher) && /(GCM|CHACHA20|CCM)/.test(cipher)
}

function keyIsStrong (keyType: string): boolean {
  const [kind = '', size = ''] = keyType.split(' ')
  if (kind === 'rsa') return Number(size) >= 2048
  if (kind === 'ec') return ['P-256', 'P-384', 'P-521'].includes(size)
  return kind === 'ed25519' || kind === 'ed448'
}

/**
 * Audits a live HTTPS site. Never throws for a site that is down or broken: an unreachable site
 * gives a report with SH-LIVE-001 failed and the rest skipped.
 * @throws TypeError when `url` is not an https:// URL or `connectTo` not an IP address
 */
export async function checkSite (url: string | URL, options: CheckSiteOptions = {}): Promise<SiteReport> {
  const target = parseTarget(url, options)
  const now = Date.now()
  const where = `${target.url.host}${options.connectTo === undefined ? '' : ` (${options.connectTo})`}`
  const out = new Map<SiteCheckId, CheckResult>()
  const set = (id: SiteCheckId, status: CheckResult['status'], message: string): void => {
    if (!out.has(id)) out.set(id, result({ id, ...siteChecks[id] }, status, message))
  }
  const httpPort = options.httpPort ?? 80
  const httpUrl = new URL(target.url.href)
  httpUrl.protocol = 'http:'
  httpUrl.port = String(httpPort)
  const report: SiteReport = {
    url: target.url.href,
    host: target.hostname,
    port: target.port,
    connectTo: options.connectTo ?? null,
    reachable: false,
    protocols: [],
    negotiated: null,
    certificate: null,
    hsts: parseHsts(undefined),
    redirect: { url: httpUrl.href, status: null, location: null, error: null },
    cookies: [],
    checks: [],
    ...summarize([])
  }
  const finish = (): SiteReport => {
    report.checks = siteCheckIds.map((id) => out.get(id) ?? result({ id, ...siteChecks[id] }, 'skip', 'not checked: no TLS connection could be made'))
    return Object.assign(report, summarize(report.checks))
  }

  const unreachable = await tcpProbe(target)
  if (unreachable !== null) {
    set('SH-LIVE-001', 'fail', `cannot connect to ${where}: ${describeNetworkError(unreachable, where, target.timeout)}`)
    for (const id of siteCheckIds) set(id, 'skip', 'not checked: the site is unreachable')
    return finish()
  }
  report.reachable = true

  const [current, ...probes] = await Promise.all([
    handshake(target, { ALPNProtocols: ['h2', 'http/1.1'] }),
    ...probedVersions.map((version) => probeVersion(target, version))
  ])
  report.protocols = probes as ProtocolProbe[]
  const byVersion = new Map(report.protocols.map((probe) => [probe.version, probe]))

  if (current !== undefined && isHandshake(current)) {
    report.negotiated = { protocol: current.protocol, cipher: current.cipher, alpn: current.alpn }
    set('SH-LIVE-001', 'pass', `connected to ${where}: ${current.protocol ?? '?'} ${current.cipher}${current.alpn === null ? '' : `, ALPN ${current.alpn}`}`)
  } else {
    set('SH-LIVE-001', 'fail', `TCP connects, but a TLS handshake with a current client (TLS 1.2 or 1.3) fails: ${describeNetworkError(current as NodeJS.ErrnoException, where, target.timeout)}`)
  }

  const versionCheck = (id: SiteCheckId, version: typeof probedVersions[number], bad: boolean): void => {
    const probe = byVersion.get(version) as ProtocolProbe
    const name = version.replace('TLSv', 'TLS ').replace(/^TLS 1$/, 'TLS 1.0')
    if (probe.offered === null) set(id, 'skip', `${name}: ${probe.note ?? 'not tested'}`)
    else if (probe.offered) set(id, bad ? 'fail' : 'pass', `a ${name} handshake succeeds (${probe.cipher ?? ''})`)
    else set(id, bad ? 'pass' : 'fail', `the server refuses a ${name} handshake (${probe.note ?? 'refused'})`)
  }
  versionCheck('SH-LIVE-002', 'TLSv1', true)
  versionCheck('SH-LIVE-003', 'TLSv1.1', true)
  versionCheck('SH-LIVE-004', 'TLSv1.3', false)
  versionCheck('SH-LIVE-005', 'TLSv1.2', false)

  if (report.negotiated !== null) {
    const { protocol, cipher } = report.negotiated
    set('SH-LIVE-006', isStrongSuite(protocol, cipher) ? 'pass' : 'fail', `${protocol ?? '?'} ${cipher}`)
  }
  if (byVersion.get('TLSv1.2')?.offered === true) {
    const cbc = await handshake(target, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: CBC_CIPHERS })
    if (isHandshake(cbc)) set('SH-LIVE-007', 'fail', `TLS 1.2 accepts ${cbc.cipher}, a CBC-mode suite (padding-oracle attacks such as Lucky13)`)
    else set('SH-LIVE-007', 'pass', 'TLS 1.2 refuses every CBC-mode suite')
  } else {
    set('SH-LIVE-007', 'skip', 'TLS 1.2 is not offered')
  }

  // The certificate, from the current client's handshake or else any probe that got through.
  let shake: Handshake | null = current !== undefined && isHandshake(current) ? current : null
  if (shake === null) {
    for (const version of probedVersions) {
      if (byVersion.get(version)?.offered !== true) continue
      const again = await handshake(target, { minVersion: version, maxVersion: version, ciphers: LEGACY_CIPHERS })
      if (isHandshake(again)) {
        shake = again
        break
      }
    }
  }
  const certificate = shake === null ? null : describeCertificate(target, shake, now)
  report.certificate = certificate
  if (certificate !== null) {
    set('SH-LIVE-010', certificate.trusted ? 'pass' : 'fail', certificate.trusted
      ? `issued by ${certificate.issuer}; chain of ${certificate.chain.length}`
      : `not trusted (${certificate.trustError ?? 'unknown'}): issued by ${certificate.issuer}${options.ca === undefined ? '; for a private CA pass --ca FILE' : ''}`)
    set('SH-LIVE-011', certificate.validForHost ? 'pass' : 'fail', certificate.validForHost
      ? `${target.hostname} is covered (${certificate.sans.join(', ')})`
      : `${target.hostname} is not in the certificate (it covers ${certificate.sans.join(', ') || certificate.subject})`)
    set('SH-LIVE-012', certificate.daysLeft >= LIVE_EXPIRY_WARNING_DAYS ? 'pass' : 'fail', certificate.daysLeft < 0
      ? `expired ${-certificate.daysLeft} days ago (${certificate.notAfter})`
      : `${certificate.daysLeft} days left (until ${certificate.notAfter})`)
    set('SH-LIVE-013', keyIsStrong(certificate.keyType) ? 'pass' : 'fail', `${certificate.keyType} key`)
  }
  if (shake === null) return finish()

  // The page over HTTPS: HSTS and cookies.
  let page: HttpOutcome | null = null
  try {
    page = await get(target, target.url, true)
  } catch (error) {
    const message = `GET ${target.url.href} failed: ${describeNetworkError(error as NodeJS.ErrnoException, where, target.timeout)}`
    // HSTS cannot be confirmed without the page: an error-level check that could not run fails the
    // run, rather than let a page no client can read (a header of 200 KB, a reset) pass for HSTS.
    set('SH-LIVE-020', 'fail', `${message}; the Strict-Transport-Security header could not be read`)
    for (const id of ['SH-LIVE-021', 'SH-LIVE-022', 'SH-LIVE-040', 'SH-LIVE-041', 'SH-LIVE-042', 'SH-LIVE-043'] as const) set(id, 'skip', message)
  }
  if (page !== null) {
    // Browsers process only the first header when there are several (RFC 6797 section 8.1).
    report.hsts = parseHsts(page.headersDistinct['strict-transport-security']?.[0])
    const { maxAge } = report.hsts
    if (report.hsts.header === null || maxAge === null || maxAge === 0) {
      const local = isLocalHostname(target.hostname) ? '; note that fastify-secure-https never sends HSTS to localhost or loopback addresses: check the real host name, with --connect-to for a local server' : ''
      const what = report.hsts.header === null
        ? 'no Strict-Transport-Security header'
        : report.hsts.invalid !== undefined
          ? `Strict-Transport-Security: ${report.hsts.header} is invalid (${report.hsts.invalid})`
          : `Strict-Transport-Security: ${report.hsts.header} turns HSTS off`
      set('SH-LIVE-020', 'fail', `${what} on ${page.status} ${target.url.href}${local}`)
      set('SH-LIVE-021', 'skip', 'no HSTS policy')
    } else {
      set('SH-LIVE-020', 'pass', `Strict-Transport-Security: ${report.hsts.header}`)
      set('SH-LIVE-021', maxAge >= HSTS_MIN_RECOMMENDED ? 'pass' : 'fail', `max-age=${maxAge} (${Math.floor(maxAge / 86400)} days)`)
    }
    const setCookies = page.headers['set-cookie'] ?? []
    report.cookies = setCookies.map(parseCookieFlags)
    const cookieCheck = (id: SiteCheckId, bad: (cookie: SiteCookie) => string | null): void => {
      if (report.cookies.length === 0) {
        set(id, 'pass', `${target.url.pathname} sets no cookie`)
        return
      }
      const problems = report.cookies.flatMap((cookie) => {
        const problem = bad(cookie)
        return problem === null ? [] : [`${cookie.name}: ${problem}`]
      })
      set(id, problems.length === 0 ? 'pass' : 'fail', problems.length === 0 ? report.cookies.map(cookieLine).join('; ') : problems.join('; '))
    }
    cookieCheck('SH-LIVE-040', (cookie) => cookie.secure ? null : 'no Secure flag: the browser also sends it over plain HTTP')
    cookieCheck('SH-LIVE-041', (cookie) => cookie.httpOnly ? null : 'no HttpOnly flag: page scripts (and an XSS) can read it')
    cookieCheck('SH-LIVE-042', (cookie) => cookie.sameSite === null || cookie.sameSite === '' ? 'no SameSite attribute' : null)
    cookieCheck('SH-LIVE-043', (cookie) => {
      if (cookie.name.startsWith('__Secure-') && !cookie.secure) return '__Secure- prefix without Secure: browsers drop it'
      if (cookie.name.startsWith('__Host-') && (!cookie.secure || cookie.path !== '/' || cookie.domain !== null)) return '__Host- prefix needs Secure, Path=/ and no Domain: browsers drop it'
      return null
    })
  }

  // Plain HTTP on the same host.
  try {
    const plain = await get(target, httpUrl, false)
    const location = plain.headers.location ?? null
    report.redirect.status = plain.status
    report.redirect.location = location
    let to: URL | null = null
    try {
      to = location === null ? null : new URL(location, httpUrl)
    } catch {}
    const isRedirect = plain.status >= 300 && plain.status < 400 && to !== null
    if (!isRedirect || to === null) {
      set('SH-LIVE-030', plain.status >= 200 && plain.status < 300 ? 'fail' : 'pass', `${httpUrl.href} answers ${plain.status} without a redirect${plain.status >= 200 && plain.status < 300 ? ': the page is served in plain text' : ''}`)
      set('SH-LIVE-031', 'fail', `${httpUrl.href} answers ${plain.status}, not a redirect to https://${target.url.host}`)
    } else {
      set('SH-LIVE-030', to.protocol === 'https:' ? 'pass' : 'fail', `${httpUrl.href} redirects (${plain.status}) to ${to.href}`)
      const toPort = to.port === '' ? 443 : Number(to.port)
      const problems = [
        ...(to.protocol === 'https:' ? [] : ['not to https://']),
        ...(to.hostname === target.url.hostname ? [] : [`to another host (${to.hostname})`]),
        ...(to.protocol === 'https:' && toPort !== target.port ? [`to port ${toPort}, not ${target.port}`] : []),
        ...(plain.status === 301 || plain.status === 308 ? [] : [`with ${plain.status}, a temporary code`])
      ]
      set('SH-LIVE-031', problems.length === 0 ? 'pass' : 'fail', `${httpUrl.href} redirects with ${plain.status} to ${to.href}${problems.length === 0 ? '' : `: ${problems.join(', ')}`}`)
    }
  } catch (error) {
    const message = describeNetworkError(error as NodeJS.ErrnoException, `${httpUrl.host}${options.connectTo === undefined ? '' : ` (${options.connectTo})`}`, target.timeout)
    report.redirect.error = message
    set('SH-LIVE-030', 'pass', `nothing serves ${httpUrl.href} (${message})`)
    set('SH-LIVE-031', 'fail', `no redirect: ${message}; http:// links and typed names get an error page`)
  }

  // Preload eligibility, as hstspreload.org states it.
  const redirectOk = out.get('SH-LIVE-031')?.status === 'pass'
  const certificateOk = certificate !== null && certificate.trusted && certificate.validForHost
  if (report.hsts.maxAge !== null && report.hsts.maxAge > 0) {
    const missing = [
      ...(report.hsts.maxAge >= PRELOAD_MIN_MAX_AGE ? [] : [`max-age >= ${PRELOAD_MIN_MAX_AGE}`]),
      ...(report.hsts.includeSubDomains ? [] : ['includeSubDomains']),
      ...(report.hsts.preload ? [] : ['preload']),
      ...(redirectOk ? [] : ['a permanent redirect from HTTP on the same host']),
      ...(certificateOk ? [] : ['a trusted certificate for the host'])
    ]
    set('SH-LIVE-022', missing.length === 0 ? 'pass' : 'fail', missing.length === 0 ? 'max-age, includeSubDomains, preload, redirect and certificate are as the list requires' : `not eligible: needs ${missing.join(', ')}`)
  } else {
    set('SH-LIVE-022', 'fail', 'not eligible: no HSTS policy')
  }
  return finish()
}
