/**
 * `npm start`: the demo with the environment as config. Zero configuration gives
 * https://localhost:8443 with a certificate from the local development CA and
 * http://localhost:8080 redirecting to it. Logs are readable text in a terminal, JSON otherwise.
 */
import { ConfigError, loadConfig } from 'fastify-secure-https'
import { buildDemo } from './app.ts'
import { prettyStream } from './pretty.ts'

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
  const level = process.env.LOG_LEVEL ?? 'info'
  const logger = process.stdout.isTTY ? { level, stream: prettyStream(process.stdout) } : { level }
  const app = await buildDemo(config, { logger })
  try {
    await app.listen({ host: config.host, port: config.port })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const fix = code === 'EACCES' && config.port < 1024
      ? `ports below 1024 are privileged: give node the right to bind them (sudo setcap cap_net_bind_service=+ep "$(command -v node)"), or use PORT=${config.port === 443 ? 8443 : 3000} behind a port forward`
      : code === 'EADDRINUSE'
        ? `another process listens on ${config.host}:${config.port}: stop it, or choose another PORT`
        : null
    if (fix === null) throw error
    process.stderr.write(`cannot listen on ${config.host}:${config.port} (${code}): ${fix}\n`)
    process.exit(1)
  }

  if (config.tls !== false) {
    app.log.info({ pid: process.pid }, `kill -HUP ${process.pid} re-reads the certificate`)
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
