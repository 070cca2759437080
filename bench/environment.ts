/**
 * The environment a benchmark server process runs in, shared by the runner (run.ts) and the
 * instruction counter (count.ts), so that both measure the very same servers: NODE_ENV=production,
 * the certificate files, and for the suite the configuration a production app reads with
 * `loadConfig(process.env)`.
 * @internal
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** Host name the requests carry and the certificate covers; not localhost, so that HSTS is sent. @internal */
export const HOST = 'bench.example'

/** The three requests measured: one that never touches the session, one that reads it, one that writes it. @internal */
export type Kind = 'anonymous' | 'read' | 'write'

/** The path of each request (bench/servers/routes.ts). @internal */
export const PATHS: Readonly<Record<Kind, string>> = { anonymous: '/anonymous', read: '/read', write: '/write' }

/** The body each request is answered with, once /login has put `user: 'alice'` in the session. @internal */
export const BODIES: Readonly<Record<Kind, string>> = {
  anonymous: JSON.stringify({ hello: 'world' }),
  read: JSON.stringify({ user: 'alice' }),
  write: JSON.stringify({ user: 'alice', n: 1 })
}

/** The files and key every server of a run shares. @internal */
export interface ServerFiles {
  /** Holds only the certificate and its key: the suite's files source watches this folder. */
  certFile: string
  keyFile: string
  /**
   * TLS_DIR of the suite (unused by TLS_MODE=files, but checked by the production rules), with the
   * same pair in the self-signed cache layout for a variant run in TLS_MODE=self-signed.
   */
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

/** The files of a run, and the certificate the clients trust. @internal */
export interface RunFiles extends ServerFiles {
  /** Holds only the certificate and its key. */
  certDir: string
  /** The certificate (PEM), for the clients' `ca`. */
  cert: string
}

/**
 * One certificate for every server of a run, made by the suite's generator, in a folder of `dir`
 * that holds nothing else (the suite's files source watches the certificate's folder), the same
 * pair in a TLS_DIR's self-signed layout, and a new session key. @internal
 */
export async function runFiles (dir: string, baseline: string | null): Promise<RunFiles> {
  const { generateSelfSigned } = await import('fastify-secure-https')
  const pair = await generateSelfSigned([HOST])
  const certDir = join(dir, 'certs')
  const tlsDir = join(dir, 'tls')
  mkdirSync(certDir, { mode: 0o700 })
  mkdirSync(join(tlsDir, 'self-signed'), { recursive: true, mode: 0o700 })
  const keyFile = join(certDir, 'key.pem')
  const certFile = join(certDir, 'cert.pem')
  writeFileSync(keyFile, pair.key, { mode: 0o600 })
  writeFileSync(certFile, pair.cert)
  writeFileSync(join(tlsDir, 'self-signed', 'key.pem'), pair.key, { mode: 0o600 })
  writeFileSync(join(tlsDir, 'self-signed', 'cert.pem'), pair.cert)
  return { certDir, tlsDir, cert: pair.cert, certFile, keyFile, sessionKey: randomBytes(32).toString('base64'), baseline }
}
