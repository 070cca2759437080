/**
 * Certificate files on disk for TLS_MODE=files tests: written as certbot does (a temporary file,
 * then a rename, 0600), and what a client without SNI is served.
 */
import { renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from 'node:tls'
import type { Leaf } from './certs.ts'

/** Writes `content` to `path` atomically (a temporary file renamed over it), mode 0600. */
export function atomicWrite (path: string, content: string): void {
  const temp = `${path}.tmp-${process.pid}`
  writeFileSync(temp, content, { mode: 0o600 })
  renameSync(temp, path)
}

export interface Pair { certFile: string, keyFile: string }

/** Writes `name`.crt (the full chain) and `name`.key into `dir`. */
export function writePair (dir: string, name: string, leaf: Leaf): Pair {
  const certFile = join(dir, `${name}.crt`)
  const keyFile = join(dir, `${name}.key`)
  atomicWrite(certFile, leaf.fullchain)
  atomicWrite(keyFile, leaf.key)
  return { certFile, keyFile }
}

/** The certificate a client without SNI gets (a connection to an IP address sends none). */
export function servedWithoutSni (port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256)
      socket.end()
    })
    socket.on('error', reject)
  })
}
