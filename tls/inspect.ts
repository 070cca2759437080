/**
 * Reading certificates: what they cover, until when, and whether a key belongs to them.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { isIP } from 'node:net'
import { ERR_CERTIFICATE } from '../errors.ts'

/** What the suite reports about a certificate. */
export interface CertificateInfo {
  subject: string
  issuer: string
  /** Subject alternative names, DNS names and IP addresses, as written in the certificate. */
  sans: string[]
  notBefore: Date
  notAfter: Date
  /** SHA-256 fingerprint, colon-separated hex. */
  fingerprint: string
  /** `ec P-256`, `rsa 2048`, ... */
  keyType: string
  selfSigned: boolean
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** Splits a PEM bundle into its certificates, in file order. */
export function splitPemCertificates (pem: string | Buffer): string[] {
  return String(pem).match(PEM_CERT) ?? []
}

/** Parses the SAN extension text Node gives (`DNS:a, IP Address:1.2.3.4`). */
export function parseSubjectAltName (text: string | undefined): string[] {
  if (text === undefined) return []
  return text.split(/,\s*/).map((entry) => {
    const colon = entry.indexOf(':')
    const value = colon === -1 ? entry : entry.slice(colon + 1)
    // Node spells IPv6 SANs in full (0:0:0:0:0:0:0:1); compare them in the usual short form.
    return isIP(value) === 6 ? new URL(`http://[${value}]/`).hostname.slice(1, -1) : value.toLowerCase()
  }).filter((entry) => entry.length > 0)
}

function keyDescription (cert: X509Certificate): string {
  const key = cert.publicKey
  const details = key.asymmetricKeyDetails ?? {}
  if (key.asymmetricKeyType === 'ec') {
    const curve = details.namedCurve === 'prime256v1' ? 'P-256' : details.namedCurve === 'secp384r1' ? 'P-384' : details.namedCurve
    return `ec ${curve ?? ''}`.trim()
  }
  if (key.asymmetricKeyType === 'rsa') return `rsa ${details.modulusLength ?? ''}`.trim()
  return key.asymmetricKeyType ?? 'unknown'
}

/** Facts about the first certificate of a PEM (the leaf). */
export function inspectCertificate (pem: string | Buffer): CertificateInfo {
  const cert = parseCertificate(pem)
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    sans: parseSubjectAltName(cert.subjectAltName),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    fingerprint: cert.fingerprint256,
    keyType: keyDescription(cert),
    selfSigned: cert.subject === cert.issuer && cert.verify(cert.publicKey)
  }
}

/** Parses the first certificate of a PEM, with an error that says what is wrong. */
export function parseCertificate (pem: string | Buffer, label = 'certificate'): X509Certificate {
  const first = splitPemCertificates(pem)[0]
  if (first === undefined) throw new ERR_CERTIFICATE(`${label} holds no PEM certificate (-----BEGIN CERTIFICATE-----); check the file is the certificate and not the key, and that it was written completely`)
  try {
    return new X509Certificate(first)
  } catch (error) {
    throw new ERR_CERTIFICATE(`${label} cannot be parsed (${(error as Error).message}); the file may be truncated or corrupt`)
  }
}

/** Loads a private key, with an error that says what is wrong. */
export function parsePrivateKey (pem: string | Buffer, passphrase?: string, label = 'private key'): KeyObject {
  if (passphrase === undefined && /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(String(pem))) {
    throw new ERR_CERTIFICATE(`${label} is encrypted and cannot be decrypted; set TLS_KEY_PASSPHRASE to its passphrase`)
  }
  try {
    return createPrivateKey(passphrase === undefined ? { key: pem } : { key: pem, passphrase })
  } catch (error) {
    const message = (error as Error).message
    if (/passphrase|decrypt|bad decrypt/i.test(message)) {
      throw new ERR_CERTIFICATE(passphrase === undefined
        ? `${label} is encrypted and cannot be decrypted; set TLS_KEY_PASSPHRASE to its passphrase`
        : `${label} cannot be decrypted with TLS_KEY_PASSPHRASE; check the passphrase (or the key file: it may be another key)`)
    }
    const isCertificate = /-----BEGIN CERTIFICATE-----/.test(String(pem)) && !/PRIVATE KEY-----/.test(String(pem))
    throw new ERR_CERTIFICATE(isCertificate
      ? `${label} holds a certificate, not a private key; swap TLS_CERT_FILE and TLS_KEY_FILE (certbot: privkey.pem is the key)`
      : `${label} cannot be parsed (${message}); the file must be a PEM private key, written completely`)
  }
}

/** True when a certificate name (possibly a wildcard) covers a host name. */
export function nameMatches (pattern: string, host: string): boolean {
  if (pattern === host) return true
  if (!pattern.startsWith('*.')) return false
  const dot = host.indexOf('.')
  return dot > 0 && host.slice(dot + 1) === pattern.slice(2)
}

/** Hosts not covered by any of the certificate's names. */
export function uncoveredHosts (sans: readonly string[], hosts: readonly string[]): string[] {
  return hosts.filter((host) => !sans.some((san) => nameMatches(san, host)))
}

/**
 * Why the PEM certificates of a file are cut short, or null: every `-----BEGIN CERTIFICATE-----`
 * needs its `-----END CERTIFICATE-----`. The parser here reads only whole blocks and would pass
 * over a block without its end, which OpenSSL then refuses with a bare ERR_OSSL_PEM_BAD_END_LINE.
 */
export function truncatedPem (pem: string | Buffer): string | null {
  const text = String(pem)
  const begins = text.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0
  const ends = text.match(/-----END CERTIFICATE-----/g)?.length ?? 0
  if (begins === ends) return null
  return `the file is cut short or damaged: ${begins} "-----BEGIN CERTIFICATE-----" line${begins === 1 ? '' : 's'} but ${ends} "-----END CERTIFICATE-----" line${ends === 1 ? '' : 's'}; ` +
    'write the whole file again (for certbot, fullchain.pem) and check that the copy finished'
}

/**
 * Problems with a PEM chain that make it unusable: a block cut short, a certificate that cannot be
 * parsed, or the wrong order.
 */
export function chainProblems (certPem: string | Buffer): string[] {
  const truncated = truncatedPem(certPem)
  if (truncated !== null) return [truncated]
  const certs: X509Certificate[] = []
  const problems: string[] = []
  splitPemCertificates(certPem).forEach((pem, i) => {
    try {
      certs.push(new X509Certificate(pem))
    } catch (error) {
      problems.push(`certificate ${i + 1} in the chain cannot be parsed (${(error as Error).message})`)
    }
  })
  if (problems.length > 0) return problems
  if (certs.length > 1 && certs[0]?.ca === true) {
    return [`certificate 1 in the file is a CA certificate (${certs[0].subject.replace(/\n/g, ', ')}), not the server's; order the file leaf first, then each issuer (certbot's fullchain.pem is in this order)`]
  }
  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i] as X509Certificate
    const parent = certs[i + 1] as X509Certificate
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      problems.push(`certificate ${i + 2} in the chain did not issue certificate ${i + 1}; order the file leaf first, then each issuer (certbot's fullchain.pem is in this order)`)
    }
  }
  return problems
}

/** True when one of the PEM certificates is a self-signed root that issued `cert`. */
function issuedByRoot (cert: X509Certificate, roots: string | Buffer | undefined): boolean {
  if (roots === undefined) return false
  return splitPemCertificates(roots).some((pem) => {
    try {
      const root = new X509Certificate(pem)
      return root.ca && root.subject === root.issuer && root.verify(root.publicKey) &&
        cert.checkIssued(root) && cert.verify(root.publicKey)
    } catch {
      return false
    }
  })
}

/**
 * Problems with a chain that still works for some clients: a leaf served without its intermediates
 * (browsers that have cached them cope, curl, Android and API clients fail), or an intermediate out
 * of date. `roots` are self-signed CAs the clients are expected to trust (the development CA,
 * TLS_CA_FILE): a leaf issued straight by one of them needs no intermediate.
 */
export function chainWarnings (certPem: string | Buffer, now = Date.now(), roots?: string | Buffer): string[] {
  const pems = splitPemCertificates(certPem)
  const warnings: string[] = []
  const first = pems[0]
  if (first === undefined) return warnings
  const leaf = new X509Certificate(first)
  if (pems.length === 1 && !(leaf.subject === leaf.issuer && leaf.verify(leaf.publicKey)) && !issuedByRoot(leaf, roots)) {
    warnings.push(`the certificate file holds only the leaf certificate, without the intermediates of its issuer (${leaf.issuer.replace(/\n/g, ', ')}); clients that do not have them cached will reject the site. Point TLS_CERT_FILE at the full chain (certbot: fullchain.pem, not cert.pem)`)
  }
  pems.slice(1).forEach((pem, i) => {
    const cert = new X509Certificate(pem)
    if (new Date(cert.validTo).getTime() <= now) {
      warnings.push(`certificate ${i + 2} in the chain (${cert.subject.replace(/\n/g, ', ')}) expired on ${new Date(cert.validTo).toISOString()}; fetch the current chain from the CA (certbot: fullchain.pem)`)
    }
  })
  return warnings
}

/**
 * Checks that a key and certificate belong together and the certificate is in date.
 * @throws ERR_SECURE_HTTPS_CERTIFICATE naming the problem
 */
export function assertUsablePair (certPem: string | Buffer, keyPem: string | Buffer, passphrase?: string, now = Date.now(), label = 'certificate', keyLabel = 'private key'): CertificateInfo {
  const cert = parseCertificate(certPem, label)
  const key = parsePrivateKey(keyPem, passphrase, keyLabel)
  if (!cert.checkPrivateKey(key)) {
    throw new ERR_CERTIFICATE(`the private key does not match the ${label} (fingerprint ${cert.fingerprint256.slice(0, 23)}...); use the key the certificate was issued for (certbot: privkey.pem beside fullchain.pem)`)
  }
  const info = inspectCertificate(certPem)
  if (info.notAfter.getTime() <= now) {
    throw new ERR_CERTIFICATE(`the ${label} expired on ${info.notAfter.toISOString()}; renew it (certbot renew) or switch to TLS_MODE=acme`)
  }
  if (info.notBefore.getTime() > now + 60_000) {
    throw new ERR_CERTIFICATE(`the ${label} is not valid before ${info.notBefore.toISOString()}; check the system clock`)
  }
  return info
}
