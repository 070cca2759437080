/**
 * `npm start`: the demo with the environment as config. Zero configuration gives
 * https://localhost:8443 with a cached self-signed certificate and http://localhost:8080 redirecting.
 */
import { ConfigError, loadConfig } from 'fastify-secure-https'
import { buildDemo } from './app.js'

async function main (): Promise<void> {
  let config
  try {
    config = loadConfig(process.env)
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`)
      process.exit(1)
    }
    throw error
  }
  const app = await buildDemo(config, { logger: { level: process.env.LOG_LEVEL ?? 'info' } })
  await app.listen({ host: config.host, port: config.port })

  if (config.tls !== false) {
    process.on('SIGHUP', () => {
      app.tls.reload().then(
        (status) => app.log.info({ fingerprint: status.fingerprint }, 'SIGHUP: certificate checked'),
        (error: Error) => app.log.error({ err: error }, 'SIGHUP: reload failed, still serving the previous certificate')
      )
    })
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.log.info({ signal }, 'shutting down')
      app.close().then(() => process.exit(0), () => process.exit(1))
    })
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
