/**
 * The start-up summary of the aggregate in development: where to point the browser (the URL as one
 * types it, https://localhost:8443, not the socket's 127.0.0.1), the redirect, the certificate
 * (where it came from, its names, fingerprint and expiry), whether the development CA is trusted
 * and how to trust it, and what happens to sessions across restarts. One log line, readable as
 * text, with the same facts as fields for whoever reads JSON.
 */
import type { AddressInfo } from 'node:net'
import { isIP } from 'node:net'
import { relative } from 'node:path'
import type { SecureHttpsConfig } from '../schemas/config.ts'
import type { TrustResult } from '../tls/trust-store.ts'
import type { TlsStatus } from './tls.ts'

const DAY = 86_400_000

/** What the summary is made of; each part is null when it does not apply. @internal */
export interface StartupFacts {
  config: SecureHttpsConfig
  /** The app's listening address. */
  address: AddressInfo | null
  tls: TlsStatus | null
  redirect: { address: AddressInfo | null, error: Error | null } | null
  ca: { certPath: string, fingerprint: string, notAfter: Date } | null
  /** Configured names the development CA may not issue for. */
  excluded: string[]
  trust: TrustResult[] | null
  session: { source: 'keys' | 'dev-key' | 'ephemeral' | 'off', path?: string, created?: boolean }
  now?: number
}

const loopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || host === '::' || host === '0.0.0.0' || /^127\./.test(host)

/**
 * The host to write in a URL for people: `localhost` when the app listens on a loopback or
 * unspecified address and accepts that name, else the first allowed name, else the address.
 * @internal
 */
export function displayHost (listenHost: string, allowedHosts: readonly string[]): string {
  let host = listenHost
  if (loopback(listenHost)) {
    host = allowedHosts.length === 0 || allowedHosts.includes('localhost') ? 'localhost' : allowedHosts[0] as string
  }
  return isIP(host) === 6 ? `[${host}]` : host
}

/** `https://localhost:8443`, without the port when it is the scheme's default. @internal */
export function displayUrl (scheme: 'http' | 'https', host: string, port: number): string {
  const standard = scheme === 'https' ? 443 : 80
  return `${scheme}://${host}${port === standard ? '' : `:${port}`}`
}

function shortPath (path: string): string {
  const near = relative(process.cwd(), path)
  return near.startsWith('..') || near === '' ? path : near
}

function trustLine (facts: StartupFacts): string {
  const trust = facts.trust
  if (trust === null) return 'run `npx fastify-secure-https trust --status` to see where it is trusted'
  const trusted = trust.filter((result) => result.status === 'present').map((result) => result.store)
  if (trusted.length > 0) return `trusted by ${trusted.join(', ')}`
  const missingTool = trust.find((result) => result.detail?.startsWith('certutil is not installed') === true)
  return `NOT trusted yet: run \`npx fastify-secure-https trust\` once${missingTool === undefined ? '' : ` (${missingTool.detail ?? ''})`}, then restart the browser`
}

/** The summary as text and as fields. @internal */
export function startupSummary (facts: StartupFacts): { text: string, fields: Record<string, unknown> } {
  const { config } = facts
  const now = facts.now ?? Date.now()
  const mode = config.tls === false ? 'off' : config.tls.mode
  const secure = mode === 'self-signed' || mode === 'files' || mode === 'acme'
  const host = displayHost(config.host, config.allowedHosts)
  const port = facts.address?.port ?? config.port
  const url = displayUrl(secure ? 'https' : 'http', host, port)
  const lines = ['fastify-secure-https: development server ready', `  open       ${url}`]
  const fields: Record<string, unknown> = { url }

  if (facts.redirect !== null) {
    if (facts.redirect.address !== null) {
      const from = displayUrl('http', host, facts.redirect.address.port)
      lines.push(`  redirect   ${from} -> ${url} (307, not kept by the browser)`)
      fields.redirect = from
    } else if (facts.redirect.error !== null) {
      lines.push(`  redirect   NOT listening: ${facts.redirect.error.message}`)
      fields.redirectError = facts.redirect.error.message
    }
  } else if (mode === 'proxy') {
    lines.push('  redirect   by the app, for requests the trusted proxy did not mark as HTTPS')
  }

  const tls = facts.tls
  if (tls !== null) {
    const daysLeft = Math.round((tls.notAfter.getTime() - now) / DAY)
    lines.push(`  cert       ${tls.origin ?? tls.source}`)
    lines.push(`             names ${tls.sans.join(', ')}; expires ${tls.notAfter.toISOString().slice(0, 10)} (${daysLeft} days); SHA-256 ${tls.fingerprint}`)
    fields.certificate = { source: tls.source, origin: tls.origin, names: tls.sans, notAfter: tls.notAfter.toISOString(), fingerprint: tls.fingerprint }
    for (const warning of tls.warnings) lines.push(`             warning: ${warning}`)
  } else if (mode === 'off') {
    lines.push('  cert       none: TLS_MODE=off serves plain HTTP (refused in production)')
  } else if (mode === 'proxy') {
    lines.push('  cert       at the proxy: TLS_MODE=proxy')
  }

  if (facts.ca !== null) {
    lines.push(`  CA         ${shortPath(facts.ca.certPath)}: ${trustLine(facts)}`)
    fields.ca = { path: facts.ca.certPath, fingerprint: facts.ca.fingerprint, trustedBy: facts.trust?.filter((r) => r.status === 'present').map((r) => r.store) ?? null }
    if (facts.excluded.length > 0) {
      lines.push(`             ${facts.excluded.join(', ')} from ALLOWED_HOSTS: outside the names this CA may issue for (local names only); use a name under .localhost or .test, or delete ${shortPath(facts.ca.certPath).replace(/cert\.pem$/, '')} to have a CA made for them (then trust it again)`)
      fields.excluded = facts.excluded
    }
  }

  const session = facts.session
  if (session.source === 'dev-key') {
    lines.push(`  sessions   key ${session.created === true ? 'made now and ' : ''}kept in ${shortPath(session.path ?? '')}: logins survive restarts (production requires SESSION_KEYS)`)
  } else if (session.source === 'ephemeral') {
    lines.push('  sessions   a random key for this run only: every restart logs everyone out; set SESSION_KEYS (npx fastify-secure-https keygen)')
  } else if (session.source === 'keys') {
    lines.push('  sessions   SESSION_KEYS')
  }
  fields.sessions = session.source
  return { text: lines.join('\n'), fields }
}
