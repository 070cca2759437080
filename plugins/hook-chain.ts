/**
 * One onRequest and one onSend hook for the suite's own synchronous request work, when its plugins
 * are registered through the aggregate. Fastify runs each hook through its hook runner (a call, a
 * `next` callback, the checks between hooks), so five hooks of a few instructions each cost more in
 * dispatch than in work: the aggregate adds one hook of each kind, in the place of the first, and
 * the plugins hand it their steps instead of adding hooks of their own. Registered on its own, a
 * plugin adds its own hook as before, with the same step inside.
 *
 * The aggregate hands the chain through a symbol-keyed property of the options it passes: a user's
 * options cannot carry it by accident, and the schemas never see it (they read string keys).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/** Returned by a request step that answered the request itself (`reply.send`): nothing after it runs. */
export const REPLIED: unique symbol = Symbol('fastify-secure-https.replied')

/** An onRequest step: `undefined` to go on, an Error to fail the request, `REPLIED` once it answered. @internal */
export type RequestStep = (request: FastifyRequest, reply: FastifyReply) => Error | typeof REPLIED | undefined

/** An onSend step (the payload is never changed): `undefined` to go on, an Error to fail the response. @internal */
export type SendStep = (request: FastifyRequest, reply: FastifyReply) => Error | undefined

/**
 * The steps of the aggregate's two hooks, in the order the plugins registered; `null` where the
 * aggregate added no hook of that kind, so that a step meant for it gets a hook of its own instead
 * of going unrun. @internal
 */
export interface HookChain {
  readonly request: RequestStep[] | null
  readonly send: SendStep[] | null
}

/** The options property through which the aggregate hands its chain to a plugin. @internal */
export const kHookChain: unique symbol = Symbol('fastify-secure-https.hook-chain')

/** Options as the aggregate passes them. @internal */
export interface ChainedOptions { [kHookChain]?: HookChain }

/** The chain the aggregate handed over in `options`, if any. @internal */
export function chainOf (options: unknown): HookChain | undefined {
  return typeof options === 'object' && options !== null ? (options as ChainedOptions)[kHookChain] : undefined
}

/** `options` with the chain attached, for the aggregate's registrations. @internal */
export function withChain<T extends object> (options: T, chain: HookChain): T {
  return { ...options, [kHookChain]: chain }
}

/**
 * Runs `step` on every request: in the aggregate's onRequest hook when `options` carries a chain
 * that has one, else in an onRequest hook of its own, named `name` (what
 * `printRoutes({ includeHooks: true })` shows).
 * @internal
 */
export function addRequestStep (fastify: FastifyInstance, options: unknown, name: string, step: RequestStep): void {
  const steps = chainOf(options)?.request
  if (steps != null) {
    steps.push(step)
    return
  }
  const hook = {
    [name] (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void {
      const outcome = step(request, reply)
      if (outcome === undefined) done()
      else if (outcome !== REPLIED) done(outcome)
    }
  }[name] as (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) => void
  fastify.addHook('onRequest', hook)
}

/** As `addRequestStep`, for an onSend step. @internal */
export function addSendStep (fastify: FastifyInstance, options: unknown, name: string, step: SendStep): void {
  const steps = chainOf(options)?.send
  if (steps != null) {
    steps.push(step)
    return
  }
  const hook = {
    [name] (request: FastifyRequest, reply: FastifyReply, _payload: unknown, done: (error?: Error | null) => void): void {
      const error = step(request, reply)
      if (error === undefined) done()
      else done(error)
    }
  }[name] as (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (error?: Error | null) => void) => void
  fastify.addHook('onSend', hook)
}

/**
 * Adds the aggregate's hooks now (before the plugins that fill them register, so that they run
 * where the first of their own hooks would have) and returns their chain: `request` and `send` say
 * which are worth a hook, from the configuration. A plugin that hands a step to a kind left out
 * gets a hook of its own for it (addRequestStep, addSendStep): a wrong guess costs a hook, never a step.
 * @internal
 */
export function addChainHooks (fastify: FastifyInstance, needed: { request: boolean, send: boolean }): HookChain {
  const chain: HookChain = { request: needed.request ? [] : null, send: needed.send ? [] : null }
  if (chain.request !== null) {
    const steps = chain.request
    fastify.addHook('onRequest', function secureHttpsRequest (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void) {
      for (let i = 0; i < steps.length; i++) {
        const outcome = (steps[i] as RequestStep)(request, reply)
        if (outcome !== undefined) {
          // A step that answered has ended the request: nothing after it runs, done is not called.
          if (outcome !== REPLIED) done(outcome)
          return
        }
      }
      done()
    })
  }
  if (chain.send !== null) {
    const steps = chain.send
    fastify.addHook('onSend', function secureHttpsSend (request: FastifyRequest, reply: FastifyReply, _payload: unknown, done: (error?: Error | null) => void) {
      for (let i = 0; i < steps.length; i++) {
        const error = (steps[i] as SendStep)(request, reply)
        if (error !== undefined) {
          done(error)
          return
        }
      }
      done()
    })
  }
  return chain
}
