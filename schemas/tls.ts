/**
 * Options of the `tls` plugin: where certificates come from and how TLS is spoken.
 */
import { isIP } from 'node:net'
import { z } from 'zod'
import type { Storage } from '../storage/storage.ts'
import { hostnameSchema, isHostname, isLocalHostname, redisUrlSchema } from './common.ts'
import { sessionKeyWeakness } from './secure-session.ts'

/** Where the certificate comes from. `proxy` and `off` mean no TLS in this process. */
export const tlsModes = ['self-signed', 'files', 'acme', 'proxy', 'off'] as const
/** Mozilla server-side TLS configurations. */
export const tlsProfiles = ['intermediate', 'modern'] as const

/** Let's Encrypt directories by their short names. */
export const acmeDirectories = {
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory'
} as const

const ticketKeySchema = z
  .union([z.string(), z.instanceof(Buffer)])
  .transform((value, ctx) => {
    const buffer = typeof value === 'string' ? Buffer.from(value, 'base64') : value
    if (buffer.length !== 48 || (typeof value === 'string' && buffer.toString('base64') !== value.trim())) {
      ctx.addIssue({ code: 'custom', message: `a ticket key must be 48 bytes in base64 (got ${buffer.length} bytes); make one with: openssl rand -base64 48` })
      return z.NEVER
    }
    return buffer
  })

/** Where certificates, keys, locks and challenges live: TLS_DIR, Redis, or a `Storage` of your own. */
export const tlsStorages = ['file', 'redis'] as const

/** The ACME challenge types the suite answers. */
export const acmeChallenges = ['http-01', 'tls-alpn-01', 'dns-01'] as const

/**
 * A DNS provider for DNS-01, in code: `set` publishes a TXT record and resolves once it is visible
 * to the CA (wait for propagation there), `remove` deletes it again. `name` is the full record name
 * (`_acme-challenge.example.com`), `value` its content.
 */
export interface DnsProvider {
  set (name: string, value: string): Promise<void>
  remove (name: string, value: string): Promise<void>
}

/** An on-demand ask check in code: true when a certificate may be obtained for the name. */
export type OnDemandAsk = (name: string) => boolean | Promise<boolean>

const base64Key = (what: string, bytes: number, make: string) => z
  .union([z.string(), z.instanceof(Buffer)])
  .transform((value, ctx) => {
    const buffer = typeof value === 'string' ? Buffer.from(value, 'base64') : value
    if (buffer.length !== bytes || (typeof value === 'string' && buffer.toString('base64') !== value.trim())) {
      ctx.addIssue({ code: 'custom', message: `${what} must be ${bytes} bytes in base64 (got ${buffer.length} bytes); make one with: ${make}` })
      return z.NEVER
    }
    if (buffer.every((byte) => byte === buffer[0])) {
      ctx.addIssue({ code: 'custom', message: `${what} is one byte repeated, not a random key; make one with: ${make}` })
      return z.NEVER
    }
    return buffer
  })

/** A name to certify: a host name, an IP address, or a wildcard `*.example.com` (DNS-01 only). */
export function isAcmeName (value: string): boolean {
  return value.startsWith('*.') ? isHostname(value.slice(2)) && isIP(value.slice(2)) === 0 && value.slice(2).includes('.') : isHostname(value)
}

const acmeNameList = z.array(z.string({ error: 'must be a host name such as example.com' })).transform((items, ctx) => {
  const out: string[] = []
  items.forEach((item, index) => {
    // `a.example+b.example` puts names on one certificate (ACME_DOMAINS=a.example+b.example,c.example).
    const names = item.split('+').map((name) => name.trim().toLowerCase().replace(/\.$/, '')).filter((name) => name.length > 0)
    for (const name of names) {
      if (!isAcmeName(name)) {
        ctx.addIssue({ code: 'custom', path: [index], message: `"${name.slice(0, 80)}" is not a host name, IP address or wildcard (*.example.com); use names such as example.com, without scheme, port or path; join names that share a certificate with +` })
        return
      }
    }
    out.push(names.join('+'))
  })
  return out
})

/** What the ask check may be: an https:// URL (http:// on loopback only) or a function. */
const askSchema = z.custom<string | OnDemandAsk>(() => true).transform((value, ctx): string | OnDemandAsk => {
  if (typeof value === 'function') return value
  const text = typeof value === 'string' ? value : ''
  let url: URL | null = null
  try {
    url = new URL(text)
  } catch {}
  const loopback = url !== null && isLocalHostname(url.hostname.replace(/^\[(.*)\]$/, '$1'))
  if (typeof value !== 'string' || url === null || url.username !== '' || url.password !== '' || !(url.protocol === 'https:' || (url.protocol === 'http:' && loopback))) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text.slice(0, 120))} is not an ask URL; use https://host/path (http:// only on localhost: the answer decides which names get certificates), without user or password, or a function (name) => boolean in code` })
    return z.NEVER
  }
  return url.href
})

/** On-demand TLS: certificates for names not configured in advance, at their first handshake. */
export const onDemandSchema = z.strictObject({
  /** Asked before a certificate is obtained for a name: 200 (or true) means yes. */
  ask: askSchema,
  /** Seconds before the ask check counts as a no. */
  askTimeout: z.number().positive().max(60).default(5),
  /**
   * Orders started at most per `per` seconds, on this instance. The defaults, 10 per 20 minutes,
   * allow 90 orders in 3 hours: under a third of Let's Encrypt's 300 new orders per account per 3 hours.
   */
  maxOrders: z.number().int().min(1).default(10),
  per: z.number().positive().default(1200),
  /** Seconds a handshake waits for its certificate before it fails (the order goes on). */
  wait: z.number().min(0).max(60).default(10)
})

/** ACME (Let's Encrypt) options, used when `mode` is `acme`. */
export const acmeSchema = z.strictObject({
  /** Names to certify, each on its own certificate; `a+b` puts names on one. */
  domains: acmeNameList.default([]),
  /** Names that share a certificate (in code; `a+b` in ACME_DOMAINS says the same). */
  groups: z.array(z.array(z.string())).default([]),
  email: z.email({ error: 'must be an e-mail address for the ACME account, e.g. ops@example.com' }).optional(),
  directory: z
    .string()
    .default('letsencrypt')
    .transform((value, ctx) => {
      if (value in acmeDirectories) return acmeDirectories[value as keyof typeof acmeDirectories]
      if (/^https:\/\/[^\s]+$/.test(value)) return value
      ctx.addIssue({ code: 'custom', message: `"${value}" is not an ACME directory; use letsencrypt, letsencrypt-staging or an https:// URL` })
      return z.NEVER
    }),
  caFile: z.string().min(1).optional(),
  agreeTos: z.boolean().default(false),
  /** How often the certificate's age is checked at most, in seconds (also when it is due sooner). */
  checkInterval: z.number().int().min(1).default(12 * 3600),
  /** Fraction of the lifetime left at which a certificate is renewed. */
  renewWhenRemaining: z.number().gt(0).lt(1).default(1 / 3),
  /**
   * Seconds before the first retry of a failed order; each further failure doubles it. Five minutes
   * keeps a broken setup below Let's Encrypt's 5 failed validations per name per hour.
   */
  retryDelay: z.number().positive().default(300),
  /** Longest wait between two attempts, in seconds (a Retry-After from the CA can be longer). */
  retryMaxDelay: z.number().positive().default(86_400),
  /** Renewal is moved earlier by a random part of this fraction of the lifetime, so a fleet does not renew at once. */
  renewJitter: z.number().min(0).max(0.5).default(0.02),
  /** Honour the CA's renewal window (ACME Renewal Information, RFC 9773) when its directory offers it. */
  ari: z.boolean().default(true),
  /** ACME_CHALLENGE: how the CA checks that the names are ours. */
  challenge: z.enum(acmeChallenges, { error: `must be one of ${acmeChallenges.join(', ')}` }).default('http-01'),
  /** The DNS provider for DNS-01, in code. */
  dns: z.custom<DnsProvider>((value) => value !== null && typeof value === 'object' &&
    typeof (value as Partial<DnsProvider>).set === 'function' && typeof (value as Partial<DnsProvider>).remove === 'function',
  { error: 'must be an object with set(name, value) and remove(name, value) functions' }).optional(),
  /** External account binding (ACME_EAB_KID, ACME_EAB_HMAC_KEY), for CAs that require it. */
  eab: z.strictObject({
    kid: z.string({ error: 'is required with ACME_EAB_HMAC_KEY: the key identifier the CA gave you with the HMAC key' }).min(1, { error: 'is the key identifier the CA gave you' }).max(1024),
    hmacKey: z.string({ error: 'is required with ACME_EAB_KID: the base64url HMAC key the CA gave you with the key identifier' }).regex(/^[A-Za-z0-9_-]{16,1024}={0,2}$/, { error: 'must be the base64url HMAC key the CA gave you' })
  }).optional(),
  /** Lease of the ordering lock, in seconds: how long a dead holder blocks the others. */
  lockTtl: z.number().min(1).max(3600).default(60),
  /** Seconds between two looks for certificates another instance stored (pub/sub with Redis is immediate). */
  syncInterval: z.number().min(1).default(30),
  /** On-demand TLS (ACME_ON_DEMAND_ASK): names obtained at their first handshake, when `ask` allows. */
  onDemand: onDemandSchema.optional()
}).refine((value) => value.retryMaxDelay >= value.retryDelay, {
  path: ['retryMaxDelay'],
  error: 'must be at least retryDelay: it caps the doubling delay between failed ACME orders'
}).transform((value, ctx) => {
  // `a+b` entries become a group; each name is certified once, on one certificate.
  const domains: string[] = []
  const groups: string[][] = []
  const where = new Map<string, string>()
  const place = (name: string, certificate: string, path: Array<string | number>): void => {
    const known = where.get(name)
    if (known === undefined) {
      where.set(name, certificate)
      domains.push(name)
    } else if (known !== certificate) {
      ctx.addIssue({ code: 'custom', path, message: `puts ${name} on two certificates; a name is on one certificate only` })
    }
  }
  const addGroup = (names: string[], path: Array<string | number>): void => {
    const id = names.join('+')
    if (!groups.some((group) => group.join('+') === id)) groups.push(names)
    for (const name of names) place(name, id, path)
  }
  // Groups given in code (and those of an already resolved config), by name.
  const inGroup = new Map<string, string[]>()
  value.groups.forEach((group, index) => {
    const names = group.map((name) => name.trim().toLowerCase().replace(/\.$/, ''))
    const bad = names.find((name) => !isAcmeName(name))
    if (bad !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['groups', index], message: `"${bad.slice(0, 80)}" is not a host name, IP address or wildcard` })
      return
    }
    for (const name of names) {
      if (inGroup.has(name)) ctx.addIssue({ code: 'custom', path: ['groups', index], message: `puts ${name} on two certificates; a name is on one certificate only` })
      else if (names.length > 1) inGroup.set(name, names)
    }
  })
  // In the order of `domains` (the first certificate is the default); a name of a group brings
  // its group; names of groups that `domains` does not list come last.
  const placeEntry = (entry: string, path: Array<string | number>): void => {
    const names = entry.split('+')
    if (names.length > 1) {
      addGroup(names, path)
      return
    }
    const group = inGroup.get(entry)
    if (group !== undefined) addGroup(group, path)
    else if (!where.has(entry)) place(entry, entry, path)
  }
  value.domains.forEach((entry, index) => placeEntry(entry, ['domains', index]))
  for (const [name] of inGroup) placeEntry(name, ['groups'])
  for (const name of domains) {
    if (name.startsWith('*.') && value.challenge !== 'dns-01') {
      ctx.addIssue({ code: 'custom', path: ['domains'], message: `${name} is a wildcard: only DNS-01 can validate wildcards; set ACME_CHALLENGE=dns-01 and give a DNS provider in code (tls.acme.dns)` })
    }
    if (isIP(name) !== 0 && value.challenge !== 'http-01') {
      ctx.addIssue({ code: 'custom', path: ['domains'], message: `${name} is an IP address: IP identifiers are validated with ACME_CHALLENGE=http-01 only` })
    }
  }
  if (value.challenge === 'dns-01' && value.dns === undefined) {
    ctx.addIssue({ code: 'custom', path: ['dns'], message: 'is required with ACME_CHALLENGE=dns-01: give a DNS provider in code, tls: { acme: { dns: { set (name, value) {...}, remove (name, value) {...} } } } (see docs/acme.md)' })
  }
  return { ...value, domains, groups }
})

/** The fields the cross-field checks of `tlsSchema` read. */
const REFINED_FIELDS: ReadonlySet<string> = new Set(['mode', 'certFile', 'keyFile', 'production', 'ticketKeys', 'storageKeys', 'storage', 'redisUrl', 'acme'])

/** Options of the `tls` plugin (the input a user passes; the resolved type is its output). */
export const tlsSchema = z.strictObject({
  mode: z.enum(tlsModes, { error: `must be one of ${tlsModes.join(', ')}` }).default('self-signed'),
  profile: z.enum(tlsProfiles, { error: `must be one of ${tlsProfiles.join(', ')}` }).default('intermediate'),
  dir: z.string().min(1, { error: 'must be a directory path' }).default('.secure-https'),
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  caFile: z.string().min(1).optional(),
  passphrase: z.string().optional(),
  /** Names the certificate must cover besides localhost, 127.0.0.1 and ::1 (from ALLOWED_HOSTS). */
  hosts: z.array(hostnameSchema).default([]),
  http2: z.boolean().default(false),
  ticketKeys: z.array(ticketKeySchema).default([]),
  /** Days before expiry at which `tls.expiring` events are logged. */
  expiryWarningDays: z.array(z.number().int().positive()).default([30, 7]),
  acme: acmeSchema.prefault({}),
  /** TLS_STORAGE: where ACME accounts, certificates, locks and challenges live; `redis` for a fleet. */
  storage: z.custom<typeof tlsStorages[number] | Storage>(() => true).transform((value, ctx): typeof tlsStorages[number] | Storage => {
    if (value === 'file' || value === 'redis') return value
    if (value !== null && typeof value === 'object' && typeof (value as Partial<Storage>).lock === 'function') return value
    ctx.addIssue({ code: 'custom', message: `must be ${tlsStorages.join(' or ')} (got ${JSON.stringify(String(value).slice(0, 40))}), or in code an object implementing Storage` })
    return z.NEVER
  }).default('file'),
  /** REDIS_URL, for TLS_STORAGE=redis (the same Redis the session store may use). */
  redisUrl: redisUrlSchema('redis://10.0.0.5:6379').optional(),
  /** TLS_REDIS_PREFIX: prefix of the certificate storage's Redis keys. */
  redisPrefix: z.string().regex(/^[A-Za-z0-9:_.-]{1,100}$/, { error: 'must be 1 to 100 letters, digits, ":", "_", "." or "-"' }).default('secure-https:tls:'),
  /** TLS_STORAGE_KEYS: secrets that seal what is stored in Redis, 32 bytes in base64, newest first. */
  storageKeys: z.array(base64Key('a storage key', 32, 'openssl rand -base64 32')).default([]),
  production: z.boolean().default(false)
}).superRefine((value, ctx) => {
  if (value.mode === 'files') {
    if (value.certFile === undefined) ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'is required with TLS_MODE=files; point it at the PEM certificate (full chain, leaf first)' })
    if (value.keyFile === undefined) ctx.addIssue({ code: 'custom', path: ['keyFile'], message: 'is required with TLS_MODE=files; point it at the PEM private key' })
    if (value.certFile !== undefined && value.keyFile !== undefined) {
      const certs = splitFileList(value.certFile)
      const keys = splitFileList(value.keyFile)
      if (certs.length !== keys.length) {
        ctx.addIssue({ code: 'custom', path: ['keyFile'], message: `lists ${keys.length} key file${keys.length === 1 ? '' : 's'} for ${certs.length} certificate file${certs.length === 1 ? '' : 's'} in TLS_CERT_FILE; give one key per certificate, in the same order` })
      }
      if (certs.some((path) => path.length === 0)) ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'has an empty entry in its comma list; list the certificate files separated by commas' })
      if (keys.some((path) => path.length === 0)) ctx.addIssue({ code: 'custom', path: ['keyFile'], message: 'has an empty entry in its comma list; list the key files separated by commas' })
    }
  }
  // Production refuses secrets that are not random, as for SESSION_KEYS.
  if (value.production) {
    for (const [field, keys] of [['ticketKeys', value.ticketKeys], ['storageKeys', value.storageKeys]] as const) {
      keys.forEach((key, i) => {
        const weakness = sessionKeyWeakness(key)
        if (weakness !== null) ctx.addIssue({ code: 'custom', path: [field, i], message: `key ${i + 1} of ${keys.length} ${weakness}; replace it with random bytes: openssl rand -base64 ${key.length}` })
      })
    }
  }
  if (value.mode === 'acme' && value.storage === 'redis') {
    if (value.redisUrl === undefined) ctx.addIssue({ code: 'custom', path: ['redisUrl'], message: 'is required with TLS_STORAGE=redis; point it at the Redis the instances share, e.g. redis://10.0.0.5:6379' })
    if (value.storageKeys.length === 0) ctx.addIssue({ code: 'custom', path: ['storageKeys'], message: 'is required with TLS_STORAGE=redis: it seals the keys and certificates kept in Redis; give every instance the same value, made with: openssl rand -base64 32' })
  }
  if (value.mode === 'acme') {
    if (value.acme.domains.length === 0 && value.acme.onDemand === undefined) ctx.addIssue({ code: 'custom', path: ['acme', 'domains'], message: 'is required with TLS_MODE=acme; list the names to certify, e.g. example.com,www.example.com' })
    if (value.acme.email === undefined) ctx.addIssue({ code: 'custom', path: ['acme', 'email'], message: 'is required with TLS_MODE=acme; give the contact address for the ACME account' })
    if (!value.acme.agreeTos) ctx.addIssue({ code: 'custom', path: ['acme', 'agreeTos'], message: 'must be true with TLS_MODE=acme: the CA requires you to accept its terms of service (Let\'s Encrypt: https://letsencrypt.org/repository/); read them and set ACME_AGREE_TOS=true' })
  }
  if (value.production && (value.mode === 'self-signed' || value.mode === 'off')) {
    ctx.addIssue({
      code: 'custom',
      path: ['mode'],
      message: value.mode === 'self-signed'
        ? 'self-signed certificates are refused in production: browsers reject them; use files (with certbot), acme (Let\'s Encrypt) or proxy (TLS at nginx/haproxy)'
        : 'plain HTTP is refused in production; use files, acme, or proxy when TLS ends at a load balancer'
    })
  }
}, {
  // Every problem at once: a wrong TLS_PROFILE (or HTTP2, TLS_DIR...) must not hide a missing
  // TLS_CERT_FILE. Zod skips a refinement after another field's error; this one runs unless a
  // field it reads is itself in error (then that field's own message is the one to fix first).
  when: (payload) => payload.issues.every((issue) => !REFINED_FIELDS.has(String(issue.path?.[0])))
})

/**
 * The certificate and key files of TLS_MODE=files, paired by position: TLS_CERT_FILE and
 * TLS_KEY_FILE take comma-separated lists of equal length; the first pair is the default.
 */
export function certificateFiles (config: Pick<TlsConfig, 'certFile' | 'keyFile'>): Array<{ certFile: string, keyFile: string }> {
  if (config.certFile === undefined || config.keyFile === undefined) return []
  const certs = splitFileList(config.certFile)
  const keys = splitFileList(config.keyFile)
  return certs.map((certFile, i) => ({ certFile, keyFile: keys[i] ?? '' }))
}

function splitFileList (value: string): string[] {
  return value.split(',').map((path) => path.trim())
}

/** What a user passes to the `tls` plugin. */
export type TlsOptions = z.input<typeof tlsSchema>
/** The resolved `tls` options. */
export type TlsConfig = z.output<typeof tlsSchema>
/** TLS_MODE values. */
export type TlsMode = typeof tlsModes[number]
/** TLS_PROFILE values. */
export type TlsProfile = typeof tlsProfiles[number]
