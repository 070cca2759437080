/**
 * Options of the `tls` plugin: where certificates come from and how TLS is spoken.
 */
import { z } from 'zod'
import { hostnameSchema } from './common.js'

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

/** ACME (Let's Encrypt) options, used when `mode` is `acme`. */
export const acmeSchema = z.strictObject({
  domains: z.array(hostnameSchema).default([]),
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
  retryMaxDelay: z.number().positive().default(86_400)
}).refine((value) => value.retryMaxDelay >= value.retryDelay, {
  path: ['retryMaxDelay'],
  error: 'must be at least retryDelay: it caps the doubling delay between failed ACME orders'
})

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
  production: z.boolean().default(false)
}).superRefine((value, ctx) => {
  if (value.mode === 'files') {
    if (value.certFile === undefined) ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'is required with TLS_MODE=files; point it at the PEM certificate (full chain, leaf first)' })
    if (value.keyFile === undefined) ctx.addIssue({ code: 'custom', path: ['keyFile'], message: 'is required with TLS_MODE=files; point it at the PEM private key' })
  }
  if (value.mode === 'acme') {
    if (value.acme.domains.length === 0) ctx.addIssue({ code: 'custom', path: ['acme', 'domains'], message: 'is required with TLS_MODE=acme; list the names to certify, e.g. example.com,www.example.com' })
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
})

/** What a user passes to the `tls` plugin. */
export type TlsOptions = z.input<typeof tlsSchema>
/** The resolved `tls` options. */
export type TlsConfig = z.output<typeof tlsSchema>
/** TLS_MODE values. */
export type TlsMode = typeof tlsModes[number]
/** TLS_PROFILE values. */
export type TlsProfile = typeof tlsProfiles[number]
