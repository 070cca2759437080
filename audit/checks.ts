/**
 * The check tables of the deploy audit (`doctor`) and the live audit (`check`): ids, severities,
 * titles and fixes, as data. Apart from the code that runs the checks, so that an app that imports
 * the package for its plugins does not load that code (docs/benchmarks.md, "Import").
 */
import type { CheckDefinition } from './report.ts'

/** A certificate with fewer days left fails SH-TLS-007. */
export const EXPIRY_WARNING_DAYS = 30
/** Six months: below this HSTS max-age fails SH-HSTS-003 (the Mozilla Observatory's threshold). */
export const HSTS_MIN_RECOMMENDED = 15768000
export const KEYGEN = '`npx fastify-secure-https keygen` (or openssl rand -base64 32)'

/**
 * Every doctor check, in report order. The ids are stable: a check that changes meaning gets a new
 * id. docs/doctor.md documents each (test/cli-docs.test.ts keeps the two in step).
 */
export const doctorChecks = {
  'SH-CONFIG-001': { severity: 'error', title: 'Every variable has a valid value', fix: 'Correct each value as its message says; the README\'s table lists every variable and its format' },
  'SH-ENV-001': { severity: 'warning', title: 'NODE_ENV is production', fix: 'Set NODE_ENV=production where the app runs: it switches on the production rules, which doctor applies either way' },
  'SH-TLS-001': { severity: 'error', title: 'TLS_MODE is set', fix: 'Set TLS_MODE=files (certificate files, e.g. from certbot), acme (Let\'s Encrypt) or proxy (TLS ends at nginx/haproxy)' },
  'SH-TLS-002': { severity: 'error', title: 'No self-signed certificate', fix: 'Use TLS_MODE=files with a certificate from a public CA, TLS_MODE=acme, or TLS_MODE=proxy; browsers reject self-signed certificates' },
  'SH-TLS-003': { severity: 'error', title: 'No plain HTTP', fix: 'Use TLS_MODE=files or acme, or TLS_MODE=proxy when TLS ends at a load balancer' },
  'SH-TLS-004': { severity: 'error', title: 'TLS_CERT_FILE and TLS_KEY_FILE are set for TLS_MODE=files', fix: 'Point TLS_CERT_FILE at the full chain (certbot: fullchain.pem) and TLS_KEY_FILE at its key (privkey.pem)' },
  'SH-TLS-005': { severity: 'error', title: 'The certificate files are readable, belong together and are in date', fix: 'Use the key the certificate was issued for, renew an expired certificate, order the chain leaf first; run doctor as the user the app runs as' },
  'SH-TLS-006': { severity: 'warning', title: 'The certificate covers every ALLOWED_HOSTS name', fix: 'Reissue the certificate with every ALLOWED_HOSTS name as a subject alternative name (certbot -d name ...), or drop the names the site does not serve; with TLS_MODE=acme list them in ACME_DOMAINS' },
  'SH-TLS-007': { severity: 'warning', title: `The certificate is valid for ${EXPIRY_WARNING_DAYS} more days`, fix: 'Renew it now (certbot renew) and make sure renewal runs on its own (a timer or cron job), or switch to TLS_MODE=acme' },
  'SH-TLS-008': { severity: 'warning', title: 'The private key file is readable by its owner only', fix: 'chmod 600 the key file and chown it to the user the app runs as' },
  'SH-TLS-009': { severity: 'warning', title: 'TLS_DIR is writable', fix: 'Create TLS_DIR writable by the app\'s user only (mkdir -p DIR && chmod 700 DIR), or point TLS_DIR at a writable volume' },
  'SH-ACME-001': { severity: 'error', title: 'The ACME settings are complete', fix: 'Set ACME_DOMAINS, ACME_EMAIL and, after reading the CA\'s terms, ACME_AGREE_TOS=true' },
  'SH-SESSION-001': { severity: 'error', title: 'SESSION_KEYS is set', fix: `Set SESSION_KEYS to a key from ${KEYGEN}, the same on every instance of the app` },
  'SH-SESSION-002': { severity: 'error', title: 'Every session key is 32 random bytes, each distinct', fix: `Replace the key with one from ${KEYGEN}` },
  'SH-SESSION-003': { severity: 'error', title: 'No session key is a published example', fix: `A published key lets anyone forge a session: put a new key from ${KEYGEN} in SESSION_KEYS and remove the published one` },
  'SH-SESSION-004': { severity: 'warning', title: 'No session key is shared with another environment', fix: `Give each environment its own key, so that a cookie from staging does not open a session in production: ${KEYGEN}` },
  'SH-PROXY-001': { severity: 'error', title: 'TRUST_PROXY does not trust every peer', fix: 'List the proxies\' addresses: TRUST_PROXY=127.0.0.1, a subnet such as 10.0.3.0/24, or loopback' },
  'SH-PROXY-002': { severity: 'error', title: 'TRUST_PROXY holds no hop count', fix: 'Replace the number with the proxies\' addresses: TRUST_PROXY=127.0.0.1, a subnet such as 10.0.3.0/24, or loopback' },
  'SH-PROXY-003': { severity: 'error', title: 'TRUST_PROXY is set when TLS ends at a proxy', fix: 'Set TRUST_PROXY to the address of the proxy that terminates TLS, e.g. 127.0.0.1 for nginx on the same host' },
  'SH-PROXY-004': { severity: 'warning', title: 'TRUST_PROXY names proxies, not whole private ranges', fix: 'Narrow TRUST_PROXY to the proxies\' addresses or their own subnet (e.g. 10.0.3.0/24): every host in a trusted range can spoof client IPs and claim HTTPS' },
  'SH-HOST-001': { severity: 'error', title: 'Requests for hosts not in ALLOWED_HOSTS are refused', fix: 'Set ALLOWED_HOSTS to the site\'s names (ALLOWED_HOSTS=example.com,www.example.com,*.example.org) and leave host authorization on (do not pass hostAuthorization: false)' },
  'SH-CSRF-001': { severity: 'warning', title: 'Cross-site request protection is on', fix: 'Leave crossSite on (do not pass crossSite: false); let other sites in with CROSS_SITE_TRUSTED_ORIGINS, or opt a route out with config: { crossSite: false }' },
  'SH-HSTS-001': { severity: 'error', title: 'HSTS preload has what it requires', fix: 'With HSTS_PRELOAD=true set HSTS_MAX_AGE=31536000 or more and HSTS_INCLUDE_SUBDOMAINS=true and keep the HTTP redirect on; or set HSTS_PRELOAD=false' },
  'SH-HSTS-002': { severity: 'warning', title: 'HSTS is on', fix: 'Set HSTS_MAX_AGE=31536000 once every page works over HTTPS' },
  'SH-HSTS-003': { severity: 'warning', title: 'HSTS max-age is between six months and two years', fix: 'Set HSTS_MAX_AGE=31536000 (one year)' },
  'SH-HSTS-004': { severity: 'info', title: 'The HSTS policy is eligible for the preload list', fix: 'When every subdomain serves HTTPS: HSTS_MAX_AGE=31536000 HSTS_INCLUDE_SUBDOMAINS=true HSTS_PRELOAD=true, then submit the domain at https://hstspreload.org' },
  'SH-REDIRECT-001': { severity: 'error', title: 'ALLOWED_HOSTS is set while the HTTPS redirect is on', fix: 'List the site\'s host names: ALLOWED_HOSTS=example.com,www.example.com' },
  'SH-REDIRECT-002': { severity: 'warning', title: 'HTTP redirects to HTTPS', fix: 'Leave HTTP_PORT on (80 in production) so that http:// links and typed names reach HTTPS; set HTTP_PORT=off only when something in front already redirects' },
  'SH-ERRORS-001': { severity: 'error', title: '5xx responses do not carry internal error messages', fix: 'Leave the suite\'s error handler on in production (do not pass errorHandler: false)' },
  'SH-METRICS-001': { severity: 'info', title: 'Metrics are on', fix: 'Set METRICS=true (and npm install prom-client) and have Prometheus scrape http://127.0.0.1:9464/metrics: certificate expiry, renewal failures, security events and the session store, alerted on without parsing logs (docs/observability.md)' },
  'SH-METRICS-002': { severity: 'warning', title: 'The metrics listener is reachable from this host only', fix: 'Set METRICS_HOST=127.0.0.1 with the scraper on this host, or let only the scraper reach METRICS_PORT (a firewall rule, a Kubernetes NetworkPolicy)' }
} as const satisfies Record<string, Omit<CheckDefinition, 'id'>>

/** The id of a doctor check. */
export type DoctorCheckId = keyof typeof doctorChecks

/** Every doctor check id, in report order. */
export const doctorCheckIds = Object.keys(doctorChecks) as DoctorCheckId[]

/** A certificate with fewer days left fails SH-LIVE-012. */
export const LIVE_EXPIRY_WARNING_DAYS = 30

/**
 * Every live check, in report order. Stable ids; docs/check.md documents each
 * (test/cli-docs.test.ts keeps the two in step).
 */
export const siteChecks = {
  'SH-LIVE-001': { severity: 'error', title: 'The site accepts a TLS connection from a current client', fix: 'Check the URL and port, that the server runs and listens on an address this machine can reach, and that the port speaks TLS' },
  'SH-LIVE-002': { severity: 'error', title: 'TLS 1.0 is not offered', fix: 'Use the intermediate or modern profile (TLS_PROFILE), which start at TLS 1.2; at a proxy: ssl_protocols TLSv1.2 TLSv1.3 (nginx), ssl-min-ver TLSv1.2 (haproxy)' },
  'SH-LIVE-003': { severity: 'error', title: 'TLS 1.1 is not offered', fix: 'Use the intermediate or modern profile (TLS_PROFILE), which start at TLS 1.2; at a proxy: ssl_protocols TLSv1.2 TLSv1.3 (nginx), ssl-min-ver TLSv1.2 (haproxy)' },
  'SH-LIVE-004': { severity: 'warning', title: 'TLS 1.3 is offered', fix: 'Allow TLS 1.3 (maxVersion TLSv1.3; both profiles of the suite do); at a proxy, upgrade OpenSSL and list TLSv1.3' },
  'SH-LIVE-005': { severity: 'info', title: 'TLS 1.2 is offered, for clients without TLS 1.3', fix: 'Use TLS_PROFILE=intermediate unless every client speaks TLS 1.3' },
  'SH-LIVE-006': { severity: 'warning', title: 'The negotiated suite has forward secrecy and authenticated encryption', fix: 'Offer only ECDHE suites with AES-GCM or ChaCha20-Poly1305 (TLS_PROFILE=intermediate does)' },
  'SH-LIVE-007': { severity: 'warning', title: 'No CBC-mode suite is accepted at TLS 1.2', fix: 'Drop the CBC suites (AES-SHA, AES-SHA256, ...): use TLS_PROFILE=intermediate, or Mozilla\'s intermediate cipher list at the proxy' },
  'SH-LIVE-010': { severity: 'error', title: 'The certificate chain is trusted', fix: 'Serve the full chain (leaf, then intermediates: certbot\'s fullchain.pem) from a public CA; for a private CA pass --ca FILE' },
  'SH-LIVE-011': { severity: 'error', title: 'The certificate is valid for the host name', fix: 'Reissue the certificate with this name as a subject alternative name, or list it in ALLOWED_HOSTS / ACME_DOMAINS' },
  'SH-LIVE-012': { severity: 'warning', title: `The certificate is valid for ${LIVE_EXPIRY_WARNING_DAYS} more days`, fix: 'Renew it now and make sure renewal runs on its own, or use TLS_MODE=acme' },
  'SH-LIVE-013': { severity: 'warning', title: 'The certificate key is strong (RSA 2048+ or ECDSA 256+)', fix: 'Reissue with an ECDSA P-256 key (certbot --key-type ecdsa) or RSA 2048 or more' },
  'SH-LIVE-020': { severity: 'error', title: 'Strict-Transport-Security is sent', fix: 'Set HSTS_MAX_AGE=31536000 (the suite sends it over HTTPS, never to localhost); at a proxy: add_header Strict-Transport-Security "max-age=31536000" always' },
  'SH-LIVE-021': { severity: 'warning', title: 'HSTS max-age is at least six months', fix: 'Set HSTS_MAX_AGE=31536000 (one year)' },
  'SH-LIVE-022': { severity: 'info', title: 'The site is eligible for the HSTS preload list', fix: 'When every subdomain serves HTTPS: HSTS_MAX_AGE=31536000 HSTS_INCLUDE_SUBDOMAINS=true HSTS_PRELOAD=true, a permanent redirect on port 80, then submit at https://hstspreload.org' },
  'SH-LIVE-030': { severity: 'error', title: 'Plain HTTP does not serve the site', fix: 'Answer every plain HTTP request with a redirect to https:// (the suite\'s redirect listener on HTTP_PORT, or `return 301 https://$host$request_uri;` in nginx)' },
  'SH-LIVE-031': { severity: 'warning', title: 'HTTP redirects to HTTPS on the same host with a permanent code', fix: 'Redirect http://host/path to https://host/path with 301 (or 308) on the same host name: the suite\'s redirect listener does' },
  'SH-LIVE-040': { severity: 'error', title: 'Every cookie is Secure', fix: 'Mark every cookie Secure (the suite\'s session cookie is); a cookie without it goes out over plain HTTP' },
  'SH-LIVE-041': { severity: 'warning', title: 'Every cookie is HttpOnly', fix: 'Mark cookies HttpOnly unless page scripts must read them, so an XSS cannot steal them' },
  'SH-LIVE-042': { severity: 'warning', title: 'Every cookie has SameSite', fix: 'Set SameSite=Lax (or Strict) so that other sites\' requests do not carry the cookie' },
  'SH-LIVE-043': { severity: 'error', title: 'Cookie name prefixes keep their rules', fix: '__Secure- cookies need Secure; __Host- cookies need Secure, Path=/ and no Domain (browsers drop them otherwise)' }
} as const satisfies Record<string, Omit<CheckDefinition, 'id'>>

/** The id of a live check. */
export type SiteCheckId = keyof typeof siteChecks

/** Every live check id, in report order. */
export const siteCheckIds = Object.keys(siteChecks) as SiteCheckId[]
