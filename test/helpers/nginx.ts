/**
 * A real nginx (Debian's) terminating TLS in front of an app on loopback: an HTTPS server and a
 * plain HTTP server, both proxying to the app with the headers docs/proxy-trust.md recommends.
 * Everything nginx writes (pid, logs, temp files) stays in a temporary folder, removed on `stop()`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startTlsProxy, type TlsProxy } from './proxy-process.ts'

/**
 * The proxy lines of both server blocks, exactly as docs/proxy-trust.md shows them (a test checks
 * the page still contains each line). Each header is set, never passed through from the client.
 */
export const NGINX_PROXY_HEADERS = [
  'proxy_http_version 1.1;',
  'proxy_set_header Connection "";',
  'proxy_set_header Host $host;',
  'proxy_set_header X-Forwarded-Proto $scheme;',
  'proxy_set_header X-Forwarded-Host $host;',
  'proxy_set_header X-Forwarded-For $remote_addr;',
  'proxy_set_header Forwarded "";'
] as const

export interface NginxOptions {
  /** Port of the app nginx proxies to, on 127.0.0.1. */
  upstreamPort: number
  /** Names the generated certificate covers besides localhost, 127.0.0.1 and ::1. */
  hosts?: readonly string[]
  /** Path of the nginx binary (default: from PATH). */
  bin?: string
}

/** A running nginx (see `startTlsProxy`). */
export type Nginx = TlsProxy

/** The nginx.conf the tests run: the two server blocks are those of docs/proxy-trust.md. */
export function nginxConfig (dir: string, ports: { https: number, http: number, upstream: number }): string {
  const headers = NGINX_PROXY_HEADERS.map((line) => `      ${line}`).join('\n')
  return `daemon off;
master_process off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 128; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'tmp', 'client_body')};
  proxy_temp_path ${join(dir, 'tmp', 'proxy')};
  fastcgi_temp_path ${join(dir, 'tmp', 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp', 'uwsgi')};
  scgi_temp_path ${join(dir, 'tmp', 'scgi')};

  upstream app {
    server 127.0.0.1:${ports.upstream};
    keepalive 8;
  }

  server {
    listen 127.0.0.1:${ports.https} ssl http2;
    ssl_certificate ${join(dir, 'cert.pem')};
    ssl_certificate_key ${join(dir, 'key.pem')};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://app;
${headers}
    }
  }

  server {
    listen 127.0.0.1:${ports.http};
    location / {
      proxy_pass http://app;
${headers}
    }
  }
}
`
}

/** Starts nginx in front of the app on free ports; resolves once both ports accept connections. */
export async function startNginx (options: NginxOptions): Promise<Nginx> {
  return startTlsProxy('nginx', options.hosts ?? [], (dir, ports, pair) => {
    mkdirSync(join(dir, 'tmp'))
    writeFileSync(join(dir, 'cert.pem'), pair.cert)
    writeFileSync(join(dir, 'key.pem'), pair.key, { mode: 0o600 })
    const config = nginxConfig(dir, { ...ports, upstream: options.upstreamPort })
    writeFileSync(join(dir, 'nginx.conf'), config)
    return {
      config,
      command: options.bin ?? 'nginx',
      // -e: nginx opens its default error log before reading the config; keep that one here too.
      args: ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')],
      log: () => { try { return readFileSync(join(dir, 'error.log'), 'utf8') } catch { return '' } }
    }
  })
}
