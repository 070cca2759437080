/**
 * Debian's pebble (a test ACME CA) and pebble-challtestsrv (its DNS, answering 127.0.0.1 for every
 * name) on loopback with free ports, real HTTP-01 validation against `httpPort`, and an HTTPS
 * certificate for pebble's own API from a CA made here with openssl.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { createServer } from 'node:http'
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:tls'
import type { SecureHttpsOptions } from '../../index.ts'
import { freePort } from './app.ts'
import { request } from './http.ts'
import type { LogLine } from './logs.ts'

export interface PebbleOptions {
  /** Lifetime of the certificates pebble issues, in seconds (pebble's default: about five years). */
  validitySeconds?: number
  /** Names pebble refuses to certify (rejectedIdentifier). */
  blocklist?: string[]
  /** External account binding keys (key id to base64url HMAC key); pebble then requires EAB. */
  eab?: Record<string, string>
}

export interface Pebble {
  /** The ACME directory URL. */
  directory: string
  /** PEM file of the CA that signed pebble's HTTPS certificate (for ACME_CA_FILE). */
  caFile: string
  /** Where pebble sends HTTP-01 validation requests: the app's HTTP_PORT in tests. */
  httpPort: number
  /** Where pebble connects for TLS-ALPN-01 validation: the app's HTTPS port in tests. */
  tlsPort: number
  /** Sets a TXT record in pebble-challtestsrv's DNS (its management API), as a DNS provider would. */
  setTxt (host: string, value: string): Promise<void>
  /** Removes the TXT records of a name. */
  clearTxt (host: string): Promise<void>
  /** Pebble's current issuing root and intermediate (both change when pebble restarts). */
  issuers (): Promise<{ root: string, intermediate: string }>
  /** Pebble's output so far. */
  output (): string
  /** Stops pebble (the DNS server keeps running). */
  stop (): Promise<void>
  /** Starts pebble again on the same ports, with a new root and intermediate. */
  start (): Promise<void>
  /** Stops everything and removes the temporary folder. */
  close (): Promise<void>
}

function stopProcess (child: ChildProcess | null): Promise<void> {
  if (child === null || child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

async function waitUntil (check: () => Promise<boolean>, what: string, output: () => string, timeout = 10_000): Promise<void> {
  const end = Date.now() + timeout
  while (Date.now() < end) {
    if (await check().catch(() => false)) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`${what} did not come up within ${timeout} ms:\n${output()}`)
}

/** Starts pebble-challtestsrv and pebble. Call `close()` in teardown. */
export async function startPebble (options: PebbleOptions = {}): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'pebble-test-'))
  const caKey = join(dir, 'ca-key.pem')
  const caFile = join(dir, 'ca.pem')
  const key = join(dir, 'key.pem')
  const csr = join(dir, 'server.csr')
  const cert = join(dir, 'cert.pem')
  const ext = join(dir, 'server.ext')
  const quiet = { stdio: 'ignore' as const }
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=pebble test CA', '-keyout', caKey, '-out', caFile], quiet)
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-subj', '/CN=127.0.0.1', '-keyout', key, '-out', csr], quiet)
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n')
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-days', '2',
    '-extfile', ext, '-out', cert], quiet)
  const ca = readFileSync(caFile, 'utf8')

  const [acmePort, managementPort, httpPort, tlsPort, dnsPort, dnsManagementPort] = await Promise.all(
    [1, 2, 3, 4, 5, 6].map(() => freePort())) as [number, number, number, number, number, number]
  const config = join(dir, 'pebble-config.json')
  writeFileSync(config, JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`,
      managementListenAddress: `127.0.0.1:${managementPort}`,
      certificate: cert,
      privateKey: key,
      httpPort,
      tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: options.eab !== undefined,
      ...(options.eab === undefined ? {} : { externalAccountMACKeys: options.eab }),
      ...(options.validitySeconds === undefined ? {} : { certificateValidityPeriod: options.validitySeconds }),
      ...(options.blocklist === undefined ? {} : { domainBlocklist: options.blocklist })
    }
  }))

  let log = ''
  const collect = (child: ChildProcess): void => {
    child.stdout?.on('data', (chunk: Buffer) => { log += chunk.toString() })
    child.stderr?.on('data', (chunk: Buffer) => { log += chunk.toString() })
  }
  const dns = spawn('pebble-challtestsrv', ['-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${dnsManagementPort}`,
    '-http01', '', '-https01', '', '-tlsalpn01', '', '-defaultIPv6', ''], { stdio: ['ignore', 'pipe', 'pipe'] })
  collect(dns)
  let pebble: ChildProcess | null = null
  const output = (): string => log

  async function start (): Promise<void> {
    const child = spawn('pebble', ['-config', config, '-dnsserver', `127.0.0.1:${dnsPort}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Real HTTP-01 validation, without pebble's random sleeps and deliberate nonce rejections.
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' }
    })
    collect(child)
    pebble = child
    await waitUntil(async () => (await request(`https://127.0.0.1:${acmePort}/dir`, { ca, timeout: 1000 })).status === 200, 'pebble', output)
  }

  async function stop (): Promise<void> {
    await stopProcess(pebble)
    pebble = null
  }

  try {
    await waitUntil(async () => (await request(`http://127.0.0.1:${dnsManagementPort}/`, { timeout: 1000 })).status > 0, 'pebble-challtestsrv', output)
    await start()
  } catch (error) {
    await stop()
    await stopProcess(dns)
    rmSync(dir, { recursive: true, force: true })
    throw error
  }

  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    caFile,
    httpPort,
    tlsPort,
    async setTxt (host, value) {
      const res = await request(`http://127.0.0.1:${dnsManagementPort}/set-txt`, { method: 'POST', body: JSON.stringify({ host: host.endsWith('.') ? host : `${host}.`, value }) })
      if (res.status !== 200) throw new Error(`pebble-challtestsrv set-txt: ${res.status} ${res.body}`)
    },
    async clearTxt (host) {
      const res = await request(`http://127.0.0.1:${dnsManagementPort}/clear-txt`, { method: 'POST', body: JSON.stringify({ host: host.endsWith('.') ? host : `${host}.` }) })
      if (res.status !== 200) throw new Error(`pebble-challtestsrv clear-txt: ${res.status} ${res.body}`)
    },
    async issuers () {
      const get = async (path: string): Promise<string> => {
        const res = await request(`https://127.0.0.1:${managementPort}${path}`, { ca })
        if (res.status !== 200) throw new Error(`pebble ${path}: ${res.status} ${res.body}`)
        return res.body
      }
      return { root: await get('/roots/0'), intermediate: await get('/intermediates/0') }
    },
    output,
    stop,
    start,
    async close () {
      await stop()
      await stopProcess(dns)
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** The certificate chain a server presents for a name, without judging it. */
export function presented (port: number, servername: string): Promise<X509Certificate[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const chain: X509Certificate[] = []
      let peer = socket.getPeerCertificate(true)
      const seen = new Set<string>()
      while (peer?.raw !== undefined && !seen.has(peer.fingerprint256)) {
        seen.add(peer.fingerprint256)
        chain.push(new X509Certificate(peer.raw))
        peer = peer.issuerCertificate
      }
      socket.end()
      resolve(chain)
    })
    socket.once('error', reject)
  })
}

/** Options for an app in TLS_MODE=acme against this pebble. */
export function acmeOptions (pebble: Pebble, dir: string, domains: string[], httpPort: number, extra: Record<string, unknown> = {}): SecureHttpsOptions {
  // `a+b` puts names on one certificate; every name is an allowed host (wildcards are not).
  const hosts = domains.flatMap((entry) => entry.split('+')).filter((name) => !name.startsWith('*.'))
  return {
    allowedHosts: [...hosts, 'localhost', '127.0.0.1'],
    tls: {
      mode: 'acme',
      dir,
      acme: { domains, email: 'ops@example.com', directory: pebble.directory, caFile: pebble.caFile, agreeTos: true, retryDelay: 0.2, ...extra }
    },
    httpsRedirect: { port: httpPort }
  }
}

export const reloaded = (line: LogLine): boolean => line.msg === 'TLS certificate reloaded'

/**
 * A plain HTTP server on pebble's HTTP-01 port answering each challenge from whichever of `sources`
 * (ACME sources run without Fastify, added to the array as a test starts them) holds its token;
 * closed at the test's end.
 */
export async function answerChallenges (t: { teardown (fn: () => unknown): void }, pebble: Pebble, sources: ReadonlyArray<{ challenge (token: string): Promise<string | null> }>): Promise<void> {
  const server = createServer((req, res) => {
    const token = (req.url ?? '').split('/').pop() ?? ''
    Promise.all(sources.map((source) => source.challenge(token))).then((answers) => {
      const answer = answers.find((value) => value !== null)
      res.writeHead(answer === undefined ? 404 : 200).end(answer ?? '')
    }, () => res.writeHead(500).end())
  })
  await new Promise<void>((resolve) => server.listen(pebble.httpPort, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
}
