/**
 * The environment a benchmark server process runs in, shared by the runner (run.ts) and the
 * instruction counter (count.ts), so that both measure the very same servers: NODE_ENV=production,
 * the certificate files, and for the suite the configuration a production app reads with
 * `loadConfig(process.env)`.
 * @internal
 */

/** Host name the requests carry and the certificate covers; not localhost, so that HSTS is sent. @internal */
export const HOST = 'bench.example'

/** The files and key every server of a run shares. @internal */
export interface ServerFiles {
  /** Holds only the certificate and its key: the suite's files source watches this folder. */
  certFile: string
  keyFile: string
  /** TLS_DIR of the suite, with the same pair in the self-signed cache layout. */
  tlsDir: string
  /** A base64 32-byte session key. */
  sessionKey: string
  /** The --baseline build's dist/index.js, or null. */
  baseline: string | null
}

const SUITE_SERVERS: ReadonlySet<string> = new Set(['suite', 'suite-headers', 'suite-metrics', 'suite-baseline'])

/** The environment of a server process: the bench's own variables, and for the suite a production app's. @internal */
export function serverEnvironment (server: string, files: ServerFiles): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'production',
    BENCH_KEY_FILE: files.keyFile,
    BENCH_CERT_FILE: files.certFile,
    BENCH_TLS_DIR: files.tlsDir,
    BENCH_SESSION_KEY: files.sessionKey,
    BENCH_HOST: HOST
  }
  if (server === 'suite-baseline' && files.baseline !== null) env.BENCH_BASELINE = files.baseline
  if (SUITE_SERVERS.has(server)) {
    Object.assign(env, {
      HOST: '127.0.0.1',
      PORT: '0',
      HTTP_PORT: '0',
      TLS_MODE: 'files',
      TLS_CERT_FILE: files.certFile,
      TLS_KEY_FILE: files.keyFile,
      TLS_DIR: files.tlsDir,
      SESSION_KEYS: files.sessionKey,
      ALLOWED_HOSTS: HOST
    })
  }
  return env
}
