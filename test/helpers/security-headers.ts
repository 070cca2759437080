/**
 * The header sets the securityHeaders plugin sends with its default options, written out by hand
 * (not computed by the code under test), and a check that a response carries exactly one of them.
 */
import type { IncomingHttpHeaders } from 'node:http'

/** The suite's CSP with default options: helmet's defaults with frame-ancestors 'none'. */
export const DEFAULT_CSP = "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'none';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests"

/** helmet's full set, as the plugin sends it to HTML answers with default options. */
export const FULL_SET: Readonly<Record<string, string>> = {
  'content-security-policy': DEFAULT_CSP,
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'strict-origin-when-cross-origin',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'SAMEORIGIN',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0'
}

/** The short set for API answers (OWASP REST Security Cheat Sheet). */
export const API_SET: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'content-security-policy': "frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY'
}

/** Every header name either set may carry. */
export const ALL_NAMES: readonly string[] = [...new Set([...Object.keys(FULL_SET), ...Object.keys(API_SET), 'permissions-policy', 'content-security-policy-report-only'])]

/** The security headers of a response: the names of both sets (and Permissions-Policy) it carries. */
export function securityHeadersOf (headers: IncomingHttpHeaders | Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of ALL_NAMES) {
    const value = headers[name]
    if (value !== undefined) out[name] = String(value)
  }
  return out
}
