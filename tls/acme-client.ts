/**
 * One ACME order with `acme-client`: account (with external account binding when the CA requires
 * it), order, challenges (HTTP-01, TLS-ALPN-01 or DNS-01), finalize, download; and the unsigned
 * requests around it (the directory, ACME Renewal Information).
 *
 * acme-client sends every request through one axios instance shared by the whole process, which it
 * exports (`acme.axios`). The suite changes nothing globally: an interceptor on that instance acts
 * only on requests made inside one of our orders (an AsyncLocalStorage scope), and for those
 * - sends them with our own small HTTPS adapter: the extra CA (ACME_CA_FILE) in our own agent beside
 *   the system store, a timeout, the order's abort signal, a bound on the size of what the CA sends,
 *   and network errors passed through as they are (acme-client's interceptor would otherwise turn
 *   them into a TypeError);
 * - turns acme-client's own retries off: they wait in timers nobody can cancel (for hours on a
 *   rate-limit Retry-After); the source's backoff retries instead, honouring Retry-After;
 * - keeps every ACME problem document seen, because acme-client keeps only its `detail` text.
 *
 * acme-client is an optional dependency, loaded on the first order (see optional.ts).
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { generateKeyPair } from 'node:crypto'
import type { Agent } from 'node:https'
import type { IncomingHttpHeaders } from 'node:http'
import { isIP } from 'node:net'
import { promisify } from 'node:util'
import { importOptional } from '../optional.ts'
import { parseRenewalInfo, type RenewalInfo } from './acme-renewal.ts'

const generateKeyPairAsync = promisify(generateKeyPair)

type AcmeModule = typeof import('acme-client')

/** An RFC 7807 problem document, as the ACME server sent it (RFC 8555 section 6.7). */
export interface AcmeProblem {
  type?: string
  detail?: string
  status?: number
  subproblems?: AcmeProblem[]
  [field: string]: unknown
}

/** Why an order failed: the message, the server's problem document, and when to retry. */
export class AcmeOrderError extends Error {
  /** The last problem document the server sent during the order, if any. */
  readonly problem: AcmeProblem | null
  /** Seconds the server asked us to wait (Retry-After on 429/503), or null. */
  readonly retryAfter: number | null
  /** Node's error code for network failures (ECONNREFUSED, ...). */
  readonly code: string | undefined

  constructor (message: string, problem: AcmeProblem | null, retryAfter: number | null, code?: string) {
    super(message)
    this.name = 'AcmeOrderError'
    this.problem = problem
    this.retryAfter = retryAfter
    this.code = code
  }
}

/** A new ECDSA P-256 private key, PEM (PKCS#8). @internal */
export async function createEcdsaKey (): Promise<string> {
  const { privateKey } = await generateKeyPairAsync('ec', {
    namedCurve: 'P-256',
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' }
  })
  return privateKey
}

/** An HTTPS agent that trusts the system store plus an extra CA (ACME_CA_FILE). @internal */
export function acmeAgent (ca?: string): Agent {
  // node:https and node:tls are loaded when ACME runs, not when an app imports the package.
  const { Agent } = process.getBuiltinModule('node:https')
  const { rootCertificates } = process.getBuiltinModule('node:tls')
  return new Agent({ keepAlive: true, ca: ca === undefined ? undefined : [...rootCertificates, ca] })
}

/** A challenge to publish, as the CA will check it. @internal */
export type PublishedChallenge =
  | { type: 'http-01', token: string, keyAuthorization: string }
  | { type: 'tls-alpn-01', name: string, key: string, cert: string }
  | { type: 'dns-01', name: string, value: string }

/** The ACME challenge types the suite answers. */
export type ChallengeType = PublishedChallenge['type']

/** What `orderCertificate` needs. @internal */
export interface OrderOptions {
  directoryUrl: string
  accountKey: string
  email: string
  domains: readonly string[]
  /** Agent for every request (its CA list decides what the ACME server may present). */
  agent: Agent
  challenge: ChallengeType
  /** External account binding, for CAs that require it. */
  eab?: { kid: string, hmacKey: string }
  /** ARI certificate id of the certificate this order replaces (RFC 9773 section 5). */
  replaces?: string
  /** Publishes a challenge answer; resolves once it is served. */
  publish (challenge: PublishedChallenge): Promise<void>
  /** Withdraws it again. */
  withdraw (challenge: PublishedChallenge): Promise<void>
  /** Aborts the order (stop, or a lost lock). */
  signal?: AbortSignal
  /** Poll delays while the CA validates and issues, in ms. */
  pollMin?: number
  pollMax?: number
}

/** The issued certificate (full chain, leaf first) and its key. @internal */
export interface IssuedPair {
  key: string
  cert: string
}

/** What one order's requests share, through AsyncLocalStorage. */
interface Scope {
  agent: Agent
  signal: AbortSignal | undefined
  problem: AcmeProblem | null
  retryAfter: number | null
}

const scopes = new AsyncLocalStorage<Scope>()
/** Longest a single ACME request may take. */
const REQUEST_TIMEOUT = 30_000
/** Largest response accepted from an ACME server: a certificate chain is a few kilobytes. */
const MAX_RESPONSE = 1 << 20
// Far above acme-client's retryMaxAttempts (5), so its interceptor never retries our requests.
const NO_RETRIES = 1_000_000

interface PlainResponse {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/**
 * One HTTPS request with a deadline for the whole exchange (not only between two packets: a server
 * that sends a byte a second would hold an order, and its lock, for ever), a signal and a size
 * bound; network errors as Node gives them. @internal
 */
export function send (url: string, method: string, headers: Record<string, string>, body: string | Buffer | undefined, agent: Agent, signal: AbortSignal | undefined, timeout = REQUEST_TIMEOUT): Promise<PlainResponse> {
  return new Promise<PlainResponse>((resolve, reject) => {
    const target = new URL(url)
    if (target.protocol !== 'https:') {
      reject(Object.assign(new Error(`ACME requests go over https only, not to ${target.protocol}//${target.host} (RFC 8555 section 6.1)`), { code: 'ERR_ACME_NOT_HTTPS' }))
      return
    }
    const req = process.getBuiltinModule('node:https').request(target, { method, headers, agent, signal }, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_RESPONSE) {
          res.destroy(Object.assign(new Error(`the ACME server at ${target.host} sent more than ${MAX_RESPONSE} bytes`), { code: 'ERR_ACME_RESPONSE_TOO_LARGE' }))
          return
        }
        chunks.push(chunk)
      })
      res.on('error', fail)
      res.on('end', () => {
        clearTimeout(deadline)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') })
      })
    })
    const deadline = setTimeout(() => {
      req.destroy(Object.assign(new Error(`the ACME server at ${target.host} did not answer within ${timeout} ms`), { code: 'ETIMEDOUT' }))
    }, timeout)
    deadline.unref()
    function fail (error: Error): void {
      clearTimeout(deadline)
      reject(error)
    }
    req.on('error', fail)
    req.end(body)
  })
}

/** The axios config fields the adapter reads (axios passes the full internal config). */
interface AdapterConfig {
  url?: string
  method?: string
  data?: unknown
  headers?: { toJSON?: () => Record<string, unknown> } & Record<string, unknown>
  validateStatus?: ((status: number) => boolean) | null
}

function plainHeaders (headers: AdapterConfig['headers']): Record<string, string> {
  const source = typeof headers?.toJSON === 'function' ? headers.toJSON() : (headers ?? {})
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined || value === null || value === false || typeof value === 'object' || typeof value === 'function') continue
    out[name] = String(value)
  }
  return out
}

/** An axios adapter on node:https for the requests of one scope. */
function adapterFor (scope: Scope) {
  return async (config: AdapterConfig): Promise<unknown> => {
    const data = config.data
    const body = typeof data === 'string' || Buffer.isBuffer(data) ? data : data === undefined || data === null ? undefined : JSON.stringify(data)
    const raw = await send(String(config.url), (config.method ?? 'get').toUpperCase(), plainHeaders(config.headers), body, scope.agent, scope.signal)
    const response = { data: raw.body, status: raw.status, statusText: '', headers: raw.headers, config, request: {} }
    // axios's contract: the adapter settles by validateStatus (acme-client's interceptor then
    // decides what a rejected status means).
    if (typeof config.validateStatus !== 'function' || config.validateStatus(raw.status)) return response
    throw Object.assign(new Error(`Request failed with status code ${raw.status}`), {
      config,
      response,
      request: {},
      isAxiosError: true,
      code: raw.status >= 500 ? 'ERR_BAD_RESPONSE' : 'ERR_BAD_REQUEST'
    })
  }
}

let loading: Promise<AcmeModule> | null = null

/** Loads acme-client (optional dependency) and scopes its shared axios instance, once. */
async function loadAcme (): Promise<AcmeModule> {
  loading ??= importOptional('acme-client', () => import('acme-client')).then((acme) => {
    const instance = acme.axios as unknown as {
      interceptors: {
        request: { use (onFulfilled: (config: Record<string, unknown>) => Record<string, unknown>): number }
        response: { use (onFulfilled: (response: { status: number, headers: Record<string, unknown>, data: unknown }) => unknown): number }
      }
    }
    instance.interceptors.request.use((config) => {
      const scope = scopes.getStore()
      if (scope === undefined) return config
      config.adapter = adapterFor(scope)
      config.retryAttempt = NO_RETRIES
      return config
    })
    instance.interceptors.response.use((response) => {
      const scope = scopes.getStore()
      if (scope === undefined) return response
      const body = response.data as { status?: unknown } | null
      if (response.status >= 400 || body?.status === 'invalid') {
        const found = problemIn(response.data)
        // acme-client answers badNonce by retrying; it is not why an order fails.
        if (found !== null && found.type !== 'urn:ietf:params:acme:error:badNonce') scope.problem = found
      }
      if (response.status === 429 || response.status === 503) {
        const header = response.headers['retry-after']
        scope.retryAfter = parseRetryAfter(typeof header === 'string' ? header : undefined)
      }
      return response
    })
    return acme
  }, (error: unknown) => {
    loading = null
    throw error
  })
  return await loading
}

function asProblem (value: unknown): AcmeProblem | null {
  if (value === null || typeof value !== 'object') return null
  const record = value as Record<string, unknown>
  if (typeof record.type === 'string' && record.type.startsWith('urn:ietf:params:acme:error:')) return record as AcmeProblem
  return null
}

/** The problem document in a response: itself, or inside an invalid order, authorization or challenge. @internal */
export function problemIn (data: unknown): AcmeProblem | null {
  const direct = asProblem(data)
  if (direct !== null) return direct
  if (data === null || typeof data !== 'object') return null
  const record = data as { status?: unknown, error?: unknown, challenges?: unknown }
  if (record.status !== 'invalid') return null
  const own = asProblem(record.error)
  if (own !== null) return own
  if (Array.isArray(record.challenges)) {
    for (const challenge of record.challenges as Array<{ error?: unknown }>) {
      const found = asProblem(challenge.error)
      if (found !== null) return found
    }
  }
  return null
}

/** Seconds to wait from a Retry-After header (seconds or an HTTP date), or null. @internal */
export function parseRetryAfter (header: string | undefined, now = Date.now()): number | null {
  if (header === undefined || header.length > 64) return null
  if (/^\d{1,10}$/.test(header.trim())) return Number(header.trim())
  const date = Date.parse(header)
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000))
}

/** The DNS-01 record name for an identifier: `_acme-challenge.<name>` (a wildcard's base name). */
export function dnsRecordName (identifier: string): string {
  return `_acme-challenge.${identifier.replace(/^\*\./, '')}`
}

/**
 * Runs one complete order for the domains and returns the certificate with its new ECDSA P-256 key.
 * @throws AcmeOrderError with the server's problem document when one was sent
 */
export async function orderCertificate (options: OrderOptions): Promise<IssuedPair> {
  const acme = await loadAcme()
  const scope: Scope = { agent: options.agent, signal: options.signal, problem: null, retryAfter: null }
  return await scopes.run(scope, async () => {
    const client = new acme.Client({
      directoryUrl: options.directoryUrl,
      accountKey: options.accountKey,
      ...(options.eab === undefined ? {} : { externalAccountBinding: { kid: options.eab.kid, hmacKey: options.eab.hmacKey } }),
      // Pebble and Let's Encrypt validate within a second or two; poll briskly, then back off.
      backoffAttempts: 12,
      backoffMin: options.pollMin ?? 500,
      backoffMax: options.pollMax ?? 5000
    })
    const published: PublishedChallenge[] = []
    const abortable = (): void => { options.signal?.throwIfAborted() }
    try {
      await client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${options.email}`] })
      abortable()
      const order = await client.createOrder({
        identifiers: options.domains.map((value) => ({ type: isIP(value) === 0 ? 'dns' : 'ip', value })),
        ...(options.replaces === undefined ? {} : { replaces: options.replaces })
      } as Parameters<typeof client.createOrder>[0])
      abortable()
      for (const authz of await client.getAuthorizations(order)) {
        // A CA may reuse an authorization validated recently.
        if (authz.status === 'valid') continue
        const challenge = authz.challenges.find((candidate) => candidate.type === options.challenge)
        if (challenge === undefined) {
          throw new AcmeOrderError(`the ACME server offers no ${options.challenge} challenge for ${authz.identifier.value} (offered: ${authz.challenges.map((c) => c.type).join(', ')}); choose one of those with ACME_CHALLENGE`, null, null)
        }
        const keyAuthorization = await client.getChallengeKeyAuthorization(challenge)
        let answer: PublishedChallenge
        if (options.challenge === 'http-01') {
          answer = { type: 'http-01', token: challenge.token, keyAuthorization }
        } else if (options.challenge === 'dns-01') {
          answer = { type: 'dns-01', name: dnsRecordName(authz.identifier.value), value: keyAuthorization }
        } else {
          const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, await createEcdsaKey())
          answer = { type: 'tls-alpn-01', name: authz.identifier.value, key: key.toString(), cert: cert.toString() }
        }
        await options.publish(answer)
        published.push(answer)
        abortable()
        await client.completeChallenge(challenge)
        await client.waitForValidStatus(challenge)
        abortable()
      }
      const certificateKey = await createEcdsaKey()
      const first = options.domains.find((name) => !name.startsWith('*.')) ?? options.domains[0]
      const [, csr] = await acme.crypto.createCsr({
        // The CN is optional and limited to 64 characters; the SANs carry the names.
        ...(first !== undefined && first.length <= 64 ? { commonName: first } : {}),
        altNames: [...options.domains]
      }, certificateKey)
      abortable()
      const finalized = await client.finalizeOrder(order, csr)
      const cert = await client.getCertificate(finalized)
      return { key: certificateKey, cert: cert.endsWith('\n') ? cert : `${cert}\n` }
    } catch (error) {
      if (error instanceof AcmeOrderError) throw error
      const cause = error as Error & { code?: string }
      let message = cause.message
      if (/certificate|self.signed|unable to verify/i.test(message) && cause.code !== undefined) {
        message += ` (talking to ${options.directoryUrl}; if the ACME server uses a private CA, as pebble does, point ACME_CA_FILE at it)`
      }
      throw Object.assign(new AcmeOrderError(message, scope.problem, scope.retryAfter, cause.code), { cause: error })
    } finally {
      await Promise.allSettled(published.map((answer) => options.withdraw(answer)))
    }
  })
}

/** GETs a JSON document from an ACME server (unsigned: the directory, ARI). @internal */
export async function getJson (url: string, agent: Agent, signal?: AbortSignal): Promise<{ status: number, body: unknown, retryAfter: number | null }> {
  const response = await send(url, 'GET', { accept: 'application/json', 'user-agent': 'fastify-secure-https' }, undefined, agent, signal)
  let body: unknown = null
  try {
    body = JSON.parse(response.body)
  } catch {
    // Not JSON: the caller sees null.
  }
  const header = response.headers['retry-after']
  return { status: response.status, body, retryAfter: parseRetryAfter(typeof header === 'string' ? header : undefined) }
}

/** The `renewalInfo` URL of a directory (RFC 9773), or null when the CA offers none. @internal */
export async function renewalInfoUrl (directoryUrl: string, agent: Agent, signal?: AbortSignal): Promise<string | null> {
  const { status, body } = await getJson(directoryUrl, agent, signal)
  if (status !== 200 || body === null || typeof body !== 'object') throw new Error(`the ACME directory ${directoryUrl} answered ${status}`)
  const value = (body as Record<string, unknown>).renewalInfo
  return typeof value === 'string' && /^https:\/\/\S+$/.test(value) && value.length <= 2048 ? value.replace(/\/+$/, '') : null
}

/**
 * The CA's renewal information for a certificate (by its ARI id), or null when the answer is not a
 * valid RenewalInfo object.
 */
export async function fetchRenewalInfo (endpoint: string, certId: string, agent: Agent, signal?: AbortSignal): Promise<RenewalInfo | null> {
  const { status, body, retryAfter } = await getJson(`${endpoint}/${certId}`, agent, signal)
  if (status !== 200) return null
  const parsed = parseRenewalInfo(body)
  return parsed === null ? null : { window: parsed.window, explanationUrl: parsed.explanationUrl, retryAfter }
}
