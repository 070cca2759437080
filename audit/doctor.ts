/**
 * `fastify-secure-https doctor`: the deploy audit, in the manner of Django's `check --deploy`.
 *
 * It reads the environment exactly as `loadConfig` does, but always with the production rules on
 * (the question it answers is "is this safe to deploy?"), turns every problem `loadConfig` would
 * refuse into a failed check, and adds the risky-but-legal settings as warnings: HSTS short or off,
 * a certificate that misses a host or is about to expire, a key file others can read, a published
 * or shared session key, a whole private range trusted as proxies. Every check has a stable id,
 * documented in docs/doctor.md with its fix.
 */
import { constants as fsConstants } from 'node:fs'
import { access, readFile, readdir, stat } from 'node:fs/promises'
import { BlockList, isIP } from 'node:net'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ConfigIssue } from '../errors.ts'
import { isProductionEnv, toConfigIssues } from '../schemas/common.ts'
import { configSchema, type SecureHttpsConfig } from '../schemas/config.ts'
import { envToOptions, variableOf, type Env } from '../schemas/env.ts'
import { PRELOAD_MIN_MAX_AGE } from '../schemas/hsts.ts'
import { metricsExposure } from '../schemas/metrics.ts'
import { proxyPresets } from '../schemas/proxy-trust.ts'
import { isPublishedSessionKey, SESSION_KEY_BYTES, sessionKeyWeakness } from '../schemas/secure-session.ts'
import { certificateFiles } from '../schemas/tls.ts'
import { checkPrivateDir } from '../storage/private-dir.ts'
import { assertUsablePair, chainProblems, inspectCertificate, uncoveredHosts, type CertificateInfo } from '../tls/inspect.ts'
import { doctorChecks, doctorCheckIds, EXPIRY_WARNING_DAYS, HSTS_MIN_RECOMMENDED, type DoctorCheckId } from './checks.ts'
import { keyFingerprint } from './keygen.ts'
import { result, summarize, type CheckDefinition, type CheckResult, type ReportSummary } from './report.ts'

export type { CheckDefinition, CheckResult, CheckStatus, ReportSummary, Severity } from './report.ts'

const DAY = 86_400_000

function definition (id: DoctorCheckId): CheckDefinition {
  return { id, ...doctorChecks[id] }
}

/**
 * Which check a `loadConfig` problem belongs to, by its variable and message. A message that matches
 * no rule is still reported, under SH-CONFIG-001.
 */
const issueRules: ReadonlyArray<{ id: DoctorCheckId, variables: readonly string[], message?: RegExp }> = [
  { id: 'SH-TLS-001', variables: ['TLS_MODE'], message: /required in production/ },
  { id: 'SH-TLS-002', variables: ['TLS_MODE'], message: /self-signed/ },
  { id: 'SH-TLS-003', variables: ['TLS_MODE'], message: /plain HTTP/ },
  { id: 'SH-TLS-004', variables: ['TLS_CERT_FILE', 'TLS_KEY_FILE'], message: /required with TLS_MODE=files/ },
  { id: 'SH-ACME-001', variables: ['ACME_DOMAINS', 'ACME_EMAIL', 'ACME_AGREE_TOS', 'ACME_DIRECTORY', 'ACME_CA_FILE'] },
  { id: 'SH-SESSION-001', variables: ['SESSION_KEYS'], message: /required in production/ },
  { id: 'SH-SESSION-003', variables: ['SESSION_KEYS'], message: /published example/ },
  { id: 'SH-SESSION-002', variables: ['SESSION_KEYS'] },
  { id: 'SH-PROXY-002', variables: ['TRUST_PROXY'], message: /hop count/ },
  { id: 'SH-PROXY-001', variables: ['TRUST_PROXY'], message: /every peer|everyone/ },
  { id: 'SH-PROXY-003', variables: ['TRUST_PROXY'], message: /TLS_MODE=proxy/ },
  { id: 'SH-HSTS-001', variables: ['HSTS_PRELOAD'], message: /preload requires/ },
  { id: 'SH-REDIRECT-001', variables: ['ALLOWED_HOSTS'], message: /redirect/ },
  { id: 'SH-HOST-001', variables: ['ALLOWED_HOSTS'], message: /required in production/ },
  { id: 'SH-METRICS-002', variables: ['METRICS_HOST'], message: /public address/ }
]

/** The check a configuration problem fails. @internal */
export function checkIdOfIssue (issue: ConfigIssue): DoctorCheckId {
  const variable = issue.variable ?? variableOf(issue.path)
  for (const rule of issueRules) {
    if (variable === undefined || !rule.variables.includes(variable)) continue
    if (rule.message === undefined || rule.message.test(issue.message)) return rule.id
  }
  return 'SH-CONFIG-001'
}

/** Options of `doctor` and `doctorConfig`. */
export interface DoctorOptions {
  /** The clock, for tests. */
  now?: number
  /**
   * Other environments (e.g. staging's env file) whose SESSION_KEYS must not be reused here.
   * Keys are compared by SHA-256 fingerprint and never printed.
   */
  compareEnvs?: ReadonlyArray<{ name: string, env: Env }>
  /** More published keys (base64) to refuse, besides those in the package's docs and examples. */
  publishedKeys?: readonly string[]
}

/** What `doctor` returns. */
export interface DoctorReport extends ReportSummary {
  /** Whether NODE_ENV was production (doctor applies the production rules either way). */
  production: boolean
  /** Every check in `doctorCheckIds` order. */
  checks: CheckResult[]
}

function decodeKey (text: string): Buffer | null {
  const trimmed = text.trim()
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)) return null
  const buffer = Buffer.from(trimmed, 'base64')
  return buffer.length === SESSION_KEY_BYTES && buffer.toString('base64') === trimmed ? buffer : null
}

function keysOf (value: string | undefined): Buffer[] {
  if (value === undefined) return []
  return value.split(',').map(decodeKey).filter((key): key is Buffer => key !== null)
}

const BASE64_KEY = /(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])/g

/** Session keys written in a text (any 32-byte base64 string). @internal */
export function keysInText (text: string): Buffer[] {
  return (text.match(BASE64_KEY) ?? []).map(decodeKey).filter((key): key is Buffer => key !== null)
}

let published: Promise<Map<string, string>> | undefined

/**
 * Fingerprints of the keys printed in the package's README, docs and examples, with where each
 * was found: anyone can copy them, so none may sign real sessions. Read once per process.
 */
export function publishedKeyFingerprints (): Promise<Map<string, string>> {
  published ??= (async () => {
    const found = new Map<string, string>()
    const root = await findPackageRoot()
    if (root === null) return found
    const files: string[] = ['README.md']
    for (const folder of ['docs', 'examples']) {
      try {
        const entries = await readdir(join(root, folder), { recursive: true })
        files.push(...entries.filter((name) => /\.(md|ts|js|env|txt|ya?ml|json)$/.test(name)).map((name) => join(folder, name)))
      } catch {}
    }
    for (const file of files) {
      try {
        const text = await readFile(join(root, file), 'utf8')
        for (const key of keysInText(text)) {
          const fingerprint = keyFingerprint(key)
          if (!found.has(fingerprint)) found.set(fingerprint, file)
        }
      } catch {}
    }
    return found
  })()
  return published
}

/** The folder of this package's package.json, from the source or the build. @internal */
export async function findPackageRoot (): Promise<string | null> {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { name?: unknown }
      if (pkg.name === 'fastify-secure-https') return dir
    } catch {}
    dir = dirname(dir)
  }
  return null
}

function text (value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined
}

function record (value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? value as Record<string, unknown> : {}
}

function strings (value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string').map((item) => item.toLowerCase()) : []
}

/** What the checks look at, from the resolved config or, when it has errors, the raw options. */
interface Facts {
  nodeEnv: string | undefined
  config: SecureHttpsConfig | null
  mode: string | undefined
  certFile: string | undefined
  keyFile: string | undefined
  caFile: string | undefined
  passphrase: string | undefined
  dir: string | undefined
  allowedHosts: string[]
  acmeDomains: string[]
  sessionKeys: Buffer[]
  /** TRUST_PROXY as given: true, false or the list. */
  trust: boolean | string[]
}

function factsFromConfig (config: SecureHttpsConfig, nodeEnv: string | undefined): Facts {
  const tls = config.tls === false ? null : config.tls
  return {
    nodeEnv,
    config,
    mode: tls?.mode ?? 'off',
    certFile: tls?.certFile,
    keyFile: tls?.keyFile,
    caFile: tls?.caFile,
    passphrase: tls?.passphrase,
    dir: tls?.dir,
    allowedHosts: [...config.allowedHosts],
    acmeDomains: tls === null ? [] : [...tls.acme.domains],
    sessionKeys: config.secureSession === false ? [] : [...config.secureSession.keys],
    trust: config.proxyTrust === false ? false : config.proxyTrust.trust
  }
}

function factsFromOptions (options: Record<string, unknown>, env: Env): Facts {
  const tls = record(options.tls)
  const trust = record(options.proxyTrust).trust
  return {
    nodeEnv: env.NODE_ENV,
    config: null,
    mode: text(tls.mode),
    certFile: text(tls.certFile),
    keyFile: text(tls.keyFile),
    caFile: text(tls.caFile),
    passphrase: text(tls.passphrase),
    dir: text(tls.dir) ?? '.secure-https',
    allowedHosts: strings(options.allowedHosts),
    acmeDomains: strings(record(tls.acme).domains),
    sessionKeys: keysOf(env.SESSION_KEYS),
    trust: typeof trust === 'boolean' ? trust : strings(trust)
  }
}

function describeFsError (error: unknown, path: string): string {
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return `${path} does not exist`
  if (code === 'EACCES' || code === 'EPERM') return `${path} cannot be read by this user (uid ${process.getuid?.() ?? '?'}); run doctor as the user the app runs as`
  if (code === 'EISDIR') return `${path} is a directory, not a PEM file`
  return `${path} cannot be read (${(error as Error).message})`
}

interface PairFacts {
  certFile: string
  keyFile: string
  info: CertificateInfo | null
  problems: string[]
}

interface CertificateFacts {
  /** One entry per pair of TLS_CERT_FILE and TLS_KEY_FILE (comma-separated lists, paired by position). */
  pairs: PairFacts[]
  problems: string[]
}

async function readCertificatePair (certFile: string, keyFile: string, facts: Facts, now: number, several: boolean): Promise<PairFacts> {
  const problems: string[] = []
  const which = several ? ` (the pair ${certFile}, ${keyFile})` : ''
  let certPem: string | undefined
  let keyPem: string | undefined
  let info: CertificateInfo | null = null
  try {
    certPem = await readFile(certFile, 'utf8')
  } catch (error) {
    problems.push(`TLS_CERT_FILE: ${describeFsError(error, certFile)}`)
  }
  try {
    keyPem = await readFile(keyFile, 'utf8')
  } catch (error) {
    problems.push(`TLS_KEY_FILE: ${describeFsError(error, keyFile)}`)
  }
  if (certPem !== undefined) {
    try {
      info = inspectCertificate(certPem)
      problems.push(...chainProblems(certPem).map((problem) => `TLS_CERT_FILE${which}: ${problem}`))
    } catch (error) {
      problems.push(`TLS_CERT_FILE${which}: ${(error as Error).message}`)
    }
  }
  if (certPem !== undefined && keyPem !== undefined && info !== null) {
    try {
      assertUsablePair(certPem, keyPem, facts.passphrase, now, `certificate ${certFile}`, `private key ${keyFile}`)
    } catch (error) {
      problems.push(`TLS_CERT_FILE/TLS_KEY_FILE: ${(error as Error).message}`)
    }
  }
  return { certFile, keyFile, info, problems }
}

async function readCertificateFiles (facts: Facts, now: number): Promise<CertificateFacts> {
  // Lists of unequal length, or with an empty entry, are the tls schema's issue (reported under
  // TLS_KEY_FILE or TLS_CERT_FILE); the pairs it would make are read here.
  const listed = certificateFiles({ certFile: facts.certFile as string, keyFile: facts.keyFile as string })
    .filter((pair) => pair.certFile !== '' && pair.keyFile !== '')
  const pairs = await Promise.all(listed.map(({ certFile, keyFile }) => readCertificatePair(certFile, keyFile, facts, now, listed.length > 1)))
  const problems = pairs.flatMap((pair) => pair.problems)
  if (facts.caFile !== undefined) {
    try {
      const ca = await readFile(facts.caFile, 'utf8')
      if (!ca.includes('-----BEGIN CERTIFICATE-----')) problems.push(`TLS_CA_FILE: ${facts.caFile} holds no PEM certificate`)
    } catch (error) {
      problems.push(`TLS_CA_FILE: ${describeFsError(error, facts.caFile)}`)
    }
  }
  return { pairs, problems }
}

/** Why TLS_DIR cannot be used, or null; with a note when it will be created. */
async function dirProblem (dir: string): Promise<{ problem: string | null, note: string }> {
  const absolute = resolve(dir)
  let target = absolute
  for (;;) {
    try {
      const info = await stat(target)
      if (!info.isDirectory()) return { problem: `${target} is not a directory`, note: '' }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && dirname(target) !== target) {
        target = dirname(target)
        continue
      }
      return { problem: `${target} cannot be read (${(error as Error).message})`, note: '' }
    }
    try {
      await access(target, fsConstants.W_OK | fsConstants.X_OK)
    } catch {
      return {
        problem: target === absolute
          ? `TLS_DIR ${absolute} is not writable by this user (uid ${process.getuid?.() ?? '?'})`
          : `TLS_DIR ${absolute} does not exist and ${target} is not writable, so it cannot be created`,
        note: ''
      }
    }
    if (target === absolute) {
      // What the app checks at start (storage/private-dir.ts): its owner, and no one else may write.
      try {
        await checkPrivateDir(absolute, { variable: 'TLS_DIR' })
      } catch (error) {
        return { problem: (error as Error).message, note: '' }
      }
    }
    return { problem: null, note: target === absolute ? `TLS_DIR ${absolute} is writable, by this user only` : `TLS_DIR ${absolute} does not exist yet; it will be created in ${target}, which is writable` }
  }
}

/** Private and special ranges, by their first and last address: trusting one whole is trusting a crowd. */
const wideRanges = [
  { name: '10.0.0.0/8', first: '10.0.0.0', last: '10.255.255.255', family: 'ipv4' },
  { name: '172.16.0.0/12', first: '172.16.0.0', last: '172.31.255.255', family: 'ipv4' },
  { name: '192.168.0.0/16', first: '192.168.0.0', last: '192.168.255.255', family: 'ipv4' },
  { name: '100.64.0.0/10', first: '100.64.0.0', last: '100.127.255.255', family: 'ipv4' },
  { name: '169.254.0.0/16', first: '169.254.0.0', last: '169.254.255.255', family: 'ipv4' },
  { name: 'fc00::/7', first: 'fc00::', last: 'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', family: 'ipv6' },
  { name: 'fe80::/10', first: 'fe80::', last: 'febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff', family: 'ipv6' }
] as const

/** The whole private ranges a TRUST_PROXY entry covers (presets expanded). @internal */
export function wideRangesOf (entry: string): string[] {
  const cidrs: readonly string[] = Object.hasOwn(proxyPresets, entry) ? proxyPresets[entry as keyof typeof proxyPresets] : [entry]
  const covered = new Set<string>()
  for (const cidr of cidrs) {
    const slash = cidr.indexOf('/')
    if (slash === -1) continue
    const address = cidr.slice(0, slash)
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4'
    const blocks = new BlockList()
    try {
      blocks.addSubnet(address, Number(cidr.slice(slash + 1)), family)
    } catch {
      continue
    }
    for (const range of wideRanges) {
      if (range.family === family && blocks.check(range.first, family) && blocks.check(range.last, family)) covered.add(range.name)
    }
  }
  return [...covered]
}

function trustText (trust: boolean | readonly string[]): string {
  return typeof trust === 'boolean' ? String(trust) : trust.length === 0 ? 'false' : trust.join(',')
}

const IN_PROCESS = new Set(['self-signed', 'files', 'acme'])

async function runChecks (facts: Facts, issues: readonly ConfigIssue[], options: DoctorOptions): Promise<CheckResult[]> {
  const now = options.now ?? Date.now()
  const out = new Map<DoctorCheckId, CheckResult>()
  const set = (id: DoctorCheckId, status: CheckResult['status'], message: string): void => {
    if (!out.has(id)) out.set(id, result(definition(id), status, message))
  }
  const failed = new Map<DoctorCheckId, ConfigIssue[]>()
  for (const issue of issues) {
    const id = checkIdOfIssue(issue)
    failed.set(id, [...(failed.get(id) ?? []), issue])
  }
  for (const [id, list] of failed) set(id, 'fail', list.map((issue) => `${issue.variable ?? issue.path}: ${issue.message}`).join('; '))

  const { config, mode } = facts
  const production = isProductionEnv(facts.nodeEnv)
  set('SH-CONFIG-001', 'pass', 'every variable parses and is valid')
  set('SH-ENV-001', production ? 'pass' : 'fail', production
    ? `NODE_ENV=${JSON.stringify(facts.nodeEnv)}: production rules on`
    : `NODE_ENV=${facts.nodeEnv === undefined ? '(unset)' : JSON.stringify(facts.nodeEnv)}: the app would start without the production rules (doctor applied them anyway)`)

  // Production rules, for a config that resolved without them (the aggregate's own config in development).
  if (mode === undefined) set('SH-TLS-001', 'skip', 'TLS_MODE is not set')
  else set('SH-TLS-001', 'pass', `TLS_MODE=${mode}`)
  const files = mode === 'files' && facts.certFile !== undefined && facts.keyFile !== undefined
  const certificate = files ? await readCertificateFiles(facts, now) : null
  if (mode === 'self-signed') set('SH-TLS-002', 'fail', 'TLS_MODE=self-signed: browsers reject self-signed certificates')
  const selfSigned = certificate?.pairs.find((pair) => pair.info?.selfSigned === true)
  if (selfSigned !== undefined) set('SH-TLS-002', 'fail', `TLS_CERT_FILE ${selfSigned.certFile} holds a self-signed certificate (${selfSigned.info?.subject ?? ''}): browsers reject it`)
  if (mode === 'off') set('SH-TLS-003', 'fail', 'TLS_MODE=off: the app speaks plain HTTP')
  for (const id of ['SH-TLS-002', 'SH-TLS-003'] as const) set(id, mode === undefined ? 'skip' : 'pass', mode === undefined ? 'TLS_MODE is not set' : `TLS_MODE=${mode}`)
  if (mode === 'files') set('SH-TLS-004', 'pass', `TLS_CERT_FILE=${facts.certFile ?? ''} TLS_KEY_FILE=${facts.keyFile ?? ''}`)
  else set('SH-TLS-004', 'skip', `TLS_MODE=${mode ?? '(unset)'} uses no certificate files`)
  if (mode === 'acme') set('SH-ACME-001', 'pass', `ACME_DOMAINS=${facts.acmeDomains.join(',')}`)
  else set('SH-ACME-001', 'skip', `TLS_MODE=${mode ?? '(unset)'} does not use ACME`)

  if (config !== null && config.secureSession === false) {
    set('SH-SESSION-001', 'skip', 'sessions are off (secureSession: false)')
    set('SH-SESSION-002', 'skip', 'sessions are off (secureSession: false)')
  } else if (facts.sessionKeys.length === 0) {
    set('SH-SESSION-001', 'fail', 'SESSION_KEYS is empty: every restart logs everyone out and instances cannot read each other\'s cookies')
  }
  // The config's own key test (schemas/secure-session.ts), so that doctor and the app agree.
  const weak = facts.sessionKeys.map((key, i) => ({ i, key, weakness: sessionKeyWeakness(key) })).filter((found) => found.weakness !== null)
  const published = weak.filter(({ key }) => isPublishedSessionKey(key))
  if (published.length > 0) set('SH-SESSION-003', 'fail', published.map(({ i, key }) => `SESSION_KEYS key ${i + 1} (fingerprint ${keyFingerprint(key)}) is a published example key`).join('; '))
  if (weak.length > 0) set('SH-SESSION-002', 'fail', weak.map(({ i, weakness }) => `SESSION_KEYS key ${i + 1} ${weakness ?? ''}`).join('; '))
  set('SH-SESSION-001', 'pass', `${facts.sessionKeys.length} key${facts.sessionKeys.length === 1 ? '' : 's'}`)
  if (facts.sessionKeys.length === 0) set('SH-SESSION-002', 'skip', 'no session key to check')
  else set('SH-SESSION-002', 'pass', 'each key is 32 random bytes and distinct')

  if (facts.trust === true) set('SH-PROXY-001', 'fail', 'TRUST_PROXY=true: any client can claim to be on HTTPS or pose as any IP')
  set('SH-PROXY-001', 'pass', `TRUST_PROXY=${trustText(facts.trust)}`)
  set('SH-PROXY-002', 'pass', `TRUST_PROXY=${trustText(facts.trust)}`)
  if (mode === 'proxy') set('SH-PROXY-003', 'pass', `TRUST_PROXY=${trustText(facts.trust)}`)
  else set('SH-PROXY-003', 'skip', `TLS_MODE=${mode ?? '(unset)'}: TLS does not end at a proxy`)
  if (Array.isArray(facts.trust)) {
    const wide = facts.trust.map((entry) => ({ entry, ranges: wideRangesOf(entry) })).filter((found) => found.ranges.length > 0)
    if (wide.length > 0) {
      set('SH-PROXY-004', 'fail', wide.map(({ entry, ranges }) => `TRUST_PROXY entry ${entry} trusts the whole of ${ranges.join(', ')}`).join('; '))
    }
    set('SH-PROXY-004', 'pass', facts.trust.length === 0 ? 'no proxy is trusted' : `TRUST_PROXY=${trustText(facts.trust)} names no whole private range`)
  } else {
    set('SH-PROXY-004', 'pass', `TRUST_PROXY=${trustText(facts.trust)}`)
  }

  // Certificate files: what the tls plugin would load (several pairs are chosen by SNI).
  if (files && certificate !== null) {
    const infos = certificate.pairs.map((pair) => pair.info).filter((info): info is CertificateInfo => info !== null)
    if (certificate.problems.length > 0) {
      set('SH-TLS-005', 'fail', certificate.problems.join('; '))
    } else {
      set('SH-TLS-005', 'pass', infos.map((info) => `${info.subject}, issued by ${info.issuer}, ${info.keyType}, fingerprint ${info.fingerprint.slice(0, 23)}...`).join('; '))
    }
    if (infos.length > 0) {
      const sans = infos.flatMap((info) => info.sans)
      const missing = uncoveredHosts(sans, facts.allowedHosts)
      const one = infos.length === 1 ? 'the certificate' : 'the certificates'
      if (facts.allowedHosts.length === 0) set('SH-TLS-006', 'skip', 'ALLOWED_HOSTS is empty')
      else if (missing.length > 0) set('SH-TLS-006', 'fail', `ALLOWED_HOSTS ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not in ${one} (${infos.length === 1 ? 'it covers' : 'they cover'} ${sans.join(', ') || 'no names'}); browsers will refuse ${missing.length === 1 ? 'it' : 'them'}`)
      else set('SH-TLS-006', 'pass', `${one} cover${infos.length === 1 ? 's' : ''} ${facts.allowedHosts.join(', ')}`)
      const soonest = infos.reduce((a, b) => (b.notAfter.getTime() < a.notAfter.getTime() ? b : a))
      const daysLeft = Math.floor((soonest.notAfter.getTime() - now) / DAY)
      const named = infos.length === 1 ? 'the certificate' : `the certificate for ${soonest.sans[0] ?? soonest.subject}`
      if (daysLeft < EXPIRY_WARNING_DAYS) {
        set('SH-TLS-007', 'fail', daysLeft < 0
          ? `${named} expired ${-daysLeft} days ago (${soonest.notAfter.toISOString()})`
          : `${named} expires in ${daysLeft} days (${soonest.notAfter.toISOString()})`)
      } else {
        set('SH-TLS-007', 'pass', `${daysLeft} days left (until ${soonest.notAfter.toISOString()})`)
      }
    } else {
      set('SH-TLS-006', 'skip', 'the certificate could not be read')
      set('SH-TLS-007', 'skip', 'the certificate could not be read')
    }
    if (process.platform === 'win32') {
      set('SH-TLS-008', 'skip', 'file modes are not checked on Windows')
    } else {
      const open: string[] = []
      const unread: string[] = []
      const modes: string[] = []
      for (const { keyFile } of certificate.pairs) {
        if (keyFile === '') continue
        try {
          const keyMode = (await stat(keyFile)).mode & 0o777
          const shown = keyMode.toString(8).padStart(4, '0')
          modes.push(shown)
          if ((keyMode & 0o077) !== 0) {
            open.push(`TLS_KEY_FILE ${keyFile} has mode ${shown}: ${(keyMode & 0o004) !== 0 ? 'every user on the machine' : (keyMode & 0o040) !== 0 ? 'its group' : 'others'} can ${(keyMode & 0o044) !== 0 ? 'read' : 'reach'} the private key`)
          }
        } catch (error) {
          unread.push(`TLS_KEY_FILE: ${describeFsError(error, keyFile)}`)
        }
      }
      if (open.length > 0) set('SH-TLS-008', 'fail', open.join('; '))
      else if (modes.length === 0) set('SH-TLS-008', 'skip', unread.join('; ') || 'no key file')
      else set('SH-TLS-008', 'pass', `TLS_KEY_FILE has mode ${[...new Set(modes)].join(', ')}${unread.length > 0 ? `; ${unread.join('; ')}` : ''}`)
    }
  } else {
    const why = mode === 'files' ? 'the certificate files are not set' : `TLS_MODE=${mode ?? '(unset)'} uses no certificate files`
    set('SH-TLS-005', 'skip', why)
    set('SH-TLS-007', 'skip', mode === 'acme' ? 'ACME renews the certificate at two thirds of its lifetime' : why)
    set('SH-TLS-008', 'skip', why)
    if (mode === 'acme') {
      const missing = uncoveredHosts(facts.acmeDomains, facts.allowedHosts)
      if (missing.length > 0) set('SH-TLS-006', 'fail', `ALLOWED_HOSTS ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not in ACME_DOMAINS (${facts.acmeDomains.join(', ')}); the certificate will not cover ${missing.length === 1 ? 'it' : 'them'}`)
      else set('SH-TLS-006', 'pass', `ACME_DOMAINS covers ${facts.allowedHosts.join(', ') || 'every allowed host'}`)
    } else {
      set('SH-TLS-006', 'skip', mode === 'self-signed' ? 'a self-signed certificate is made for ALLOWED_HOSTS' : why)
    }
  }

  if ((mode === 'self-signed' || mode === 'acme') && facts.dir !== undefined) {
    const { problem, note } = await dirProblem(facts.dir)
    set('SH-TLS-009', problem === null ? 'pass' : 'fail', problem ?? note)
  } else {
    set('SH-TLS-009', 'skip', `TLS_MODE=${mode ?? '(unset)'} stores nothing in TLS_DIR`)
  }

  // Session keys against the published ones and the other environments.
  if (facts.sessionKeys.length === 0) {
    set('SH-SESSION-003', 'skip', 'no session key to check')
    set('SH-SESSION-004', 'skip', 'no session key to check')
  } else {
    const known = new Map(await publishedKeyFingerprints())
    for (const key of options.publishedKeys ?? []) {
      const decoded = decodeKey(key)
      if (decoded !== null) known.set(keyFingerprint(decoded), 'a key given as published')
    }
    const fingerprints = facts.sessionKeys.map(keyFingerprint)
    const publishedFound = fingerprints.flatMap((fingerprint, i) => {
      const where = known.get(fingerprint)
      return where === undefined ? [] : [`SESSION_KEYS key ${i + 1} (fingerprint ${fingerprint}) is printed in ${where}`]
    })
    if (publishedFound.length > 0) set('SH-SESSION-003', 'fail', publishedFound.join('; '))
    set('SH-SESSION-003', 'pass', `no key is among the ${known.size} published in the package's docs and examples`)
    const compared = options.compareEnvs ?? []
    if (compared.length === 0) {
      set('SH-SESSION-004', 'skip', `key fingerprints ${fingerprints.join(', ')}; no other environment to compare with (doctor --compare-env FILE)`)
    } else {
      const shared: string[] = []
      for (const other of compared) {
        const theirs = new Set(keysOf(other.env.SESSION_KEYS).map(keyFingerprint))
        fingerprints.forEach((fingerprint, i) => {
          if (theirs.has(fingerprint)) shared.push(`SESSION_KEYS key ${i + 1} (fingerprint ${fingerprint}) is also used by ${other.name}`)
        })
      }
      if (shared.length > 0) set('SH-SESSION-004', 'fail', shared.join('; '))
      set('SH-SESSION-004', 'pass', `key fingerprints ${fingerprints.join(', ')}; none is used by ${compared.map((other) => other.name).join(', ')}`)
    }
  }

  // Policy checks on the resolved config.
  if (config === null) {
    for (const id of doctorCheckIds) set(id, 'skip', 'not checked: the configuration has errors (see the failed checks)')
    return doctorCheckIds.map((id) => out.get(id) as CheckResult)
  }
  const { hsts, httpsRedirect } = config
  if (hsts !== false && hsts.preload) set('SH-HSTS-001', 'pass', 'max-age, includeSubDomains and the redirect are as preload requires')
  else set('SH-HSTS-001', 'skip', 'HSTS_PRELOAD is off')
  if (hsts === false || hsts.maxAge === 0) {
    set('SH-HSTS-002', 'fail', `HSTS is off (${hsts === false ? 'hsts: false' : 'HSTS_MAX_AGE=0'}): a browser's first request can be downgraded to HTTP`)
    set('SH-HSTS-003', 'skip', 'HSTS is off')
    set('SH-HSTS-004', 'fail', 'HSTS is off')
  } else {
    const header = `max-age=${hsts.maxAge}${hsts.includeSubDomains ? '; includeSubDomains' : ''}${hsts.preload ? '; preload' : ''}`
    set('SH-HSTS-002', 'pass', `Strict-Transport-Security: ${header}`)
    if (hsts.maxAge < HSTS_MIN_RECOMMENDED) set('SH-HSTS-003', 'fail', `HSTS_MAX_AGE=${hsts.maxAge} (${Math.floor(hsts.maxAge / 86400)} days) is under six months: the policy lapses between visits`)
    else if (hsts.maxAge > 2 * PRELOAD_MIN_MAX_AGE) set('SH-HSTS-003', 'fail', `HSTS_MAX_AGE=${hsts.maxAge} is over two years: browsers cap it, and a mistake lasts that long`)
    else set('SH-HSTS-003', 'pass', `HSTS_MAX_AGE=${hsts.maxAge} (${Math.floor(hsts.maxAge / 86400)} days)`)
    const missing = [
      ...(hsts.maxAge < PRELOAD_MIN_MAX_AGE ? [`HSTS_MAX_AGE >= ${PRELOAD_MIN_MAX_AGE}`] : []),
      ...(hsts.includeSubDomains ? [] : ['HSTS_INCLUDE_SUBDOMAINS=true']),
      ...(hsts.preload ? [] : ['HSTS_PRELOAD=true']),
      ...(httpsRedirect === false ? ['the HTTP redirect (HTTP_PORT)'] : [])
    ]
    set('SH-HSTS-004', missing.length === 0 ? 'pass' : 'fail', missing.length === 0 ? `Strict-Transport-Security: ${header}` : `not eligible: needs ${missing.join(', ')}`)
  }
  if (httpsRedirect === false) {
    set('SH-REDIRECT-001', 'skip', 'the HTTPS redirect is off')
    if (mode !== undefined && (IN_PROCESS.has(mode) || mode === 'proxy')) set('SH-REDIRECT-002', 'fail', 'HTTP_PORT=off: http:// links and typed names get no redirect to HTTPS')
    else set('SH-REDIRECT-002', 'skip', `TLS_MODE=${mode ?? '(unset)'}: there is no HTTPS to redirect to`)
  } else {
    set('SH-REDIRECT-001', 'pass', `ALLOWED_HOSTS=${config.allowedHosts.join(',')}`)
    set('SH-REDIRECT-002', 'pass', httpsRedirect.mode === 'listener'
      ? `HTTP port ${httpsRedirect.port} redirects to HTTPS port ${httpsRedirect.httpsPort}`
      : 'requests the proxy marks as plain HTTP are redirected by the app')
  }
  if (config.hostAuthorization === false) set('SH-HOST-001', 'fail', 'host authorization is off (hostAuthorization: false): a request for any Host is served, HSTS and cookies included (poisoned links, cache poisoning, DNS rebinding)')
  else set('SH-HOST-001', 'pass', `only ${config.hostAuthorization.allowedHosts.join(', ') || '(names allowed at run time)'} ${config.hostAuthorization.allowedHosts.length === 1 ? 'is' : 'are'} served; other hosts get ${config.hostAuthorization.status}`)
  if (config.crossSite === false) set('SH-CSRF-001', 'fail', 'cross-site request protection is off (crossSite: false): another site\'s page can post forms to the app (login CSRF, logout) unless every route checks a token')
  else {
    const plain = config.crossSite.trustedOrigins.filter((origin) => origin.startsWith('http:'))
    if (plain.length > 0) set('SH-CSRF-001', 'fail', `CROSS_SITE_TRUSTED_ORIGINS trusts plain-HTTP origins (${plain.join(', ')}): a network attacker can speak for them`)
    else set('SH-CSRF-001', 'pass', config.crossSite.trustedOrigins.length === 0 ? 'unsafe requests from other sites are refused' : `unsafe requests from other sites are refused, except from ${config.crossSite.trustedOrigins.join(', ')}`)
  }
  if (config.errorHandler === false) set('SH-ERRORS-001', 'fail', 'the error handler is off: a 5xx response carries the error\'s own message, which may name files, queries or secrets')
  else set('SH-ERRORS-001', 'pass', `5xx responses say "${config.errorHandler.message}"`)
  const { metrics } = config
  if (metrics === false) {
    set('SH-METRICS-001', 'fail', 'METRICS is off: certificate expiry, failed renewals, tampered cookies and session store outages are only in the log')
    set('SH-METRICS-002', 'skip', 'METRICS is off')
  } else {
    set('SH-METRICS-001', 'pass', metrics.listener ? `METRICS=true: http://${metrics.host.includes(':') ? `[${metrics.host}]` : metrics.host}:${metrics.port}/metrics` : 'metrics are on, in the app\'s own registry')
    const exposure = metricsExposure(metrics.host)
    if (!metrics.listener) set('SH-METRICS-002', 'skip', 'no metrics listener: the app serves its own registry')
    else if (exposure === 'loopback') set('SH-METRICS-002', 'pass', `METRICS_HOST=${metrics.host}`)
    else {
      set('SH-METRICS-002', 'fail', `METRICS_HOST=${metrics.host}: the metrics are reachable from ${exposure === 'private' ? 'the private network of that address' : 'every network this host is on'}; they name the certificates and count security events and failures`)
    }
  }

  return doctorCheckIds.map((id) => out.get(id) as CheckResult)
}

function report (checks: CheckResult[], production: boolean): DoctorReport {
  return { ...summarize(checks), production, checks }
}

/**
 * The deploy audit of an environment: reads it as `loadConfig` does, with the production rules on
 * whatever NODE_ENV says, and runs every check of `doctorCheckIds`. Never throws for a bad
 * environment: each problem is a failed check.
 */
export async function doctor (env: Env = process.env, options: DoctorOptions = {}): Promise<DoctorReport> {
  const { options: raw, issues } = envToOptions(env)
  raw.production = true
  const parsed = configSchema.safeParse(raw)
  const all = [...issues]
  if (!parsed.success) {
    // As in loadConfig: a variable that failed to parse was left out; what the schema says of the gap is noise.
    const reported = new Set(issues.map((issue) => issue.variable))
    for (const issue of toConfigIssues(parsed.error.issues, [], variableOf)) {
      if (issue.variable === undefined || !reported.has(issue.variable)) all.push(issue)
    }
  }
  const facts = parsed.success ? factsFromConfig(parsed.data, env.NODE_ENV) : factsFromOptions(raw, env)
  const checks = await runChecks(facts, all, options)
  return report(checks, isProductionEnv(env.NODE_ENV))
}

/**
 * The same checks on a resolved config (what `secureHttps` runs at ready). The production rules
 * apply whatever `config.production` says, so a development config fails some of them.
 */
export async function doctorConfig (config: SecureHttpsConfig, options: DoctorOptions = {}): Promise<DoctorReport> {
  const checks = await runChecks(factsFromConfig(config, config.production ? 'production' : 'development'), [], options)
  return report(checks, config.production)
}

/** Reads an env file (`KEY=value` lines, as `node --env-file` reads them). */
export async function readEnvFile (path: string): Promise<{ name: string, env: Env }> {
  const { parseEnv } = await import('node:util')
  return { name: basename(path), env: parseEnv(await readFile(path, 'utf8')) }
}
