/**
 * A small X.509 certificate builder on node:crypto: ECDSA P-256 keys, SHA-256 signatures, and the
 * few extensions a development CA and its leaves need (basic constraints, key usage, extended key
 * usage, subject alternative names, key identifiers, name constraints). DER is written by hand
 * (RFC 5280, X.690); nothing global is touched and no other package is loaded, so importing the
 * suite costs nothing here until a certificate must be made.
 *
 * Knows nothing of Fastify. @internal
 */
import { createHash, createPublicKey, generateKeyPair, randomBytes, sign, type KeyObject } from 'node:crypto'
import { isIP } from 'node:net'
import { promisify } from 'node:util'

const generateKeyPairAsync = promisify(generateKeyPair)

// --- DER (X.690) -----------------------------------------------------------------------------

function length (n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

/** One TLV: tag byte, length, content. */
function tlv (tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content])
}

const sequence = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items))
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items))
const octetString = (content: Buffer): Buffer => tlv(0x04, content)
const bitString = (content: Buffer, unusedBits = 0): Buffer => tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), content]))
const utf8String = (text: string): Buffer => tlv(0x0c, Buffer.from(text, 'utf8'))
const TRUE = tlv(0x01, Buffer.from([0xff]))
/** Context-specific tag: constructed for EXPLICIT tagging and for IMPLICIT tagging of a SEQUENCE. */
const explicit = (n: number, content: Buffer): Buffer => tlv(0xa0 | n, content)
const implicitPrimitive = (n: number, content: Buffer): Buffer => tlv(0x80 | n, content)

/** A non-negative INTEGER from its big-endian bytes, in the minimal form DER requires. */
function integer (bytes: Buffer): Buffer {
  let start = 0
  while (start < bytes.length - 1 && bytes[start] === 0 && ((bytes[start + 1] as number) & 0x80) === 0) start++
  const trimmed = bytes.subarray(start)
  return tlv(0x02, ((trimmed[0] as number) & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed)
}

function oid (dotted: string): Buffer {
  const parts = dotted.split('.').map(Number)
  const bytes: number[] = [(parts[0] as number) * 40 + (parts[1] as number)]
  for (const part of parts.slice(2)) {
    const chunk: number[] = [part & 0x7f]
    for (let rest = Math.floor(part / 128); rest > 0; rest = Math.floor(rest / 128)) chunk.unshift(0x80 | (rest & 0x7f))
    bytes.push(...chunk)
  }
  return tlv(0x06, Buffer.from(bytes))
}

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 section 4.1.2.5), to the second. */
function time (date: Date): Buffer {
  const iso = date.toISOString() // 2026-11-30T23:59:59.123Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') // 20261130235959
  const year = date.getUTCFullYear()
  return year < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii')) : tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'))
}

// --- X.509 pieces --------------------------------------------------------------------------------

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  nameConstraints: '2.5.29.30',
  serverAuth: '1.3.6.1.5.5.7.3.1'
} as const

/** A distinguished name: the attributes written, in this order, each in its own RDN. */
export interface DistinguishedName {
  commonName: string
  organization?: string
  organizationalUnit?: string
}

function name (dn: DistinguishedName): Buffer {
  const rdn = (type: string, value: string): Buffer => set(sequence(oid(type), utf8String(value)))
  const parts: Buffer[] = []
  if (dn.organization !== undefined) parts.push(rdn(OID.organization, dn.organization))
  if (dn.organizationalUnit !== undefined) parts.push(rdn(OID.organizationalUnit, dn.organizationalUnit))
  parts.push(rdn(OID.commonName, dn.commonName))
  return sequence(...parts)
}

function extension (type: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(oid(type), TRUE, octetString(value)) : sequence(oid(type), octetString(value))
}

/** The 4 or 16 bytes of an IP address (IPv6 with `::` and an embedded IPv4 tail accepted). */
export function ipBytes (address: string): Buffer {
  const family = isIP(address)
  if (family === 4) return Buffer.from(address.split('.').map(Number))
  if (family !== 6) throw new TypeError(`"${address}" is not an IP address`)
  let text = address.toLowerCase().replace(/%.*$/, '')
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4 !== null) {
    const [a, b, c, d] = (v4[1] as string).split('.').map(Number) as [number, number, number, number]
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head, tail] = text.split('::') as [string, string | undefined]
  const headGroups = head === '' ? [] : head.split(':')
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':')
  const zeros = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length
  const groups = [...headGroups, ...Array<string>(zeros).fill('0'), ...tailGroups]
  const out = Buffer.alloc(16)
  groups.forEach((group, i) => out.writeUInt16BE(parseInt(group, 16), i * 2))
  return out
}

/** A GeneralName for a host: dNSName [2] or iPAddress [7]. */
function generalName (host: string): Buffer {
  return isIP(host) === 0 ? implicitPrimitive(2, Buffer.from(host, 'ascii')) : implicitPrimitive(7, ipBytes(host))
}

/** An IP range for name constraints: `10.0.0.0/8`, `::1/128`. */
function ipSubtree (cidr: string): Buffer {
  const [address, bits] = cidr.split('/') as [string, string]
  const base = ipBytes(address)
  const mask = Buffer.alloc(base.length)
  for (let i = 0; i < Number(bits); i++) mask[i >> 3] = (mask[i >> 3] as number) | (0x80 >> (i & 7))
  return implicitPrimitive(7, Buffer.concat([base, mask]))
}

/** SHA-1 of the subjectPublicKey bits: the usual key identifier (RFC 5280 section 4.2.1.2, method 1). */
function keyIdentifier (spki: Buffer): Buffer {
  // SubjectPublicKeyInfo ::= SEQUENCE { algorithm, BIT STRING }; for P-256 the key is its last 65 bytes.
  return createHash('sha1').update(spki.subarray(spki.length - 65)).digest()
}

// --- Reading back what the builder wrote ---------------------------------------------------------

/** One DER element: its tag and where its content lies in the buffer. */
interface Element { tag: number, content: Buffer, end: number }

/** Reads the element at `offset`, checking every length against the buffer. */
function element (der: Buffer, offset: number): Element {
  if (offset + 2 > der.length) throw new TypeError('truncated DER')
  const tag = der[offset] as number
  let size = der[offset + 1] as number
  let start = offset + 2
  if (size >= 0x80) {
    const count = size & 0x7f
    if (count === 0 || count > 4 || start + count > der.length) throw new TypeError('bad DER length')
    size = 0
    for (let i = 0; i < count; i++) size = size * 256 + (der[start + i] as number)
    start += count
  }
  if (start + size > der.length) throw new TypeError('truncated DER')
  return { tag, content: der.subarray(start, start + size), end: start + size }
}

/** The elements inside a constructed element's content. */
function children (content: Buffer): Element[] {
  const out: Element[] = []
  for (let offset = 0; offset < content.length;) {
    const child = element(content, offset)
    out.push(child)
    offset = child.end
  }
  return out
}

function oidText (content: Buffer): string {
  const parts: number[] = [Math.floor((content[0] as number) / 40), (content[0] as number) % 40]
  let value = 0
  for (const byte of content.subarray(1)) {
    value = value * 128 + (byte & 0x7f)
    if ((byte & 0x80) === 0) {
      parts.push(value)
      value = 0
    }
  }
  return parts.join('.')
}

/** The parts of a certificate (DER) that issuing from it needs. */
export interface CertificateParts {
  /** The subject Name, DER, as written: a leaf's issuer field must repeat it byte for byte. */
  subject: Buffer
  /** Extension values (the OCTET STRING contents) by OID. */
  extensions: Map<string, Buffer>
}

/** Splits a certificate into the parts above. @throws TypeError on malformed DER */
export function certificateParts (der: Buffer): CertificateParts {
  const [tbs] = children(element(der, 0).content)
  if (tbs === undefined) throw new TypeError('not a certificate')
  const fields = children(tbs.content)
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0
  const subject = fields[offset + 4]
  if (subject === undefined) throw new TypeError('not a certificate')
  const extensions = new Map<string, Buffer>()
  const wrapper = fields.find((field) => field.tag === 0xa3)
  if (wrapper !== undefined) {
    const [list] = children(wrapper.content)
    for (const ext of children(list?.content ?? Buffer.alloc(0))) {
      const parts = children(ext.content)
      const id = parts[0]
      const value = parts[parts.length - 1]
      if (id?.tag === 0x06 && value?.tag === 0x04) extensions.set(oidText(id.content), value.content)
    }
  }
  // DER has one encoding per value: written again, the Name is the same bytes.
  return { subject: tlv(subject.tag, subject.content), extensions }
}

/**
 * The keyIdentifier of a certificate's authority key identifier extension (RFC 5280 section
 * 4.2.1.1: `SEQUENCE { [0] IMPLICIT OCTET STRING, ... }`), or null when it has none.
 * @throws TypeError on malformed DER
 */
export function authorityKeyId (der: Buffer): Buffer | null {
  const value = certificateParts(der).extensions.get(OID.authorityKeyIdentifier)
  if (value === undefined) return null
  const [identifier] = children(value)
  const keyId = children(identifier?.content ?? Buffer.alloc(0)).find((part) => part.tag === 0x80)
  return keyId === undefined || keyId.content.length === 0 ? null : Buffer.from(keyId.content)
}

/** The permitted subtrees of a certificate's name constraints (DNS names and IP ranges as `a.b.c.d/n`). */
export function permittedNames (der: Buffer): { dns: string[], ip: string[] } {
  const permitted = { dns: [] as string[], ip: [] as string[] }
  const value = certificateParts(der).extensions.get(OID.nameConstraints)
  if (value === undefined) return permitted
  const [constraints] = children(value)
  const list = children(constraints?.content ?? Buffer.alloc(0)).find((part) => part.tag === 0xa0)
  for (const subtree of children(list?.content ?? Buffer.alloc(0))) {
    const [base] = children(subtree.content)
    if (base?.tag === 0x82) permitted.dns.push(base.content.toString('ascii'))
    if (base?.tag === 0x87 && (base.content.length === 8 || base.content.length === 32)) {
      const half = base.content.length / 2
      const address = base.content.subarray(0, half)
      let bits = 0
      for (const byte of base.content.subarray(half)) for (let b = byte; b !== 0; b = (b << 1) & 0xff) bits++
      const text = half === 4
        ? [...address].join('.')
        : new URL(`http://[${(address.toString('hex').match(/.{4}/g) ?? []).join(':')}]/`).hostname.slice(1, -1)
      permitted.ip.push(`${text}/${bits}`)
    }
  }
  return permitted
}

/** What a certificate says; the builder writes exactly this. */
export interface CertificateSpec {
  subject: DistinguishedName
  /** The public key certified. */
  publicKey: KeyObject
  /**
   * The issuer: its subject Name (DER, from `certificateParts`) and keys; omitted for a self-signed
   * certificate (signed with `selfKey`).
   */
  issuer?: { subject: Buffer, key: KeyObject, publicKey: KeyObject }
  /** The private key of `publicKey`, to sign a self-signed certificate. */
  selfKey?: KeyObject
  notBefore: Date
  notAfter: Date
  /** A CA certificate (basicConstraints CA:TRUE, pathLen 0, keyCertSign) or a TLS server leaf. */
  ca: boolean
  /** Leaf names: DNS names and IP addresses. */
  hosts?: readonly string[]
  /** CA only: the names it may issue for (RFC 5280 name constraints, permitted subtrees). */
  permitted?: { dns: readonly string[], ip: readonly string[] }
}

/** Builds and signs a certificate; returns it in PEM. */
export function buildCertificate (spec: CertificateSpec): string {
  const spki = spec.publicKey.export({ type: 'spki', format: 'der' })
  const signer = spec.issuer?.key ?? spec.selfKey
  if (signer === undefined) throw new TypeError('buildCertificate needs an issuer key or the key of a self-signed certificate')
  const serial = randomBytes(16)
  // Positive and minimal: the top bit clear and the next one set (RFC 5280: at most 20 octets).
  serial[0] = ((serial[0] as number) & 0x7f) | 0x40
  const algorithm = sequence(oid(OID.ecdsaWithSha256))
  const issuerSpki = spec.issuer === undefined ? spki : spec.issuer.publicKey.export({ type: 'spki', format: 'der' })

  const extensions: Buffer[] = []
  if (spec.ca) {
    extensions.push(extension(OID.basicConstraints, true, sequence(TRUE, integer(Buffer.from([0])))))
    // keyCertSign (bit 5) and cRLSign (bit 6): 0b0000_0110, one unused bit.
    extensions.push(extension(OID.keyUsage, true, bitString(Buffer.from([0x06]), 1)))
  } else {
    extensions.push(extension(OID.basicConstraints, true, sequence()))
    // digitalSignature (bit 0): 0b1000_0000, seven unused bits.
    extensions.push(extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)))
    extensions.push(extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))))
  }
  if (spec.hosts !== undefined && spec.hosts.length > 0) {
    // Critical only when the subject is empty (RFC 5280 4.2.1.6); ours never is.
    extensions.push(extension(OID.subjectAltName, false, sequence(...spec.hosts.map(generalName))))
  }
  extensions.push(extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(spki))))
  if (spec.issuer !== undefined) {
    extensions.push(extension(OID.authorityKeyIdentifier, false, sequence(implicitPrimitive(0, keyIdentifier(issuerSpki)))))
  }
  if (spec.permitted !== undefined) {
    // GeneralSubtree ::= SEQUENCE { base GeneralName } (minimum 0 and no maximum, the defaults).
    const subtrees = [
      ...spec.permitted.dns.map((dns) => sequence(implicitPrimitive(2, Buffer.from(dns, 'ascii')))),
      ...spec.permitted.ip.map((cidr) => sequence(ipSubtree(cidr)))
    ]
    // NameConstraints ::= SEQUENCE { permittedSubtrees [0] IMPLICIT GeneralSubtrees }; critical (RFC 5280 4.2.1.10).
    extensions.push(extension(OID.nameConstraints, true, sequence(explicit(0, Buffer.concat(subtrees)))))
  }

  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))), // v3
    integer(serial),
    algorithm,
    spec.issuer?.subject ?? name(spec.subject),
    sequence(time(spec.notBefore), time(spec.notAfter)),
    name(spec.subject),
    spki,
    explicit(3, sequence(...extensions))
  )
  const signature = sign('sha256', tbs, { key: signer, dsaEncoding: 'der' })
  const der = sequence(tbs, algorithm, bitString(signature))
  const base64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')
  return `-----BEGIN CERTIFICATE-----\n${base64}\n-----END CERTIFICATE-----\n`
}

/** A new ECDSA P-256 key pair (OpenSSL underneath: a millisecond or two). */
export async function generateEcdsaKey (): Promise<{ privateKey: KeyObject, publicKey: KeyObject }> {
  return await generateKeyPairAsync('ec', { namedCurve: 'P-256' })
}

/** A private key in PKCS#8 PEM. */
export function privateKeyPem (key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString()
}

/** The public key of a certificate or private key, for `issuer.publicKey`. */
export function publicKeyOf (key: KeyObject | string): KeyObject {
  return createPublicKey(key)
}
