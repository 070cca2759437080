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

/** The self-signed certificate source. */
export function selfSignedSource (config: Pick<TlsConfig, 'dir' | 'hosts'>, checkEvery = CHECK_EVERY): CertificateSource {
  let timer: NodeJS.Timeout | undefined
  let current: string | undefined

  async function load (): Promise<CertificatePair> {
    const pair = await loadOrCreateSelfSigned(config.dir, config.hosts)
    current = pair.cert
    const origin = pair.generated
      ? `issued now by the development CA ${pair.ca.certPath}: ${pair.reason ?? 'no cached certificate'}`
      : `reused from ${join(resolve(config.dir), 'self-signed', 'cert.pem')}, issued by the development CA ${pair.ca.certPath}`
    return { key: pair.key, cert: pair.cert, info: inspectCertificate(pair.cert), roots: pair.ca.cert, origin }
  }

  return {
    mode: 'self-signed',
    load,
    start (events: SourceEvents) {
      timer = setInterval(() => {
        const before = current
        load().then((pair) => {
          if (pair.cert !== before) events.update(pair, 'self-signed certificate renewed')
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
