/**
 * Development CA fixtures: a root written into TLS_DIR/ca as an earlier version or a hand could
 * have left it, and `fastify-secure-https trust` run in process with a HOME of the test's own.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { main } from '../../bin/cli.ts'
import { DEV_CA_NAME } from '../../tls/dev-ca.ts'
import { buildCertificate, generateEcdsaKey, privateKeyPem, type DistinguishedName } from '../../tls/x509.ts'

const DAY = 86_400_000

/** Writes a self-signed root (key 0600, certificate 0644) into `dir`/ca; returns its PEM. */
export async function plantCa (dir: string, permitted: { dns: string[], ip: string[] } | undefined, subject: DistinguishedName = { commonName: DEV_CA_NAME }): Promise<string> {
  const keys = await generateEcdsaKey()
  const cert = buildCertificate({
    subject,
    publicKey: keys.publicKey,
    selfKey: keys.privateKey,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3000 * DAY),
    ca: true,
    ...(permitted === undefined ? {} : { permitted })
  })
  mkdirSync(join(dir, 'ca'), { recursive: true, mode: 0o700 })
  chmodSync(dir, 0o700)
  writeFileSync(join(dir, 'ca', 'key.pem'), privateKeyPem(keys.privateKey), { mode: 0o600 })
  writeFileSync(join(dir, 'ca', 'cert.pem'), cert, { mode: 0o644 })
  return cert
}

/** Runs `fastify-secure-https trust ...args` with HOME and ALLOWED_HOSTS set for the call only. */
export async function runTrust (home: string, args: string[], allowedHosts?: string): Promise<{ code: number, out: string, err: string }> {
  const saved = { HOME: process.env.HOME, ALLOWED_HOSTS: process.env.ALLOWED_HOSTS }
  process.env.HOME = home
  if (allowedHosts === undefined) delete process.env.ALLOWED_HOSTS
  else process.env.ALLOWED_HOSTS = allowedHosts
  try {
    let out = ''
    let err = ''
    const code = await main(['trust', ...args], { out: (text) => { out += text }, err: (text) => { err += text } })
    return { code, out, err }
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
  }
}
