/**
 * A small HTTP(S) client over real sockets, with control over what tests need: the CA to trust, the
 * SNI name, the local address, and what the TLS handshake negotiated.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { PeerCertificate, TLSSocket } from 'node:tls'

export interface RequestOptions {
  method?: string
  headers?: Record<string, string | string[]>
  body?: string | Buffer
  /** CA to trust (PEM); default: reject unknown CAs unless `insecure`. */
  ca?: string | Buffer | Array<string | Buffer>
  insecure?: boolean
  servername?: string
  localAddress?: string
  /** Keep-alive agent to reuse a connection. */
  agent?: import('node:http').Agent
  timeout?: number
}

export interface Response {
  status: number
  headers: IncomingHttpHeaders
  body: string
  /** Set when the request went over TLS. */
  tls?: { protocol: string | null, cipher: string, certificate: PeerCertificate, alpn: string | false | null }
  /** Local port of the connection (to tell connections apart). */
  localPort: number | undefined
}

/** Sends one request and reads the whole response. */
export function request (url: string | URL, options: RequestOptions = {}): Promise<Response> {
  const target = new URL(url)
  const secure = target.protocol === 'https:'
  const send = secure ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = send(target, {
      method: options.method ?? 'GET',
      headers: options.headers,
      ca: options.ca,
      rejectUnauthorized: options.insecure !== true,
      servername: options.servername,
      localAddress: options.localAddress,
      agent: options.agent,
      timeout: options.timeout ?? 10_000
    } as import('node:https').RequestOptions, (res) => {
      const chunks: Buffer[] = []
      // Read the socket now: a keep-alive agent takes it back once the body ends.
      const socket = res.socket as TLSSocket
      const response: Response = { status: res.statusCode ?? 0, headers: res.headers, body: '', localPort: socket?.localPort }
      if (secure && socket !== null && typeof socket.getProtocol === 'function') {
        response.tls = {
          protocol: socket.getProtocol(),
          cipher: socket.getCipher().name,
          certificate: socket.getPeerCertificate(),
          alpn: socket.alpnProtocol
        }
      }
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('error', reject)
      res.on('end', () => {
        response.body = Buffer.concat(chunks).toString('utf8')
        resolve(response)
      })
    })
    req.on('timeout', () => req.destroy(new Error(`request to ${target.href} timed out`)))
    req.on('error', reject)
    req.end(options.body)
  })
}

/** The cookies of a response's Set-Cookie headers, as `name=value` pairs for a Cookie header. */
export function cookieHeader (response: Response): string {
  return (response.headers['set-cookie'] ?? []).map((line) => line.split(';')[0]).join('; ')
}

/** Parses one Set-Cookie line into its name, value and attributes (lower-cased names). */
export function parseSetCookie (line: string): { name: string, value: string, attributes: Record<string, string | true> } {
  const [pair = '', ...rest] = line.split(';')
  const eq = pair.indexOf('=')
  const attributes: Record<string, string | true> = {}
  for (const part of rest) {
    const trimmed = part.trim()
    if (trimmed === '') continue
    const i = trimmed.indexOf('=')
    if (i === -1) attributes[trimmed.toLowerCase()] = true
    else attributes[trimmed.slice(0, i).toLowerCase()] = trimmed.slice(i + 1)
  }
  return { name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim(), attributes }
}
