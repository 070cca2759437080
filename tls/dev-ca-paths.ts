/**
 * Where the development CA lives. Apart from tls/dev-ca.ts, whose code (key generation, X.509)
 * loads only when a development certificate is made or the CA is looked for.
 */
import { join, resolve } from 'node:path'

/** Where the CA of a TLS_DIR lives. */
export function devCaPaths (dir: string): { folder: string, certPath: string, keyPath: string } {
  const folder = resolve(dir, 'ca')
  return { folder, certPath: join(folder, 'cert.pem'), keyPath: join(folder, 'key.pem') }
}
