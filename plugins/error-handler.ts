/**
 * The `errorHandler` plugin: in production a 5xx answers with a generic message and the request id,
 * and the full error goes to the log under that id. 4xx errors (validation and the like, which the
 * client must see) are answered with their message, in Fastify's shape.
 *
 * No path around it: when sending an error answer fails in turn (an onSend hook that throws again,
 * such as a session store write while the store is down), Fastify hands the new error to the next
 * error handler up the chain, and at the root that is its default handler, which sends the new
 * error's message as it is. So this handler writes its answers itself, through Fastify's public
 * `reply.hijack()` and the raw response: the headers already set (HSTS, CORS) are kept, the
 * securityHeaders plugin's are added through its reply method (they are otherwise set in onSend), and
 * no onSend hook runs for an error answer, so none can fail it. Session changes made by the
 * failed request are not saved, as they would not be with a failed request anyway.
 */
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { OutgoingHttpHeaders } from 'node:http'
import { parseOptions } from '../schemas/common.ts'
import { errorHandlerSchema, type ErrorHandlerOptions } from '../schemas/error-handler.ts'
import { kAnswerHeaders, type AnswerHeaders } from './instance.ts'

/**
 * Node's reason phrases, read when the first error is answered: importing node:http at the package's
 * import would load Node's HTTP client stack (and, on Node.js 24, its fetch dispatcher) into every app.
 */
let reasons: Record<number, string | undefined> | undefined
const reasonOf = (status: number): string | undefined => (reasons ??= process.getBuiltinModule('node:http').STATUS_CODES)[status]

/**
 * Headers of the failed answer that do not describe the error answer, would commit a session, or
 * would let a cache keep it (the route's `Cache-Control: public, max-age=86400` on a 500 that an
 * input the cache does not key on provoked): every error answer is `Cache-Control: no-store`.
 */
const DROPPED_HEADERS: ReadonlySet<string> = new Set([
  'set-cookie', 'content-length', 'content-type', 'content-encoding', 'transfer-encoding', 'etag', 'last-modified', 'content-range', 'content-disposition',
  'cache-control', 'expires', 'age'
])

/** The error's own status (statusCode, or status as http-errors sets it), when it is an error status. @internal */
export function ownStatus (error: { statusCode?: unknown, status?: unknown } | null | undefined): number | undefined {
  const own = error?.statusCode ?? error?.status
  return typeof own === 'number' && own >= 400 && own <= 599 ? own : undefined
}

/** The HTTP status for an error, as Fastify's default handler works it out. @internal */
export function errorStatus (error: { statusCode?: unknown, status?: unknown } | null | undefined, replyStatus: number): number {
  return ownStatus(error) ?? (replyStatus >= 400 && replyStatus <= 599 ? replyStatus : 500)
}

function writeAnswer (reply: FastifyReply, status: number, body: Record<string, unknown>, extra: OutgoingHttpHeaders | undefined): void {
  const res = reply.raw
  reply.hijack()
  if (res.headersSent || res.destroyed) {
    // The answer had started (a stream that failed midway): it cannot be replaced, only cut.
    res.destroy()
    return
  }
  const payload = JSON.stringify(body)
  // The headers other plugins add in onSend (securityHeaders'), which runs for no answer written here.
  reply.header('content-type', 'application/json; charset=utf-8')
  const answerHeaders = (reply as unknown as Partial<Record<typeof kAnswerHeaders, AnswerHeaders>>)[kAnswerHeaders]
  if (typeof answerHeaders === 'function') {
    try {
      answerHeaders(reply)
    } catch {
      // Never fails an error answer: it goes out with the headers it has.
    }
  }
  const headers: OutgoingHttpHeaders = {}
  const current = reply.getHeaders()
  for (const name in current) {
    if (!DROPPED_HEADERS.has(name)) headers[name] = current[name]
  }
  // writeHead adds to what the raw response holds: one the route set there (reply.raw.setHeader) goes too.
  for (const name of res.getHeaderNames()) {
    if (DROPPED_HEADERS.has(name)) res.removeHeader(name)
  }
  if (extra !== undefined) Object.assign(headers, extra)
  headers['cache-control'] = 'no-store'
  headers['content-type'] = 'application/json; charset=utf-8'
  headers['content-length'] = Buffer.byteLength(payload)
  try {
    res.writeHead(status, headers)
  } catch {
    // A header value Node refuses (set by the route before it failed): answer without them.
    res.writeHead(status, { 'cache-control': 'no-store', 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload) })
  }
  res.end(payload)
}

function safeHeaders (error: unknown): OutgoingHttpHeaders | undefined {
  const headers = (error as { headers?: unknown } | null)?.headers
  if (headers === null || typeof headers !== 'object') return undefined
  const out: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    const lower = name.toLowerCase()
    if (DROPPED_HEADERS.has(lower)) continue
    if (typeof value === 'string' || typeof value === 'number') out[lower] = value
  }
  return out
}

const errorHandlerPlugin: FastifyPluginAsync<ErrorHandlerOptions> = async function errorHandlerPlugin (fastify: FastifyInstance, options) {
  const config = parseOptions(errorHandlerSchema, options, 'errorHandler')

  fastify.setErrorHandler(function redactingErrorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    const own = ownStatus(error)
    const status = errorStatus(error, reply.statusCode)
    const reason = reasonOf(status) ?? 'Error'
    // A client error is one that says so itself (a 4xx statusCode or status: Fastify's validation
    // and parser errors, http-errors, createError). An error without one on a 4xx reply is not: an
    // onSend hook or the serializer that failed on a 401 answer, an internal call that threw after
    // the route had set 404. Its message may be anything internal, so it is redacted like a 5xx.
    const clientError = own !== undefined && own < 500
    if (clientError && config.exposeClientErrors) {
      request.log.info({ err: error, requestId: request.id }, 'client error')
      const body: Record<string, unknown> = { statusCode: status }
      if (typeof error?.code === 'string') body.code = error.code
      body.error = reason
      body.message = typeof error?.message === 'string' ? error.message : reason
      writeAnswer(reply, status, body, safeHeaders(error))
      return
    }
    if (clientError) request.log.info({ err: error, requestId: request.id }, 'client error; the client got a redacted message')
    else request.log.error({ err: error, requestId: request.id }, 'request failed; the client got a redacted message')
    // A 4xx keeps its reason phrase as the message; `message` is the 5xx answers' (docs/error-handler.md).
    const message = status < 500 ? reason : config.message
    writeAnswer(reply, status, { statusCode: status, error: reason, message, requestId: request.id }, clientError ? safeHeaders(error) : undefined)
  })
}

/** Keeps internal error messages out of every error answer (on by default in production). */
export const errorHandler = fp(errorHandlerPlugin, { fastify: '5.x', name: 'fastify-secure-https/error-handler' })
export default errorHandler
