/**
 * The Fastify side of TLS_MODE=acme, called by the `tls` plugin: answers the CA's HTTP-01
 * validation requests and logs what the ACME source reports.
 *
 * The route lives on the app, so the redirect listener (HTTP_PORT), which hands every
 * `/.well-known/acme-challenge/` request to the app instead of redirecting it, answers the CA on
 * port 80; it answers on the HTTPS port too, which is harmless (the CA follows redirects there).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { isAcmeSource, type AcmeEvent } from '../tls/acme-source.js'
import type { CertificateSource } from '../tls/source.js'
import { securityEvent } from './events.js'
import { ACME_CHALLENGE_PREFIX } from './https-redirect.js'

/** Logs one ACME event through the app's logger. @internal */
export function logAcmeEvent (log: FastifyInstance['log'], event: AcmeEvent): void {
  switch (event.type) {
    case 'ordering':
      log.info({ domains: event.domains, reason: event.reason }, `ACME: ordering a certificate for ${event.domains.join(', ')} (${event.reason})`)
      break
    case 'issued':
      log.info({ domains: event.domains, fingerprint: event.fingerprint, notAfter: event.notAfter.toISOString(), renewAt: event.renewAt.toISOString(), durationMs: event.durationMs },
        `ACME: certificate issued for ${event.domains.join(', ')} in ${event.durationMs} ms, valid until ${event.notAfter.toISOString()}`)
      break
    case 'picked-up':
      log.info({ fingerprint: event.fingerprint, notAfter: event.notAfter.toISOString() }, 'ACME: serving the certificate another instance stored in TLS_DIR')
      break
    case 'checked':
      log.debug({ fingerprint: event.fingerprint, renewAt: event.renewAt.toISOString(), nextCheck: event.nextCheck.toISOString() },
        `ACME: certificate not due for renewal until ${event.renewAt.toISOString()}`)
      break
    case 'lock-busy':
      log.info({ holder: event.holder, retryAt: event.retryAt.toISOString() },
        `ACME: another instance (pid ${event.holder.pid} on ${event.holder.host}) is ordering; waiting for its certificate in TLS_DIR`)
      break
    case 'order-failed':
      securityEvent(log, 'acme.order-failed', {
        domains: event.domains,
        error: event.error,
        code: event.code,
        problem: event.problem,
        attempt: event.attempt,
        retryAt: event.retryAt.toISOString()
      }, `ACME order for ${event.domains.join(', ')} failed (attempt ${event.attempt}), still serving the current certificate; next attempt at ${event.retryAt.toISOString()}: ${event.error}`)
      break
  }
}

/**
 * Registers `GET /.well-known/acme-challenge/:token` answered from the ACME source's pending
 * challenges, and routes the source's events to the log. Does nothing for another kind of source.
 */
export function acmeChallenges (fastify: FastifyInstance, source: CertificateSource): void {
  if (!isAcmeSource(source)) return
  source.onEvent((event) => logAcmeEvent(fastify.log, event))
  fastify.get(`${ACME_CHALLENGE_PREFIX}:token`, async (request: FastifyRequest<{ Params: { token: string } }>, reply: FastifyReply) => {
    const answer = await source.challenge(request.params.token)
    if (answer === null) {
      return reply.code(404).type('text/plain; charset=utf-8').send('Unknown ACME challenge token\n')
    }
    // RFC 8555 section 8.3: the body is the key authorization, as application/octet-stream.
    return reply.type('application/octet-stream').send(answer)
  })
}
