/**
 * What the plugin precomputes when a route is declared equals what @fastify/helmet sends when it
 * runs helmet on each request, for the same options: generated combinations of every helmet option
 * (under both names), CSP directives (camelCase and dashed, with and without helmet's defaults,
 * report-only, a source computed per request), nonces, and a route's options over the plugin's.
 */
import fastifyHelmet from '@fastify/helmet'
import fc from 'fast-check'
import Fastify from 'fastify'
import helmet from 'helmet'
import t from 'tap'
import { securityHeaders } from '../index.ts'
import { helmetOptionsOf, mergeOptions } from '../plugins/security-headers-sets.ts'
import { securityHeadersRouteSchema, securityHeadersSchema } from '../schemas/security-headers.ts'

const maybe = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined, freq: 2 })
const toggle = <T>(object: fc.Arbitrary<T>) => maybe(fc.oneof(fc.boolean(), object))
/** One of two names for the same option, as helmet accepts them. */
const aliased = (name: string, alias: string, value: fc.Arbitrary<unknown>) =>
  fc.tuple(fc.boolean(), value).map(([older, v]) => v === undefined ? {} : { [older ? alias : name]: v })

const sameSource = (_req: unknown, _res: unknown): string => "'sha256-cGVyLXJlcXVlc3Q='"
const source = fc.constantFrom("'self'", "'none'", 'https:', 'data:', 'https://cdn.example', '*.example.com', "'unsafe-inline'", "'strict-dynamic'", 'blob:')
const directiveNames = ['default-src', 'script-src', 'style-src', 'img-src', 'connect-src', 'frame-ancestors', 'object-src', 'base-uri', 'form-action', 'upgrade-insecure-requests', 'report-uri']
const camel = (name: string) => name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase())
const directives = fc.tuple(
  fc.subarray(directiveNames),
  fc.array(fc.oneof({ weight: 6, arbitrary: fc.array(source, { maxLength: 3 }) }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constant([sameSource]) }), { minLength: directiveNames.length, maxLength: directiveNames.length }),
  fc.array(fc.boolean(), { minLength: directiveNames.length, maxLength: directiveNames.length })
).map(([names, values, camelCase]) => Object.fromEntries(names.map((name, i) => {
  const value = name === 'upgrade-insecure-requests' ? [] : name === 'report-uri' ? ['/csp-report'] : name === 'default-src' && values[i] === null ? ["'self'"] : values[i]
  return [camelCase[i] === true ? camel(name) : name, value]
})))
const csp = maybe(fc.oneof(
  fc.boolean(),
  fc.record({ useDefaults: maybe(fc.boolean()), reportOnly: maybe(fc.boolean()), directives }, { requiredKeys: ['directives'] })
    // Without helmet's defaults a policy needs a default-src, or helmet refuses it.
    .map((value) => value.useDefaults === false && !('default-src' in value.directives) && !('defaultSrc' in value.directives)
      ? { ...value, directives: { ...value.directives, 'default-src': ["'self'"] } }
      : value)
))

const headerOptions = fc.tuple(
  csp,
  toggle(fc.record({ policy: fc.constantFrom('require-corp', 'credentialless', 'unsafe-none') })),
  toggle(fc.record({ policy: fc.constantFrom('same-origin', 'same-origin-allow-popups', 'noopener-allow-popups', 'unsafe-none') })),
  toggle(fc.record({ policy: fc.constantFrom('same-origin', 'same-site', 'cross-origin') })),
  maybe(fc.boolean()),
  toggle(fc.record({ policy: fc.oneof(fc.constantFrom('no-referrer', 'origin', 'strict-origin', 'unsafe-url', 'same-origin'), fc.uniqueArray(fc.constantFrom('no-referrer', 'origin', 'strict-origin-when-cross-origin'), { minLength: 1 })) })),
  aliased('xContentTypeOptions', 'noSniff', maybe(fc.boolean())),
  aliased('xDnsPrefetchControl', 'dnsPrefetchControl', toggle(fc.record({ allow: fc.boolean() }))),
  aliased('xDownloadOptions', 'ieNoOpen', maybe(fc.boolean())),
  aliased('xFrameOptions', 'frameguard', toggle(fc.record({ action: fc.constantFrom('deny', 'sameorigin', 'SAMEORIGIN', 'same-origin', 'DENY') }))),
  aliased('xPermittedCrossDomainPolicies', 'permittedCrossDomainPolicies', toggle(fc.record({ permittedPolicies: fc.constantFrom('none', 'master-only', 'by-content-type', 'all') }))),
  aliased('xPoweredBy', 'hidePoweredBy', maybe(fc.boolean())),
  aliased('xXssProtection', 'xssFilter', maybe(fc.boolean())),
  maybe(fc.boolean())
).map(([contentSecurityPolicy, crossOriginEmbedderPolicy, crossOriginOpenerPolicy, crossOriginResourcePolicy, originAgentCluster, referrerPolicy, ...rest]) => {
  const enableCSPNonces = rest.pop() as boolean | undefined
  const options: Record<string, unknown> = { contentSecurityPolicy, crossOriginEmbedderPolicy, crossOriginOpenerPolicy, crossOriginResourcePolicy, originAgentCluster, referrerPolicy, enableCSPNonces }
  for (const part of rest) Object.assign(options, part)
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined))
})

/** Headers a Fastify answer carries anyway. */
const FRAMEWORK = new Set(['date', 'connection', 'content-length', 'content-type', 'keep-alive'])

/** The answer's headers, its nonces written as placeholders. */
function normalized (headers: Record<string, unknown>, body: string): Record<string, string> {
  const nonce = JSON.parse(body) as { script: string, style: string } | null
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (FRAMEWORK.has(name)) continue
    let text = String(value)
    if (nonce !== null) text = text.replaceAll(nonce.script, '<script nonce>').replaceAll(nonce.style, '<style nonce>')
    out[name] = text
  }
  return out
}

/**
 * @fastify/helmet's options for the same effective options: what the plugin gives helmet, and for
 * nonces the directives' own sources or helmet's defaults written out (the plugin keeps them next to
 * the nonce, where @fastify/helmet would drop them: docs/compat.md).
 */
function upstreamOptions (effective: ReturnType<typeof mergeOptions>): Record<string, unknown> {
  const options = helmetOptionsOf(effective) as Record<string, unknown>
  const policy = options.contentSecurityPolicy as false | { useDefaults: boolean, directives: Record<string, unknown> }
  if (effective.enableCSPNonces && policy !== false) {
    const defaults = helmet.contentSecurityPolicy.getDefaultDirectives()
    const own = policy.directives
    for (const name of ['script-src', 'style-src']) {
      if (!Array.isArray(own[name])) own[name] = own[name] === undefined && policy.useDefaults ? [...(defaults[name] ?? [])] : []
    }
  }
  return { ...options, enableCSPNonces: effective.enableCSPNonces }
}

t.test('precomputed headers equal @fastify/helmet\'s, per request, for the same options (fast-check)', async (t) => {
  let compared = 0
  await fc.assert(fc.asyncProperty(headerOptions, fc.option(headerOptions, { nil: undefined }), async (pluginOptions, routeOptions) => {
    const { global: _global, responseKind: _kind, ...base } = securityHeadersSchema.parse(pluginOptions)
    const effective = routeOptions === undefined ? base : mergeOptions(base, securityHeadersRouteSchema.parse(routeOptions))

    const ours = Fastify()
    await ours.register(securityHeaders, { ...pluginOptions, responseKind: 'html' })
    ours.get('/', routeOptions === undefined ? {} : { helmet: routeOptions as never }, async (_request, reply) => reply.type('text/html').send(JSON.stringify(reply.cspNonce)))

    const upstream = Fastify()
    await upstream.register(fastifyHelmet, upstreamOptions(effective))
    upstream.get('/', async (_request, reply) => reply.type('text/html').send(JSON.stringify(reply.cspNonce)))

    try {
      const [a, b] = await Promise.all([ours.inject('/'), upstream.inject('/')])
      if (b.statusCode !== 200) throw new Error(`@fastify/helmet answered ${b.statusCode}: ${b.body}`)
      t.strictSame(normalized(a.headers, a.body), normalized(b.headers, b.body), JSON.stringify({ pluginOptions, routeOptions }))
      compared++
    } finally {
      await Promise.all([ours.close(), upstream.close()])
    }
  }), { numRuns: 150 })
  t.equal(compared, 150, 'every generated case was compared')
})
