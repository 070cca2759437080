/**
 * The `securityHeaders` plugin: @fastify/helmet's behaviour (its options under both of helmet's
 * names, the route option `helmet`, `reply.helmet()`, `reply.cspNonce`), minus HSTS, which the `hsts`
 * plugin owns, with two changes for speed and correctness:
 *
 * - Each route's headers are computed once, when the route is declared, by running helmet's own
 *   middleware against a recording response (the strings are helmet's). A request only copies them.
 *   helmet still runs per request where a CSP directive is a function, as @fastify/helmet runs it.
 * - An answer gets the header set of its kind: helmet's full set for HTML (and anything not known
 *   to be an API answer), OWASP's short REST set for JSON. The kind is settled per route when the
 *   route says it (`config: { securityHeaders: 'api' | 'html' }`, or a response schema listing only
 *   JSON or HTML types), and otherwise when the reply is sent, from its Content-Type.
 *
 * Headers are set when the reply is sent, and only those the reply does not carry yet: whatever the
 * route set itself (a CSP of its own, a Cache-Control) wins, wherever it set it.
 */
import type { FastifyHelmetRouteOptions } from '@fastify/helmet'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import helmet, { contentSecurityPolicy } from 'helmet'
import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { ConfigError } from '../errors.ts'
import { kAnswerHeaders, type AnswerHeaders } from './instance.ts'
import { addSendStep } from './hook-chain.ts'
import { parseOptions, toConfigIssues } from '../schemas/common.ts'
import {
  responseKinds,
  securityHeadersRouteSchema,
  securityHeadersSchema,
  serializePermissionsPolicy,
  type ResponseKind,
  type SecurityHeadersOptions
} from '../schemas/security-headers.ts'
import {
  compilePlan,
  helmetHeaderNames,
  helmetOptionsOf,
  isJsonType,
  kScriptNonce,
  kStyleNonce,
  mergeOptions,
  rememberingApiAnswer,
  type HeaderOptions,
  type Plan
} from './security-headers-sets.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Which header set this route's answers get (fastify-secure-https): `html` helmet's full set,
     * `api` the short REST set (an HTML answer still gets the full one), `auto` by Content-Type.
     */
    securityHeaders?: ResponseKind
    /** @fastify/helmet's route option, read from the route's config too: `false` or options over the plugin's. */
    helmet?: FastifyHelmetRouteOptions['helmet']
  }
}

/**
 * The reply's headers, in one reply decorator (each costs a store in Fastify's reply constructor on
 * every request): null for the plugin's own plan, the route's plan, or a plan with this response's
 * Content-Security-Policy value when it carries nonces.
 */
const kPlan = Symbol('fastify-secure-https.headersPlan')

/** A plan and the CSP value with this response's nonces. */
class Nonced {
  readonly plan: Plan
  readonly csp: string
  constructor (plan: Plan, csp: string) {
    this.plan = plan
    this.csp = csp
  }
}

type PlannedReply = FastifyReply & { [kPlan]: Plan | Nonced | null }
/** `reply.cspNonce` as the plugin writes it: null where no nonce was made, as with @fastify/helmet. */
type NonceSlot = { cspNonce: { script: string, style: string } | null }
type NonceCarrier = ServerResponse & { [kScriptNonce]?: string, [kStyleNonce]?: string }
type Done = (error?: Error) => void

function rethrow (error?: unknown): void {
  if (error !== undefined && error !== null) throw error
}

/** Compiles a plan, reporting what helmet refuses as a ConfigError naming where the options came from. */
function compile (options: HeaderOptions, kind: ResponseKind, skip: boolean, where: string): Plan {
  try {
    return compilePlan(options, kind, skip)
  } catch (error) {
    throw new ConfigError([{ path: where, message: `helmet refused the options: ${(error as Error).message}` }], 'securityHeaders')
  }
}

/** The kind a route's response schema declares: only JSON types (api) or HTML among them (html). */
function schemaKind (schema: RouteOptions['schema']): ResponseKind | undefined {
  const response = (schema as { response?: unknown } | undefined)?.response
  if (response === null || typeof response !== 'object') return undefined
  let json = false
  let other = false
  for (const entry of Object.values(response)) {
    const content = (entry as { content?: unknown } | null)?.content
    // A schema without content types says nothing: a string reply may still be HTML.
    if (content === null || typeof content !== 'object') return undefined
    for (const type of Object.keys(content)) {
      if (type.toLowerCase().startsWith('text/html')) return 'html'
      if (isJsonType(type)) json = true
      else other = true
    }
  }
  return json && !other ? 'api' : undefined
}

/** @fastify/helmet beside this plugin would set every header twice, with two sets of options. */
function helmetToo (): ConfigError {
  return new ConfigError([{ path: 'securityHeaders', message: '@fastify/helmet is registered on this instance too; remove it: securityHeaders takes its options, its route option helmet and reply.helmet()' }], 'securityHeaders')
}

function prepend (route: RouteOptions, hook: (request: FastifyRequest, reply: FastifyReply, done: Done) => void): void {
  const own = route.onRequest
  route.onRequest = own === undefined ? [hook] : [hook, ...(Array.isArray(own) ? own : [own])] as RouteOptions['onRequest']
}

const securityHeadersPlugin: FastifyPluginAsync<SecurityHeadersOptions> = async function securityHeadersPlugin (fastify: FastifyInstance, options) {
  if (fastify.hasPlugin('@fastify/helmet')) throw helmetToo()
  const config = parseOptions(securityHeadersSchema, options, 'securityHeaders')
  const { global, responseKind, ...headerOptions } = config
  const defaultPlan = compile(headerOptions, responseKind, !global, 'securityHeaders')
  const plainHelmet = new WeakMap<Plan, ReturnType<typeof helmet>>()

  function setNonces (reply: PlannedReply, plan: Plan): void {
    const bytes = randomBytes(32)
    const script = bytes.toString('hex', 0, 16)
    const style = bytes.toString('hex', 16, 32)
    reply.cspNonce = { script, style }
    const csp = plan.csp
    if (csp !== null) {
      reply[kPlan] = new Nonced(plan, csp.scriptFirst
        ? csp.parts[0] + script + csp.parts[1] + style + csp.parts[2]
        : csp.parts[0] + style + csp.parts[1] + script + csp.parts[2])
    } else if (plan.dynamic !== null) {
      const raw = reply.raw as NonceCarrier
      raw[kScriptNonce] = script
      raw[kStyleNonce] = style
    }
  }

  function runDynamic (plan: Plan, request: FastifyRequest, reply: FastifyReply, done: Done): void {
    (plan.dynamic as NonNullable<Plan['dynamic']>)(request.raw, reply.raw, (error?: unknown) => done(error as Error | undefined))
  }

  /** `reply.helmet(options?)`: helmet on the raw response, as @fastify/helmet does, with this route's options. */
  function replyHelmet (this: FastifyReply, opts?: unknown): undefined {
    const plan = planOf(this as PlannedReply)
    if (opts === undefined || opts === null || opts === false) {
      let middleware = plainHelmet.get(plan)
      if (middleware === undefined) {
        middleware = helmet(helmetOptionsOf(plan.options))
        plainHelmet.set(plan, middleware)
      }
      middleware(this.request.raw, this.raw, rethrow)
      if (plan.options.permissionsPolicy !== false) this.raw.setHeader('permissions-policy', serializePermissionsPolicy(plan.options.permissionsPolicy))
      return undefined
    }
    const merged = mergeOptions(plan.options, parseOptions(securityHeadersRouteSchema, opts, 'reply.helmet()'))
    helmet(helmetOptionsOf(merged))(this.request.raw, this.raw, rethrow)
    if (merged.permissionsPolicy !== false) this.raw.setHeader('permissions-policy', serializePermissionsPolicy(merged.permissionsPolicy))
    return undefined
  }

  // Decorators as @fastify/helmet adds them; an instance that has them already gets ours per request.
  const helmetDecorated = fastify.hasReplyDecorator('helmet')
  if (!helmetDecorated) fastify.decorateReply('helmet', replyHelmet as unknown as FastifyReply['helmet'])
  if (!fastify.hasReplyDecorator('cspNonce')) fastify.decorateReply('cspNonce', null as unknown as FastifyReply['cspNonce'])
  if (!fastify.hasReplyDecorator(kPlan)) fastify.decorateReply(kPlan, null)

  function planOf (reply: PlannedReply): Plan {
    return planIn(reply[kPlan])
  }

  function planIn (slot: Plan | Nonced | null): Plan {
    return slot === null ? defaultPlan : slot instanceof Nonced ? slot.plan : slot
  }

  function planOfRoute (route: RouteOptions): Plan | null {
    const shorthand = (route as { helmet?: unknown }).helmet
    const routeConfig = route.config as { helmet?: unknown, securityHeaders?: unknown } | undefined
    const where = `route ${String(route.method)} ${route.url}`
    const issues = []
    if (shorthand !== undefined && routeConfig?.helmet !== undefined) {
      issues.push({ path: 'config.helmet', message: 'the helmet option is given twice, beside the route options and in config; keep one' })
    }
    const declared = routeConfig?.securityHeaders
    if (declared !== undefined && !(responseKinds as readonly unknown[]).includes(declared)) {
      issues.push({ path: 'config.securityHeaders', message: `must be ${responseKinds.join(', ')} (got ${JSON.stringify(declared)})` })
    }
    const option = shorthand !== undefined ? shorthand : routeConfig?.helmet
    let routeOptions = null
    if (option !== undefined && option !== false) {
      const parsed = securityHeadersRouteSchema.safeParse(option)
      if (parsed.success) routeOptions = parsed.data
      else issues.push(...toConfigIssues(parsed.error.issues, ['helmet']))
    }
    if (issues.length > 0) throw new ConfigError(issues, `securityHeaders ${where}`)

    const kind = (declared as ResponseKind | undefined) ?? schemaKind(route.schema) ?? responseKind
    if (option === undefined && kind === responseKind) return null
    if (option === false) return compile({ ...headerOptions, enableCSPNonces: false }, kind, true, where)
    if (routeOptions === null) return compile(headerOptions, kind, !global, where)
    return compile(mergeOptions(headerOptions, routeOptions), kind, false, where)
  }

  fastify.addHook('onRoute', function securityHeadersRoute (route) {
    const plan = planOfRoute(route)
    if (plan === null) return
    const undoDynamic = defaultPlan.dynamic !== null && !defaultPlan.skip
    prepend(route, function securityHeadersOfRoute (request: FastifyRequest, reply: FastifyReply, done: Done) {
      const planned = reply as PlannedReply
      planned[kPlan] = plan
      // The instance-wide hook ran first, for the plugin's options: undo what this route does otherwise.
      if (undoDynamic) for (const name of helmetHeaderNames) reply.raw.removeHeader(name)
      if (plan.nonces) setNonces(planned, plan)
      else if (defaultPlan.nonces) (reply as unknown as NonceSlot).cspNonce = null
      if (plan.dynamic !== null) runDynamic(plan, request, reply, done)
      else done()
    })
  })

  // Work that must precede the handler: nonces it reads, helmet's directive functions.
  if (defaultPlan.nonces || defaultPlan.dynamic !== null || helmetDecorated) {
    fastify.addHook('onRequest', function securityHeadersPrepare (request: FastifyRequest, reply: FastifyReply, done: Done) {
      if (helmetDecorated) (reply as { helmet: unknown }).helmet = replyHelmet
      if (defaultPlan.nonces) setNonces(reply as PlannedReply, defaultPlan)
      if (defaultPlan.dynamic !== null && !defaultPlan.skip) runDynamic(defaultPlan, request, reply, done)
      else done()
    })
  }

  // @fastify/helmet registered after this plugin would set every header a second time.
  fastify.addHook('onReady', async function securityHeadersAlone () {
    if (fastify.hasPlugin('@fastify/helmet')) throw helmetToo()
  })

  const apiAnswer = rememberingApiAnswer()

  function addHeaders (reply: FastifyReply): void {
    const planned = reply as PlannedReply
    const slot = planned[kPlan]
    const plan = planIn(slot)
    const html = plan.html
    if (html !== null) {
      const api = plan.kind !== 'html' && apiAnswer(reply.getHeader('content-type'), plan.kind === 'api')
      const { names, values } = api ? plan.api : html
      for (let i = 0; i < names.length; i++) {
        const name = names[i] as string
        if (!reply.hasHeader(name)) reply.header(name, values[i])
      }
      const csp = plan.csp
      if (!api && csp !== null && !reply.hasHeader(csp.name)) reply.header(csp.name, slot instanceof Nonced ? slot.csp : csp.withoutNonces)
    } else if (plan.dynamic !== null) {
      // helmet set its whole set on the raw response before the handler; what it does not set is
      // added here: the API set's Cache-Control for API answers, Permissions-Policy for the others.
      const api = plan.kind !== 'html' && apiAnswer(reply.getHeader('content-type'), plan.kind === 'api')
      const { names, values } = api ? plan.api : plan.extra
      for (let i = 0; i < names.length; i++) {
        const name = names[i] as string
        if (!reply.hasHeader(name)) reply.header(name, values[i])
      }
    }
    if (plan.removeHsts) reply.removeHeader('strict-transport-security')
  }

  // The errorHandler plugin writes its answers without onSend hooks: it adds these headers through this.
  // A method on the reply's prototype: no per-request work.
  if (!fastify.hasReplyDecorator(kAnswerHeaders)) {
    const answerHeaders: AnswerHeaders = addHeaders
    fastify.decorateReply(kAnswerHeaders, answerHeaders)
  }

  addSendStep(fastify, options, 'securityHeaders', function securityHeaders (_request: FastifyRequest, reply: FastifyReply) {
    addHeaders(reply)
    return undefined
  })
}

/**
 * Security headers: @fastify/helmet's options, route option and decorators, with the headers of each
 * route computed once, HTML and API answers each getting their own set, and no HSTS (the `hsts`
 * plugin's). `securityHeaders.contentSecurityPolicy` is helmet's, as on @fastify/helmet's export.
 */
export const securityHeaders: FastifyPluginAsync<SecurityHeadersOptions> & { contentSecurityPolicy: typeof contentSecurityPolicy } = Object.assign(
  fp(securityHeadersPlugin, { fastify: '5.x', name: 'fastify-secure-https/security-headers' }),
  { contentSecurityPolicy }
)
export default securityHeaders
