/**
 * The `errorHandler` plugin: in production a 5xx answers with a generic message and the request id,
 * and the full error goes to the log under that id. 4xx errors (validation and the like, which the
 * client must see) are answered as Fastify would.
 */
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { parseOptions } from '../schemas/common.js'
import { errorHandlerSchema, type ErrorHandlerOptions } from '../schemas/error-handler.js'

const errorHandlerPlugin: FastifyPluginAsync<ErrorHandlerOptions> = async function errorHandlerPlugin (fastify: FastifyInstance, options) {
  const config = parseOptions(errorHandlerSchema, options, 'errorHandler')
  const body = (status: number, id: string) => ({ statusCode: status, error: 'Internal Server Error', message: config.message, requestId: id })

  fastify.setErrorHandler(function redactingErrorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    let status = error.statusCode ?? (reply.statusCode >= 400 ? reply.statusCode : 500)
    if (status < 400 || status > 599) status = 500
    if (status < 500 && config.exposeClientErrors) {
      request.log.info({ err: error, requestId: request.id }, 'client error')
      reply.code(status).send(error)
      return
    }
    request.log.error({ err: error, requestId: request.id }, 'request failed; the client got a redacted message')
    reply.code(status).type('application/json; charset=utf-8').send(body(status, request.id))
  })
}

/** Keeps internal error messages out of 5xx responses (on by default in production). */
export const errorHandler = fp(errorHandlerPlugin, { fastify: '5.x', name: 'fastify-secure-https/error-handler' })
export default errorHandler
