/**
 * TLS_MODE=self-signed: a development certificate issued by the local development CA, cached,
 * renewed in place before it runs out.
 */
import { join, resolve } from 'node:path'
import type { TlsConfig } from '../schemas/tls.ts'
import { inspectCertificate } from './inspect.ts'
import { loadOrCreateSelfSigned } from './self-signed.ts'
import type { CertificatePair, CertificateSource, SourceEvents } from './source.ts'

const CHECK_EVERY = 12 * 3600_000

/** A pair of the self-signed source. */
export interface SelfSignedPair extends CertificatePair {
  /** Why the development CA was replaced to issue it (it must be trusted again), when it was. */
  caReplaced?: string
}

/** The self-signed certificate source. */
export function selfSignedSource (config: Pick<TlsConfig, 'dir' | 'hosts'>, checkEvery = CHECK_EVERY): CertificateSource {
  let timer: NodeJS.Timeout | undefined
  let current: string | undefined

  async function load (): Promise<SelfSignedPair> {
    const pair = await loadOrCreateSelfSigned(config.dir, config.hosts)
    current = pair.cert
    const origin = pair.generated
      ? `issued now by the development CA ${pair.ca.certPath}: ${pair.reason ?? 'no cached certificate'}`
      : `reused from ${join(resolve(config.dir), 'self-signed', 'cert.pem')}, issued by the development CA ${pair.ca.certPath}`
    const replaced = pair.ca.created && pair.ca.reason !== undefined && pair.ca.reason !== 'no development CA yet' ? { caReplaced: pair.ca.reason } : {}
    return { key: pair.key, cert: pair.cert, info: inspectCertificate(pair.cert), roots: pair.ca.cert, origin, ...replaced }
  }

  return {
    mode: 'self-signed',
    load,
    start (events: SourceEvents) {
      timer = setInterval(() => {
        const before = current
        load().then((pair) => {
          if (pair.cert !== before) events.update(pair, pair.caReplaced === undefined ? 'self-signed certificate renewed' : `self-signed certificate renewed by a new development CA (${pair.caReplaced}); run npx fastify-secure-https trust again`)
        }, (error: Error) => events.error(error))
      }, checkEvery)
      timer.unref()
    },
    async stop () {
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
    }
  }
}
