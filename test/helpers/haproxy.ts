/**
 * A real haproxy (Debian's 2.6) terminating TLS in front of an app on loopback, with an HTTPS and a
 * plain HTTP front end. haproxy 2.6 has no `option forwarded` (2.7 added it), so the RFC 7239
 * Forwarded header is written by hand, as docs/proxy-trust.md shows.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startTlsProxy, type TlsProxy } from './proxy-process.ts'

/**
 * Refuses a Host that is not `name[:port]` before it is copied into Forwarded: haproxy copies
 * `%[req.hdr(host)]` without escaping, so `Host: x", for=10.0.0.1;proto=https;host="example.com`
 * would write a Forwarded element of the client's choosing.
 */
export const HAPROXY_HOST_CHECK_LINE = 'http-request deny deny_status 400 unless { req.hdr_cnt(host) eq 1 } { req.hdr(host) -m reg ^[A-Za-z0-9._-]+(:[0-9]+)?$ }'

/**
 * The lines of each front end that decide what the app hears, exactly as docs/proxy-trust.md shows
 * them (a test checks the page still contains each line). `PROTO` is https or http.
 * Every forwarding header is replaced or removed, so nothing the client sent reaches the app.
 */
export const HAPROXY_FORWARDED_LINES = [
  HAPROXY_HOST_CHECK_LINE,
  'option forwardfor',
  'http-request del-header X-Forwarded-Proto',
  'http-request del-header X-Forwarded-Host',
  'http-request set-header Forwarded "for=%[src];proto=PROTO;host=\\"%[req.hdr(host)]\\""'
] as const

/** The same, for a proxy that also sets X-Forwarded-Proto (the app then works without TRUST_FORWARDED). */
export const HAPROXY_X_FORWARDED_PROTO_LINE = 'http-request set-header X-Forwarded-Proto PROTO'

export interface HaproxyOptions {
  /** Port of the app haproxy proxies to, on 127.0.0.1. */
  upstreamPort: number
  /** Also set X-Forwarded-Proto (default false: Forwarded only). */
  xForwardedProto?: boolean
  /** Path of the haproxy binary (default: from PATH). */
  bin?: string
  /** Leave out the Host check: the injectable configuration docs/proxy-trust.md showed before (tests of the app's own defence). */
  withoutHostCheck?: boolean
}

/** A running haproxy (see `startTlsProxy`). */
export type Haproxy = TlsProxy

function frontEndLines (proto: 'https' | 'http', xForwardedProto: boolean, hostCheck: boolean): string {
  const lines: string[] = HAPROXY_FORWARDED_LINES.filter((line) => hostCheck || line !== HAPROXY_HOST_CHECK_LINE)
  if (xForwardedProto) lines.push(HAPROXY_X_FORWARDED_PROTO_LINE)
  return lines.map((line) => `  ${line.replace('PROTO', proto)}`).join('\n')
}

/** The haproxy.cfg the tests run. */
export function haproxyConfig (dir: string, ports: { https: number, http: number, upstream: number }, xForwardedProto = false, hostCheck = true): string {
  return `global
  maxconn 256

defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
  timeout http-keep-alive 5s

frontend https
  bind 127.0.0.1:${ports.https} ssl crt ${join(dir, 'haproxy.pem')} alpn h2,http/1.1
${frontEndLines('https', xForwardedProto, hostCheck)}
  default_backend app

frontend http
  bind 127.0.0.1:${ports.http}
${frontEndLines('http', xForwardedProto, hostCheck)}
  default_backend app

backend app
  server app 127.0.0.1:${ports.upstream}
`
}

/** Starts haproxy in front of the app on free ports; resolves once both ports accept connections. */
export async function startHaproxy (options: HaproxyOptions): Promise<Haproxy> {
  return startTlsProxy('haproxy', [], (dir, ports, pair) => {
    writeFileSync(join(dir, 'haproxy.pem'), `${pair.cert}\n${pair.key}\n`, { mode: 0o600 })
    const config = haproxyConfig(dir, { ...ports, upstream: options.upstreamPort }, options.xForwardedProto ?? false, options.withoutHostCheck !== true)
    writeFileSync(join(dir, 'haproxy.cfg'), config)
    return { config, command: options.bin ?? 'haproxy', args: ['-db', '-f', join(dir, 'haproxy.cfg')] }
  })
}
