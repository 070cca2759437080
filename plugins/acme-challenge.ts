/**
 * The Fastify side of TLS_MODE=acme, called by the `tls` plugin: answers the CA's HTTP-01
 * validation requests and logs what the ACME source reports.
 *
 * The route lives on the app, so the redirect listener (HTTP_PORT), which hands every
 * `/.well-known/acme-challenge/` request to the app instead of redirecting it, answers the CA on
 * port 80; it answers on the HTTPS port too, which is harmless (the CA follows redirects there).
 * Answers published by another instance (in the shared storage) are served as well, so the CA may
 * reach any instance behind the load balancer.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AcmeEvent } from '../tls/acme-source.ts'
import { isAcmeSource, type CertificateSource } from '../tls/source.ts'
import { eventLimiter, securityEvent, unloggedSecurityEvent } from './events.ts'
import { ACME_CHALLENGE_PREFIX } from './https-redirect.ts'

/** What the `tls` plugin can hook into. @internal */
export interface AcmeEventSink {
  /** Called with each name the on-demand ask check allows. */
  onAllowed: ((name: string) => void) | null
}

/** State that keeps repeated reports quiet. @internal */
export interface AcmeLogState {
  /** Certificates whose storage outage was logged at warn already. */
  storageWarned: Set<string>
  /** Lets through a bounded number of on-demand refusals a minute. */
  refusals: () => number | false
}

/** Fresh log state. @internal */
export function acmeLogState (): AcmeLogState {
  return { storageWarned: new Set(), refusals: eventLimiter(60) }
}

const label = (event: { name: string, domains?: string[] }): string => (event.domains ?? [event.name]).join(', ')

/** Logs one ACME event through the app's logger. @internal */
export function logAcmeEvent (log: FastifyBaseLogger, event: AcmeEvent, state: AcmeLogState = acmeLogState()): void {
  switch (event.type) {
    case 'ordering':
      log.info({ certificate: event.name, domains: event.domains, reason: event.reason }, `ACME: ordering a certificate for ${label(event)} (${event.reason})`)
      break
    case 'issued':
      state.storageWarned.delete(event.name)
      log.info({ certificate: event.name, domains: event.domains, fingerprint: event.fingerprint, notAfter: event.notAfter.toISOString(), renewAt: event.renewAt.toISOString(), durationMs: event.durationMs },
        `ACME: certificate issued for ${label(event)} in ${event.durationMs} ms, valid until ${event.notAfter.toISOString()}`)
      break
    case 'picked-up':
      log.info({ certificate: event.name, fingerprint: event.fingerprint, notAfter: event.notAfter.toISOString(), from: event.from },
        `ACME: serving the certificate for ${event.name} that another instance stored in ${event.from}`)
      break
    case 'checked':
      state.storageWarned.delete(event.name)
      log.debug({ certificate: event.name, fingerprint: event.fingerprint, renewAt: event.renewAt.toISOString(), nextCheck: event.nextCheck.toISOString(), ari: event.ari },
        `ACME: certificate for ${event.name} not due for renewal until ${event.renewAt.toISOString()}${event.ari ? ' (the CA\'s renewal window)' : ''}`)
      break
    case 'lock-busy':
      log.info({ certificate: event.name, holder: event.holder, retryAt: event.retryAt.toISOString() },
        `ACME: another instance (${event.holder.owner}) is ordering ${event.name}; waiting for its certificate${event.holder.expires === null ? '' : ` (its lock runs out at ${event.holder.expires.toISOString()} unless renewed)`}`)
      break
    case 'lock-lost':
      log.warn({ certificate: event.name, error: event.error },
        `ACME: the lock for ${event.name} was lost while ordering (this instance was paused or cut off for longer than its lease); the certificate is not stored twice, another instance's is picked up: ${event.error}`)
      break
    case 'order-failed':
      securityEvent(log, 'acme.order-failed', {
        certificate: event.name,
        domains: event.domains,
        error: event.error,
        code: event.code,
        problem: event.problem,
        attempt: event.attempt,
        retryAt: event.retryAt.toISOString()
      }, `ACME order for ${label(event)} failed (attempt ${event.attempt}), still serving the current certificate; next attempt at ${event.retryAt.toISOString()}: ${event.error}`)
      break
    case 'storage':
      if (event.state === 'down') {
        log.error({ storage: event.where, reason: event.reason },
          `TLS storage: Redis at ${event.where} is unreachable (${event.reason}); the certificates being served keep serving, checks and renewals wait for it, reconnecting in the background`)
      } else {
        log.warn({ storage: event.where, downMs: event.downMs }, `TLS storage: Redis at ${event.where} is back after ${event.downMs} ms`)
      }
      break
    case 'storage-unavailable': {
      const first = !state.storageWarned.has(event.name)
      state.storageWarned.add(event.name)
      const fields = { certificate: event.name, error: event.error, retryAt: event.retryAt.toISOString(), serving: event.serving }
      const message = `ACME: cannot check ${event.name}: ${event.error}; still serving the ${event.serving === 'cached' ? 'local copy of the stored' : event.serving} certificate, next look at ${event.retryAt.toISOString()}`
      if (first) log.warn(fields, message)
      else log.debug(fields, message)
      break
    }
    case 'storage-rejected':
      securityEvent(log, 'tls.storage-rejected', { certificate: event.name, error: event.error },
        `TLS storage: a stored value for ${event.name} was rejected and is not served: ${event.error}`)
      break
    case 'renewal-info':
      log.info({ certificate: event.name, windowStart: event.window.start.toISOString(), windowEnd: event.window.end.toISOString(), renewAt: event.renewAt.toISOString(), explanationUrl: event.explanationUrl },
        `ACME: the CA suggests renewing ${event.name} between ${event.window.start.toISOString()} and ${event.window.end.toISOString()} (ARI); renewing at ${event.renewAt.toISOString()}`)
      break
    case 'on-demand-allowed':
      log.info({ name: event.name }, `ACME: on-demand name ${event.name} allowed by the ask check`)
      break
    case 'on-demand-refused': {
      const suppressed = state.refusals()
      if (suppressed === false) {
        unloggedSecurityEvent('acme.on-demand-refused')
        break
      }
      const why = event.reason === 'denied'
        ? 'the ask check said no'
        : event.reason === 'busy'
          ? 'too many ask checks are running'
          : event.reason === 'rate-limit'
            ? 'the on-demand order limit is reached'
            : 'the ask check said no before its renewal; it is no longer renewed'
      securityEvent(log, 'acme.on-demand-refused', { name: event.name, reason: event.reason, ...(suppressed > 0 ? { suppressed } : {}) },
        `ACME: no on-demand certificate for ${JSON.stringify(event.name)}: ${why}`)
      break
    }
    case 'on-demand-deferred':
      log.warn({ certificate: event.name, reason: event.reason, attempt: event.attempt, retryAt: event.retryAt.toISOString() },
        `ACME: the ask check gave no answer before renewing the on-demand certificate for ${JSON.stringify(event.name)} (${event.reason === 'busy' ? 'too many ask checks are running' : 'a timeout, an error or a 5xx'}, attempt ${event.attempt}); it keeps serving, asking again at ${event.retryAt.toISOString()}`)
      break
    default: {
      const unhandled: never = event
      log.warn({ event: unhandled }, 'ACME: unknown event')
    }
  }
}

/**
 * Registers `GET /.well-known/acme-challenge/:token` answered from the ACME source's pending
 * challenges (this instance's, or another's in the shared storage), and routes the source's events
 * to the log. Does nothing for another kind of source.
 */
export function acmeChallenges (fastify: FastifyInstance, source: CertificateSource): AcmeEventSink | null {
  if (!isAcmeSource(source)) return null
  const sink: AcmeEventSink = { onAllowed: null }
  const state = acmeLogState()
  source.onEvent((event) => {
    logAcmeEvent(fastify.log, event, state)
    if (event.type === 'on-demand-allowed') sink.onAllowed?.(event.name)
  })
  fastify.get(`${ACME_CHALLENGE_PREFIX}:token`, async (request: FastifyRequest<{ Params: { token: string } }>, reply: FastifyReply) => {
    const answer = await source.challenge(request.params.token)
    if (answer === null) {
      return reply.code(404).type('text/plain; charset=utf-8').send('Unknown ACME challenge token\n')
    }
    request.log.debug({ token: request.params.token }, 'ACME: HTTP-01 challenge answered')
    // RFC 8555 section 8.3: the body is the key authorization, as application/octet-stream.
    return reply.type('application/octet-stream').send(answer)
  })
  return sink
}
