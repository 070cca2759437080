/**
 * A test PKI made in-process with WebCrypto and @peculiar/x509 (milliseconds, no openssl): a root CA,
 * an intermediate, and leaves with any names and validity, including expired, not yet valid and
 * mismatched pairs, in ECDSA P-256 or RSA.
 */
import { randomBytes, webcrypto } from 'node:crypto'
import { isIP } from 'node:net'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const DAY = 86_400_000

type KeyKind = 'ec' | 'rsa2048' | 'rsa4096'
// @peculiar/x509 declares WebCrypto's DOM types; these name them without the DOM lib.
type SigningKey = x509.X509CertificateCreateWithKeyParams['signingKey']
type SelfSignedKeys = x509.X509CertificateCreateSelfSignedParams['keys']
type SigningAlgorithm = x509.X509CertificateCreateParamsBase['signingAlgorithm']

function algorithmOf (kind: KeyKind): webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams {
  if (kind === 'ec') return { name: 'ECDSA', namedCurve: 'P-256' } as webcrypto.EcKeyGenParams
  return { name: 'RSASSA-PKCS1-v1_5', modulusLength: kind === 'rsa2048' ? 2048 : 4096, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } as webcrypto.RsaHashedKeyGenParams
}

function signingOf (kind: KeyKind): SigningAlgorithm {
  return { ...algorithmOf(kind), ...(kind === 'ec' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' }) } as SigningAlgorithm
}

async function keyPair (kind: KeyKind): Promise<webcrypto.CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(algorithmOf(kind), true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
}

async function keyPem (keys: webcrypto.CryptoKeyPair): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)
  return `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')}\n`
}

function serial (): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0] as number) & 0x7f
  return bytes.toString('hex')
}

/** A certificate authority that can issue certificates. */
export interface Authority {
  name: string
  cert: string
  key: string
  /** PEM of the intermediates between this authority and the root, this one first (empty for a root). */
  chain: string
  keys: webcrypto.CryptoKeyPair
  kind: KeyKind
}

/** Creates a self-signed root CA. */
export async function createRoot (name = 'fastify-secure-https Test Root CA', kind: KeyKind = 'ec'): Promise<Authority> {
  const keys = await keyPair(kind)
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 3650 * DAY),
    signingAlgorithm: signingOf(kind),
    keys: keys as unknown as SelfSignedKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as SigningKey)
    ]
  })
  return { name, cert: `${cert.toString('pem')}\n`, key: await keyPem(keys), chain: '', keys, kind }
}

/** Creates an intermediate CA issued by `parent`. */
export async function createIntermediate (parent: Authority, name = 'fastify-secure-https Test Intermediate CA'): Promise<Authority> {
  const keys = await keyPair('ec')
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${name}`,
    issuer: `CN=${parent.name}`,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 1825 * DAY),
    signingAlgorithm: signingOf(parent.kind),
    publicKey: keys.publicKey as unknown as SigningKey,
    signingKey: parent.keys.privateKey as unknown as SigningKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as SigningKey),
      await x509.AuthorityKeyIdentifierExtension.create(parent.keys.publicKey as unknown as SigningKey)
    ]
  })
  const pem = `${cert.toString('pem')}\n`
  return { name, cert: pem, key: await keyPem(keys), chain: `${pem}${parent.chain}`, keys, kind: 'ec' }
}

/** What a leaf is made with. */
export interface LeafOptions {
  /** DNS names and IP addresses; default localhost, 127.0.0.1, ::1. */
  hosts?: readonly string[]
  /** Validity; default: from a day ago for 90 days. Negative numbers make expired certificates. */
  notBefore?: Date
  notAfter?: Date
  /** Shortcut for notAfter: days from now. */
  days?: number
  kind?: KeyKind
  commonName?: string
}

/** A server certificate and its key. */
export interface Leaf {
  key: string
  /** The leaf alone. */
  cert: string
  /** The leaf followed by its issuer's intermediates: what TLS_CERT_FILE holds (certbot's fullchain.pem). */
  fullchain: string
  fingerprint: string
}

/** Issues a server certificate. */
export async function issueLeaf (issuer: Authority, options: LeafOptions = {}): Promise<Leaf> {
  const kind = options.kind ?? 'ec'
  const keys = await keyPair(kind)
  const hosts = options.hosts ?? ['localhost', '127.0.0.1', '::1']
  const notBefore = options.notBefore ?? new Date(Date.now() - DAY)
  const notAfter = options.notAfter ?? new Date(Date.now() + (options.days ?? 90) * DAY)
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${options.commonName ?? hosts[0] ?? 'test'}`,
    issuer: `CN=${issuer.name}`,
    notBefore,
    notAfter,
    signingAlgorithm: signingOf(issuer.kind),
    publicKey: keys.publicKey as unknown as SigningKey,
    signingKey: issuer.keys.privateKey as unknown as SigningKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | (kind === 'ec' ? 0 : x509.KeyUsageFlags.keyEncipherment), true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(hosts.map((value) => ({ type: isIP(value) === 0 ? 'dns' as const : 'ip' as const, value }))),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey as unknown as SigningKey)
    ]
  })
  const pem = `${cert.toString('pem')}\n`
  const thumbprint = Buffer.from(await cert.getThumbprint('SHA-256')).toString('hex').toUpperCase().match(/../g)?.join(':') ?? ''
  return { key: await keyPem(keys), cert: pem, fullchain: `${pem}${issuer.chain}`, fingerprint: thumbprint }
}

/** A root, an intermediate under it, and a way to issue leaves: what a public CA looks like. */
export interface TestPki {
  root: Authority
  intermediate: Authority
  /** Issues a leaf under the intermediate. */
  leaf (options?: LeafOptions): Promise<Leaf>
}

/** Creates a root and an intermediate. Trust `pki.root.cert` in clients. */
export async function createPki (): Promise<TestPki> {
  const root = await createRoot()
  const intermediate = await createIntermediate(root)
  return { root, intermediate, leaf: (options) => issueLeaf(intermediate, options) }
}

/** Days from now as a Date (negative for the past). */
export function daysFromNow (days: number): Date {
  return new Date(Date.now() + days * DAY)
}

/** What a fresh TLS connection is served: certificate fingerprint (SHA-256), protocol, cipher. */
export async function served (port: number, options: { ca?: string, servername?: string, host?: string } = {}): Promise<{ fingerprint: string, protocol: string | null, cipher: string }> {
  const { connect } = await import('node:tls')
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: options.host ?? '127.0.0.1',
      port,
      servername: options.servername ?? 'localhost',
      ca: options.ca,
      rejectUnauthorized: options.ca !== undefined
    }, () => {
      const result = { fingerprint: socket.getPeerCertificate().fingerprint256, protocol: socket.getProtocol(), cipher: socket.getCipher().name }
      socket.end()
      resolve(result)
    })
    socket.setTimeout(5000, () => socket.destroy(new Error('TLS handshake timed out')))
    socket.on('error', reject)
  })
}

/**
 * Polls until a new connection is served the certificate with this fingerprint; resolves with the
 * milliseconds it took, rejects after `timeout`.
 */
export async function waitForServed (port: number, fingerprint: string, options: { ca?: string, timeout?: number } = {}): Promise<number> {
  const started = Date.now()
  // Long enough for a busy machine: the tests check how fast it was on the time returned, so a
  // slow reload fails that check instead of throwing and losing the assertions after it.
  const timeout = options.timeout ?? 30_000
  let last = ''
  while (Date.now() - started < timeout) {
    last = (await served(port, options)).fingerprint
    if (last === fingerprint) return Date.now() - started
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`after ${timeout} ms the server still presents ${last}, not ${fingerprint}`)
}
