#!/usr/bin/env node
/**
 * The `fastify-secure-https` command: `doctor` (deploy audit of the environment), `check URL`
 * (live audit of a site), `keygen` (a session key) and `trust` (the development CA in the trust
 * stores). Exit codes: 0 no error, 1 errors found,
 * 2 usage error.
 */
import { realpathSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { CheckSiteOptions, SiteCookie, SiteReport } from '../audit/check.ts'
import { doctor, findPackageRoot, readEnvFile, type DoctorReport } from '../audit/doctor.ts'
import { generateSessionKey } from '../audit/keygen.ts'
import { formatChecks, summaryLine } from '../audit/report.ts'
import { allowedHostsSchema, exactHosts } from '../schemas/host-authorization.ts'
import { trustStoreKinds } from '../tls/trust-kinds.ts'
import type { TrustResult } from '../tls/trust-store.ts'

const NAME = 'fastify-secure-https'

const HELP = {
  main: `Usage: ${NAME} <command> [options]

HTTPS checks for Fastify apps that use fastify-secure-https.

Commands:
  doctor          audit the environment before deploying: every production rule and
                  the risky settings, each with an id and its fix
  check <url>     audit a live https:// site: protocols, certificate, HSTS, redirect, cookies
  keygen          print a new session key for SESSION_KEYS
  trust           install the local development CA in the browsers' and the system's
                  trust stores (--uninstall removes it)

Options:
  -h, --help      show this help; "${NAME} <command> --help" for a command's options
  -v, --version   print the version

Exit codes: 0 no error, 1 errors found, 2 usage error.
`,
  doctor: `Usage: ${NAME} doctor [options]

Reads the environment as loadConfig(process.env) does, applies the production rules whatever
NODE_ENV says, and runs the deploy checks (ids in docs/doctor.md): TLS mode and certificate
files (key match, expiry, names, key file mode), TLS_DIR, session keys (set, random, not
published, not shared), TRUST_PROXY, HSTS, the HTTP redirect, the error handler.

Options:
  --json                print the report as JSON
  --env FILE            read the variables from FILE (KEY=value lines, as in a .env file)
                        instead of the process environment
  --compare-env FILE    another environment's env file (e.g. staging.env): fail when it
                        shares a session key with this one; repeatable
  --strict              warnings count as errors for the exit code
  -h, --help            show this help

Exit codes: 0 no failed error check, 1 failed error checks, 2 usage error.

Example:
  NODE_ENV=production TLS_MODE=files TLS_CERT_FILE=/etc/letsencrypt/live/example.com/fullchain.pem \\
    TLS_KEY_FILE=/etc/letsencrypt/live/example.com/privkey.pem ALLOWED_HOSTS=example.com \\
    SESSION_KEYS="$(${NAME} keygen)" ${NAME} doctor
`,
  check: `Usage: ${NAME} check <https://host[:port][/path]> [options]

Connects to a live site and reports: the TLS versions it offers (1.0, 1.1, 1.2, 1.3 each
tried alone), the suite a current client gets, whether CBC suites are accepted, the
certificate (trusted chain, valid for the host, days left, issuer, key type), HSTS and preload
eligibility, whether http://host redirects to https on the same host with a permanent code,
and the flags of every Set-Cookie on the page. Check ids are in docs/check.md.

Options:
  --json                print the report as JSON
  --ca FILE             also trust the CA certificates in FILE (PEM), e.g. a private CA
  --http-port N         port of the plain HTTP redirect to test (default 80)
  --timeout MS          milliseconds for each connection and request (default 5000,
                        at most 2147483647)
  --connect-to IP       connect to this address instead of resolving the host; the host
                        name is still sent as SNI and Host (a site not yet in DNS)
  --strict              warnings count as errors for the exit code
  -h, --help            show this help

Exit codes: 0 no failed error check, 1 failed error checks or unreachable, 2 usage error.

Example:
  ${NAME} check https://example.com
  ${NAME} check https://app.test:8443 --connect-to 127.0.0.1 --http-port 8080 --ca cert.pem
`,
  keygen: `Usage: ${NAME} keygen

Prints a new random 32-byte session key in base64, for SESSION_KEYS. To rotate, put the new
key first: SESSION_KEYS=new,old (cookies are written with the first key, read with any).

Options:
  -h, --help            show this help

Example:
  echo "SESSION_KEYS=$(${NAME} keygen)" >> .env
`,
  trust: `Usage: ${NAME} trust [options]

Installs the development CA of TLS_DIR (made now if there is none yet) in the trust stores, so
that browsers and tools trust https://localhost and every other certificate TLS_MODE=self-signed
issues, now and after ALLOWED_HOSTS changes, as mkcert -install and caddy trust do:

  nss      the NSS databases of $HOME: Chromium and Chrome on Linux ($HOME/.pki/nssdb, made if
           missing) and every Firefox profile; needs certutil (Debian: libnss3-tools)
  system   the system store: update-ca-certificates (Debian, Ubuntu, openSUSE) or
           update-ca-trust (Fedora, Arch), with sudo; the macOS login keychain; the Windows
           user Root store

The CA may only issue for local names (localhost, *.test, *.localhost, private addresses...)
and the exact names ALLOWED_HOSTS held when it was made (a wildcard adds none): its key, kept
0600 in TLS_DIR/ca/, cannot impersonate other sites. Restart the browser afterwards. An earlier
CA of TLS_DIR (kept as ca.replaced-TIME, or one unfit to use) is taken out of the stores.

Options:
  --uninstall           remove the CA (and the earlier ones) from the stores instead
  --status              only tell whether each store has it (and an earlier one)
  --dir DIR             the TLS_DIR (default: $TLS_DIR, else .secure-https)
  --store KIND          nss or system; repeatable (default: both)
  --json                print the results as JSON
  -h, --help            show this help

Exit codes: 0 every store done (or nothing to do), 1 a store could not be done, 2 usage error.

Example:
  npx ${NAME} trust
  npx ${NAME} trust --store nss            # the browsers only, no sudo
  npx ${NAME} trust --uninstall
`
} as const

/** A mistake in the command line: exit 2. */
class UsageError extends Error {}

/** Where the command writes. @internal */
export interface Output {
  out: (text: string) => void
  err: (text: string) => void
}

function parse<T extends NonNullable<ParseArgsConfig['options']>> (args: string[], options: T, allowPositionals: boolean) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true })
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
}

function positiveInteger (value: string | undefined, option: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) throw new UsageError(`${option} must be a whole number from 1 to ${max} (got "${value}")`)
  return Number(value)
}

async function readInput (path: string, option: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    throw new UsageError(`${option} ${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`)
  }
}

function exitCode (report: DoctorReport | SiteReport, strict: boolean): number {
  return report.errors > 0 || (strict && report.warnings > 0) ? 1 : 0
}

async function runDoctor (args: string[], io: Output): Promise<number> {
  const { values } = parse(args, {
    json: { type: 'boolean' },
    env: { type: 'string' },
    'compare-env': { type: 'string', multiple: true },
    strict: { type: 'boolean' }
  }, false)
  if (values.help === true) {
    io.out(HELP.doctor)
    return 0
  }
  let env: Readonly<Record<string, string | undefined>> = process.env
  if (values.env !== undefined) {
    await readInput(values.env, '--env')
    env = (await readEnvFile(values.env)).env
  }
  const compareEnvs = []
  for (const file of values['compare-env'] ?? []) {
    await readInput(file, '--compare-env')
    compareEnvs.push(await readEnvFile(file))
  }
  const report = await doctor(env, { compareEnvs })
  if (values.json === true) {
    io.out(`${JSON.stringify(report, null, 2)}\n`)
  } else {
    const source = values.env === undefined ? 'the process environment' : values.env
    io.out(`${NAME} doctor: ${source}, NODE_ENV=${env.NODE_ENV ?? '(unset)'}, checked with the production rules\n\n`)
    io.out(`${formatChecks(report.checks)}\n\n${summaryLine(report)}\n`)
  }
  return exitCode(report, values.strict === true)
}

/**
 * C0 codes, DEL and C1 codes: what a hostile server puts in a header, a cookie name or a certificate
 * to drive the terminal the report is read in (0x1b starts an escape sequence, and so do the one-byte
 * 0x9b CSI and 0x9d OSC).
 */
// eslint-disable-next-line no-control-regex
const CONTROL_CODES = /[\u0000-\u001f\u007f-\u009f]/g

/** `text` with each control code written as \xNN, for a terminal. */
function printable (text: string): string {
  return text.replace(CONTROL_CODES, (code) => `\\x${code.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/** A copy of `value` with every string in it made printable. */
function printableCopy<T> (value: T): T {
  if (typeof value === 'string') return printable(value) as T
  if (Array.isArray(value)) return value.map(printableCopy) as T
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, printableCopy(item)])) as T
  }
  return value
}

/**
 * JSON without a raw control code: JSON.stringify escapes the C0 codes but leaves DEL and the C1
 * codes as they are; these are written as \u escapes, which JSON reads back as the same text.
 */
function printableJson (value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u007f-\u009f]/g, (code) => `\\u00${code.charCodeAt(0).toString(16)}`)
}

function versionName (version: string): string {
  return version === 'TLSv1' ? 'TLS 1.0' : version.replace('TLSv', 'TLS ')
}

function siteDetails (report: SiteReport, cookieLine: (cookie: SiteCookie) => string): string {
  const lines = [`${NAME} check: ${report.url}${report.connectTo === null ? '' : ` (connected to ${report.connectTo})`}`, '']
  for (const probe of report.protocols) {
    const state = probe.offered === null ? (probe.note ?? 'not tested') : probe.offered ? `offered (${probe.cipher ?? ''})` : 'not offered'
    lines.push(`  ${versionName(probe.version).padEnd(12)}${state}`)
  }
  if (report.negotiated !== null) {
    lines.push(`  ${'negotiated'.padEnd(12)}${report.negotiated.protocol ?? '?'} ${report.negotiated.cipher}${report.negotiated.alpn === null ? '' : `, ALPN ${report.negotiated.alpn}`}`)
  }
  const cert = report.certificate
  if (cert !== null) {
    lines.push(`  ${'certificate'.padEnd(12)}${cert.subject}; ${cert.keyType}; ${cert.daysLeft} days left (${cert.notAfter}); ${cert.trusted ? 'trusted' : `NOT trusted (${cert.trustError ?? ''})`}`)
    lines.push(`  ${'names'.padEnd(12)}${cert.sans.join(', ')}`)
    cert.chain.forEach((link, i) => lines.push(`  ${(i === 0 ? 'chain' : '').padEnd(12)}${i + 1}. ${link.subject}  <-  ${link.issuer}`))
  }
  if (report.reachable && cert !== null) {
    lines.push(`  ${'HSTS'.padEnd(12)}${report.hsts.header ?? '(none)'}`)
    const redirect = report.redirect
    lines.push(`  ${'HTTP'.padEnd(12)}${redirect.url} -> ${redirect.error ?? `${redirect.status ?? '?'}${redirect.location === null ? '' : ` ${redirect.location}`}`}`)
    if (report.cookies.length === 0) lines.push(`  ${'cookies'.padEnd(12)}(none)`)
    report.cookies.forEach((cookie, i) => lines.push(`  ${(i === 0 ? 'cookies' : '').padEnd(12)}${cookieLine(cookie)}`))
  }
  return lines.join('\n')
}

async function runCheck (args: string[], io: Output): Promise<number> {
  const { values, positionals } = parse(args, {
    json: { type: 'boolean' },
    ca: { type: 'string' },
    'http-port': { type: 'string' },
    timeout: { type: 'string' },
    'connect-to': { type: 'string' },
    strict: { type: 'boolean' }
  }, true)
  if (values.help === true) {
    io.out(HELP.check)
    return 0
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'check needs the URL of the site, e.g. https://example.com' : `check takes one URL (got ${positionals.length})`)
  // Loaded here so that doctor and keygen start without the TLS probing code.
  const { checkSite, cookieLine, MAX_CHECK_TIMEOUT } = await import('../audit/check.ts')
  const options: CheckSiteOptions = {}
  if (values.ca !== undefined) {
    const ca = await readInput(values.ca, '--ca')
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--ca ${values.ca} holds no PEM certificate`)
    options.ca = ca
  }
  const httpPort = positiveInteger(values['http-port'], '--http-port', 65535)
  if (httpPort !== undefined) options.httpPort = httpPort
  const timeout = positiveInteger(values.timeout, '--timeout', MAX_CHECK_TIMEOUT)
  if (timeout !== undefined) options.timeout = timeout
  if (values['connect-to'] !== undefined) options.connectTo = values['connect-to']
  let report: SiteReport
  try {
    report = await checkSite(positionals[0] as string, options)
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(error.message)
    throw error
  }
  // What the site sent is printed escaped: the report is read in a terminal.
  if (values.json === true) {
    io.out(`${printableJson(report)}\n`)
  } else if (!report.reachable) {
    io.err(`${NAME} check: ${printable(report.checks[0]?.message ?? 'the site is unreachable')}\n`)
  } else {
    const shown = printableCopy(report)
    io.out(`${siteDetails(shown, cookieLine)}\n\n${formatChecks(shown.checks)}\n\n${summaryLine(shown)}\n`)
  }
  return exitCode(report, values.strict === true)
}

async function runKeygen (args: string[], io: Output): Promise<number> {
  const { values } = parse(args, {}, false)
  if (values.help === true) {
    io.out(HELP.keygen)
    return 0
  }
  io.out(`${generateSessionKey()}\n`)
  return 0
}

const TRUST_MARKS: Record<TrustResult['status'], string> = {
  installed: 'installed',
  removed: 'removed',
  present: 'already there',
  absent: 'not there',
  skipped: 'skipped',
  failed: 'FAILED'
}

/**
 * The hosts a development CA made by `trust` may also issue for (its name constraints): ALLOWED_HOSTS
 * read as loadConfig reads it (`[::1]` is ::1, `Example.com.` is example.com), and only its exact
 * names, as the app gives them to its certificates: a wildcard names no host. @internal
 */
export function trustedHosts (raw: string | undefined): string[] {
  const entries = (raw ?? '').split(',').map((host) => host.trim()).filter((host) => host !== '')
  const parsed = allowedHostsSchema.safeParse(entries)
  if (!parsed.success) throw new UsageError(`ALLOWED_HOSTS: ${parsed.error.issues.map((issue) => issue.message).join('; ')}`)
  return exactHosts(parsed.data)
}

async function runTrust (args: string[], io: Output): Promise<number> {
  const { values } = parse(args, {
    uninstall: { type: 'boolean' },
    status: { type: 'boolean' },
    dir: { type: 'string' },
    store: { type: 'string', multiple: true },
    json: { type: 'boolean' }
  }, false)
  if (values.help === true) {
    io.out(HELP.trust)
    return 0
  }
  if (values.uninstall === true && values.status === true) throw new UsageError('--uninstall and --status cannot be combined')
  const { installTrust, uninstallTrust, trustStatus } = await import('../tls/trust-store.ts')
  const stores = (values.store ?? []).flatMap((value) => value.split(',')).map((value) => value.trim().toLowerCase()).filter((value) => value !== '')
  for (const store of stores) {
    if (!(trustStoreKinds as readonly string[]).includes(store)) throw new UsageError(`--store ${store}: use ${trustStoreKinds.join(' or ')}`)
  }
  const dir = values.dir ?? (process.env.TLS_DIR?.trim() || '.secure-https')
  const { findDevCa, loadOrCreateDevCa, retiredDevCas } = await import('../tls/dev-ca.ts')
  const ca = values.uninstall === true || values.status === true ? await findDevCa(dir) : await loadOrCreateDevCa(dir, trustedHosts(process.env.ALLOWED_HOSTS))
  // CAs this TLS_DIR held before (or holds but will not use): a root replaced because it was unfit
  // stays trusted until it is taken out of the stores, which trust and trust --uninstall do.
  const retired = await retiredDevCas(dir)
  if (ca === null && retired.length === 0) {
    io.out(`${NAME} trust: no development CA in ${resolve(dir)}; nothing to ${values.uninstall === true ? 'remove' : 'check'} (it is made at the first start with TLS_MODE=self-signed, or by "${NAME} trust")\n`)
    return 0
  }
  const storeOptions = stores.length > 0 ? { stores: stores as Array<typeof trustStoreKinds[number]> } : {}
  const results = ca === null
    ? []
    : values.uninstall === true ? await uninstallTrust({ cert: ca.cert, certPath: ca.certPath, ...storeOptions }) : values.status === true ? await trustStatus({ cert: ca.cert, certPath: ca.certPath, ...storeOptions }) : await installTrust({ cert: ca.cert, certPath: ca.certPath, ...storeOptions })
  const earlier: Array<{ path: string, fingerprint: string, reason: string, results: TrustResult[] }> = []
  for (const old of retired) {
    const options = { cert: old.cert, certPath: old.certPath, ...storeOptions }
    // Asked first, so that a store where it is absent is not touched (no sudo for nothing).
    const status = await trustStatus(options)
    const present = status.filter((result) => result.status === 'present')
    const done = values.status === true || present.length === 0
      ? status
      : await uninstallTrust({ ...options, stores: [...new Set(present.map((result) => result.kind))] })
    earlier.push({ path: old.certPath, fingerprint: old.fingerprint, reason: old.reason, results: done })
  }
  const failed = [...results, ...earlier.flatMap((old) => old.results)].some((result) => result.status === 'failed')
  const code = failed && values.status !== true ? 1 : 0
  if (values.json === true) {
    const current = ca === null ? null : { path: ca.certPath, fingerprint: ca.fingerprint, notAfter: ca.notAfter, permitted: ca.permitted }
    io.out(`${JSON.stringify({ ca: current, results, retired: earlier }, null, 2)}\n`)
    return code
  }
  const lines = ca === null
    ? [`${NAME} trust: no development CA in use in ${resolve(dir)}`, '']
    : [
        `${NAME} trust: the development CA ${ca.certPath}${ca.created ? ' (made now)' : ''}`,
        `  SHA-256 ${ca.fingerprint}, valid until ${ca.notAfter.toISOString().slice(0, 10)}`,
        `  may issue for: ${ca.permitted.dns.map((name) => name.includes('.') || name === 'localhost' ? `${name}, *.${name}` : `*.${name}`).join(', ')}, ${ca.permitted.ip.join(', ')}`,
        ''
      ]
  for (const result of results) {
    lines.push(`  ${result.store}: ${TRUST_MARKS[result.status]}${result.location === '' ? '' : ` (${result.location})`}`)
    if (result.detail !== undefined) lines.push(`      ${result.detail}`)
  }
  for (const old of earlier) {
    const shown = old.results.filter((result) => result.status !== 'absent' && result.status !== 'skipped')
    if (shown.length === 0) continue
    lines.push('', `  an earlier development CA, not in use: ${old.path} (${old.reason}), SHA-256 ${old.fingerprint}`)
    for (const result of shown) {
      lines.push(`    ${result.store}: ${result.status === 'present' ? `still trusted (${result.location}): remove it with "${NAME} trust --uninstall"` : `${TRUST_MARKS[result.status]}${result.location === '' ? '' : ` (${result.location})`}`}`)
      if (result.detail !== undefined) lines.push(`        ${result.detail}`)
    }
  }
  lines.push('')
  if (ca !== null && values.uninstall !== true && values.status !== true) {
    lines.push('Restart the browser to pick the change up.')
    lines.push(`Node.js reads none of these stores: NODE_EXTRA_CA_CERTS=${ca.certPath} node app.js (or, with the system store done, node --use-system-ca on Node 22.15 or later).`)
    lines.push(`curl: --cacert ${ca.certPath}, or the system store.`)
  }
  io.out(`${lines.join('\n')}\n`)
  return code
}

async function version (): Promise<string> {
  const root = await findPackageRoot()
  if (root === null) return 'unknown'
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version?: string }
  return pkg.version ?? 'unknown'
}

/** Runs the command line; resolves with the exit code. @internal */
export async function main (argv: string[], io: Output): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case 'doctor': return await runDoctor(rest, io)
      case 'check': return await runCheck(rest, io)
      case 'keygen': return await runKeygen(rest, io)
      case 'trust': return await runTrust(rest, io)
      case undefined:
        io.err(HELP.main)
        return 2
      case '-h': case '--help': case 'help':
        io.out(HELP.main)
        return 0
      case '-v': case '--version':
        io.out(`${await version()}\n`)
        return 0
      default:
        throw new UsageError(`unknown command "${command}"; the commands are doctor, check, keygen and trust`)
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`${NAME}: ${error.message}\nRun "${NAME} ${command !== undefined && command in HELP ? `${command} ` : ''}--help" for usage.\n`)
      return 2
    }
    // Not a usage mistake: a bug or an unexpected failure. One line, no stack unless asked for.
    io.err(`${NAME}: ${(error as Error).message}${process.env.DEBUG === undefined ? '' : `\n${(error as Error).stack ?? ''}`}\n`)
    return 1
  }
}

/** True when this file is the program (run directly or through the npm bin link), not imported. */
function isEntry (): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url)
  } catch {
    return false
  }
}

if (isEntry()) {
  main(process.argv.slice(2), {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text)
  }).then((code) => { process.exitCode = code }, (error: unknown) => {
    process.stderr.write(`${NAME}: ${String(error)}\n`)
    process.exitCode = 1
  })
}
