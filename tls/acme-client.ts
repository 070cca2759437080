/**
 * One ACME order with `acme-client`: account, order, HTTP-01 challenges, finalize, download.
 *
 * acme-client's HTTP layer is shared by every client in the process (one axios instance), so this
 * module scopes its changes to the client it creates, by wrapping that client's request function:
 * - the extra CA (ACME_CA_FILE) goes into this client's own https.Agent, added to the system store;
 * - acme-client's own request retries are turned off: they wait in timers nobody can cancel (for
 *   hours on a rate-limit Retry-After) and hide connection errors behind a TypeError; the source's
 *   backoff retries instead, honouring Retry-After;
 * - every ACME problem document seen is kept, because acme-client keeps only its `detail` text.
 */
import { generateKeyPair } from 'node:crypto'
import { isIP } from 'node:net'
import { createRequire } from 'node:module'
import { promisify } from 'node:util'
import { importOptional } from '../optional.js'

const generateKeyPairAsync = promisify(generateKeyPair)

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

/** What `orderCertificate` needs. @internal */
export interface OrderOptions {
  directoryUrl: string
  accountKey: string
  email: string
  domains: readonly string[]
  /** Extra CA (PEM) to trust for the ACME server, besides the system store. */
  ca?: string
  /** Publishes an HTTP-01 answer; resolves once it is served. */
  publish (token: string, keyAuthorization: string): Promise<void>
  /** Withdraws it again. */
  withdraw (token: string): Promise<void>
  /** Aborts every request (on stop). */
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

interface AcmeResponse {
  status: number
  headers: Record<string, string | undefined>
  data: unknown
}
type RequestFunction = (url: string, method: string, opts?: Record<string, unknown>) => Promise<AcmeResponse>
type Adapter = (config: unknown) => Promise<unknown>

type AcmeClientModule = typeof import('acme-client')

/**
 * acme-client, an optional peer dependency: loaded at the first order, so that apps without
 * TLS_MODE=acme neither install nor import it.
 */
async function loadAcme (): Promise<{ acme: AcmeClientModule, httpAdapter: Adapter, Agent: typeof import('node:https').Agent, rootCertificates: readonly string[] }> {
  const acme = await importOptional('acme-client', () => import('acme-client'))
  const { Agent } = await import('node:https')
  const { rootCertificates } = await import('node:tls')
  // acme-client's own axios (its dependency, not ours): its Node HTTP adapter is wrapped below.
  const axiosFromAcme = createRequire(createRequire(import.meta.url).resolve('acme-client'))('axios') as { getAdapter (name: string): Adapter }
  return { acme, httpAdapter: axiosFromAcme.getAdapter('http'), Agent, rootCertificates }
}

/**
 * A network failure without axios's `config` field: acme-client's interceptor then passes it on
 * unchanged instead of retrying it and failing with a TypeError.
 */
const plainNetworkErrors = (httpAdapter: Adapter): Adapter => async (config) => {
  try {
    return await httpAdapter(config)
  } catch (error) {
    const cause = error as Error & { code?: string, response?: unknown }
    if (cause.response !== undefined) throw error
    throw Object.assign(new Error(cause.message), { code: cause.code, cause: error })
  }
}

// Far above acme-client's retryMaxAttempts (5), so its interceptor never retries our requests.
const NO_RETRIES = 1_000_000

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
  if (header === undefined) return null
  const seconds = Number(header)
  if (Number.isFinite(seconds) && seconds >= 0) return seconds
  const date = Date.parse(header)
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000))
}

/**
 * Runs one complete order for the domains with HTTP-01 and returns the certificate with its new
 * ECDSA P-256 key.
 * @throws AcmeOrderError with the server's problem document when one was sent
 */
export async function orderCertificate (options: OrderOptions): Promise<IssuedPair> {
  const { acme, httpAdapter, Agent, rootCertificates } = await loadAcme()
  const client = new acme.Client({
    directoryUrl: options.directoryUrl,
    accountKey: options.accountKey,
    // Pebble and Let's Encrypt validate within a second or two; poll briskly, then back off.
    backoffAttempts: 12,
    backoffMin: options.pollMin ?? 500,
    backoffMax: options.pollMax ?? 5000
  })
  const agent = new Agent({ keepAlive: true, ca: options.ca === undefined ? undefined : [...rootCertificates, options.ca] })
  let problem: AcmeProblem | null = null
  let retryAfter: number | null = null
  const http = (client as unknown as { http?: { request?: RequestFunction } }).http
  const original = http?.request
  if (http === undefined || typeof original !== 'function') {
    throw new AcmeOrderError('this version of acme-client has no per-client HTTP request function; install the acme-client version in package.json', null, null)
  }
  http.request = async (url, method, opts = {}) => {
    const response = await original.call(http, url, method, {
      ...opts,
      httpsAgent: agent,
      adapter: plainNetworkErrors(httpAdapter),
      retryAttempt: NO_RETRIES,
      timeout: 30_000,
      signal: options.signal
    })
    if (response.status >= 400 || (response.data as { status?: unknown } | null)?.status === 'invalid') {
      const found = problemIn(response.data)
      // acme-client answers badNonce by retrying; it is not why an order fails.
      if (found !== null && found.type !== 'urn:ietf:params:acme:error:badNonce') problem = found
    }
    if (response.status === 429 || response.status === 503) retryAfter = parseRetryAfter(response.headers['retry-after'])
    return response
  }

  const published: string[] = []
  try {
    await client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${options.email}`] })
    const order = await client.createOrder({
      identifiers: options.domains.map((value) => ({ type: isIP(value) === 0 ? 'dns' : 'ip', value }))
    })
    for (const authz of await client.getAuthorizations(order)) {
      // A CA may reuse an authorization validated recently.
      if (authz.status === 'valid') continue
      const challenge = authz.challenges.find((candidate) => candidate.type === 'http-01')
      if (challenge === undefined) {
        throw new AcmeOrderError(`the ACME server offers no http-01 challenge for ${authz.identifier.value} (offered: ${authz.challenges.map((c) => c.type).join(', ')}); TLS_MODE=acme answers HTTP-01 only`, null, null)
      }
      const keyAuthorization = await client.getChallengeKeyAuthorization(challenge)
      await options.publish(challenge.token, keyAuthorization)
      published.push(challenge.token)
      await client.completeChallenge(challenge)
      await client.waitForValidStatus(challenge)
    }
    const certificateKey = await createEcdsaKey()
    const first = options.domains[0]
    const [, csr] = await acme.crypto.createCsr({
      // The CN is optional and limited to 64 characters; the SANs carry the names.
      ...(first !== undefined && first.length <= 64 ? { commonName: first } : {}),
      altNames: [...options.domains]
    }, certificateKey)
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
    throw Object.assign(new AcmeOrderError(message, problem, retryAfter, cause.code), { cause: error })
  } finally {
    await Promise.allSettled(published.map((token) => options.withdraw(token)))
    agent.destroy()
  }
}
