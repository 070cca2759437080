/**
 * TLS handshake benchmark: the suite's default certificate (ECDSA P-256, what TLS_MODE=self-signed
 * generates and what Let's Encrypt issues by default) against an RSA-4096 one (the Flask tutorials'
 * `openssl req -x509 -newkey rsa:4096`), in full and in resumed (session ticket) handshakes.
 *
 *   npm run build && node dist/bench/handshake.js [--duration 3] [--rounds 3] [--concurrency 8]
 *
 * Each certificate is served by its own server process (Fastify built with `serverOptions` and the
 * suite registered, intermediate profile, TLS 1.3) on loopback; this process is the client, a loop of
 * `tls.connect()` with `concurrency` handshakes in flight. With two or more cores and `taskset`
 * available, the server is pinned to core 0 and the client to core 1. Variants are measured in turn,
 * round after round, so that a slow moment on a shared machine lands on all of them.
 *
 * Two figures per variant: handshakes per second (wall clock, bounded by whichever side is slower)
 * and the server's CPU time per handshake (its own `process.cpuUsage()` over the measured window, via
 * IPC), which is what decides how many handshakes a server can take. The ratio is RSA-4096 over
 * ECDSA P-256 for the CPU time, and ECDSA over RSA for the rate.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import Fastify from 'fastify'
import secureHttps, { resolveConfig, serverOptions, generateSelfSigned, type SecureHttpsOptions } from 'fastify-secure-https'

type Variant = 'ecdsa-p256' | 'rsa-4096'
const VARIANTS: readonly Variant[] = ['ecdsa-p256', 'rsa-4096']

type ServerMessage = { type: 'ready', port: number } | { type: 'cpu', micros: number }

/** The server side, run in a child process: `node handshake.js --serve VARIANT DIR`. */
async function serve (variant: Variant, dir: string): Promise<void> {
  const tls: SecureHttpsOptions['tls'] = variant === 'ecdsa-p256'
    ? { mode: 'self-signed', dir }
    : { mode: 'files', dir, certFile: join(dir, 'rsa-cert.pem'), keyFile: join(dir, 'rsa-key.pem') }
  const config = resolveConfig({ tls, httpsRedirect: false })
  const app = Fastify({ ...(await serverOptions(config)) })
  await app.register(secureHttps, config)
  // Clients that close right after the handshake make the server's ticket writes fail; that is expected here.
  app.server.on('tlsClientError', () => {})
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  const send = (message: ServerMessage): void => { process.send?.(message) }
  send({ type: 'ready', port: typeof address === 'object' && address !== null ? address.port : 0 })
  process.on('message', (message: string) => {
    if (message === 'cpu') {
      const usage = process.cpuUsage()
      send({ type: 'cpu', micros: usage.user + usage.system })
    } else if (message === 'stop') {
      app.close().then(() => process.exit(0), () => process.exit(1))
    }
  })
}

function hasTaskset (): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' })
    return os.cpus().length >= 2
  } catch {
    return false
  }
}

interface Server { child: ChildProcess, port: number, cpu (): Promise<number>, stop (): Promise<void> }

async function startServer (variant: Variant, dir: string, pin: boolean): Promise<Server> {
  const script = fileURLToPath(import.meta.url)
  const args = [script, '--serve', variant, dir]
  const child = pin
    ? spawn('taskset', ['-c', '0', process.execPath, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const next = <T extends ServerMessage['type']>(type: T): Promise<Extract<ServerMessage, { type: T }>> => new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`${variant} server exited with ${String(code)}`))
    const onMessage = (message: ServerMessage): void => {
      if (message.type !== type) return
      child.off('message', onMessage)
      child.off('exit', onExit)
      resolve(message as Extract<ServerMessage, { type: T }>)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
  const { port } = await next('ready')
  return {
    child,
    port,
    async cpu () {
      const reply = next('cpu')
      child.send('cpu')
      return (await reply).micros
    },
    stop: () => new Promise((resolve) => {
      child.once('exit', () => resolve())
      child.send('stop')
    })
  }
}

/** One handshake; resolves with whether the session was resumed. */
function handshake (port: number, session?: Buffer): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, session })
    socket.once('secureConnect', () => {
      const reused = socket.isSessionReused()
      socket.destroy()
      resolve(reused)
    })
    socket.once('error', reject)
  })
}

/** A session ticket from the server, for resumed handshakes. */
function ticket (port: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false })
    socket.once('session', (session: Buffer) => {
      resolve(session)
      socket.end()
    })
    socket.on('data', () => {})
    socket.once('error', reject)
  })
}

interface Sample { handshakes: number, reused: number, seconds: number, serverMicros: number }

async function measure (server: Server, seconds: number, concurrency: number, session: Buffer | undefined): Promise<Sample> {
  const deadline = Date.now() + seconds * 1000
  let handshakes = 0
  let reused = 0
  const cpuBefore = await server.cpu()
  const started = process.hrtime.bigint()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < deadline) {
      if (await handshake(server.port, session)) reused++
      handshakes++
    }
  }))
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9
  const cpuAfter = await server.cpu()
  return { handshakes, reused, seconds: elapsed, serverMicros: cpuAfter - cpuBefore }
}

/** Signatures per second of the two keys, from `openssl speed`; null without openssl. */
function signatureSpeed (): { ecdsa: number, rsa: number } | null {
  try {
    const out = execFileSync('openssl', ['speed', '-seconds', '2', 'ecdsap256', 'rsa4096'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    // "rsa 4096 bits 0.003s 0.00005s 300.0 20000.0" and "256 bits ecdsa (nistp256) 0.0000s 0.0001s 40000.0 12000.0"
    const rsa = /^rsa 4096 bits\s+\S+\s+\S+\s+([\d.]+)/m.exec(out)
    const ecdsa = /^\s*256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)/m.exec(out)
    if (rsa === null || ecdsa === null) return null
    return { ecdsa: Number(ecdsa[1]), rsa: Number(rsa[1]) }
  } catch {
    return null
  }
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '3' },
      concurrency: { type: 'string', default: '8' },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help === true) {
    process.stdout.write('node dist/bench/handshake.js [--duration SECONDS] [--rounds N] [--concurrency N]\n')
    return
  }
  const seconds = Number(values.duration)
  const rounds = Number(values.rounds)
  const concurrency = Number(values.concurrency)
  const dir = mkdtempSync(join(os.tmpdir(), 'handshake-bench-'))
  try {
    // The Flask tutorials' recipe; openssl is what they use.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:4096', '-nodes', '-days', '30', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(dir, 'rsa-key.pem'), '-out', join(dir, 'rsa-cert.pem')], { stdio: 'ignore' })
    // Generated here so that both servers start from a ready certificate.
    const ecdsa = await generateSelfSigned([])
    const cache = join(dir, 'self-signed')
    execFileSync('mkdir', ['-p', cache])
    writeFileSync(join(cache, 'key.pem'), ecdsa.key, { mode: 0o600 })
    writeFileSync(join(cache, 'cert.pem'), ecdsa.cert)

    const pin = hasTaskset()
    if (pin) execFileSync('taskset', ['-pc', '1', String(process.pid)], { stdio: 'ignore' })
    const servers = new Map<Variant, Server>()
    for (const variant of VARIANTS) servers.set(variant, await startServer(variant, dir, pin))
    const sessions = new Map<Variant, Buffer>()
    for (const [variant, server] of servers) sessions.set(variant, await ticket(server.port))

    const results = new Map<string, Sample[]>()
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()
      for (const variant of order) {
        const server = servers.get(variant) as Server
        for (const kind of ['full', 'resumed'] as const) {
          // Warm-up: JIT and the server's first allocations stay out of the figures.
          await measure(server, 0.3, concurrency, kind === 'resumed' ? sessions.get(variant) : undefined)
          const sample = await measure(server, seconds, concurrency, kind === 'resumed' ? sessions.get(variant) : undefined)
          const key = `${variant} ${kind}`
          results.set(key, [...(results.get(key) ?? []), sample])
          process.stderr.write(`round ${round + 1}/${rounds} ${key}: ${(sample.handshakes / sample.seconds).toFixed(0)}/s, ${(sample.serverMicros / sample.handshakes).toFixed(0)} µs server CPU each, ${sample.reused}/${sample.handshakes} resumed\n`)
        }
      }
    }
    for (const server of servers.values()) await server.stop()

    const summary = (key: string): { rate: number, micros: number, resumedShare: number } => {
      const samples = results.get(key) ?? []
      return {
        rate: median(samples.map((s) => s.handshakes / s.seconds)),
        micros: median(samples.map((s) => s.serverMicros / s.handshakes)),
        resumedShare: samples.reduce((sum, s) => sum + s.reused, 0) / Math.max(1, samples.reduce((sum, s) => sum + s.handshakes, 0))
      }
    }
    const lines = [
      `Node ${process.version}, OpenSSL ${process.versions.openssl}, ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores), ` +
        `${pin ? 'server pinned to core 0, client to core 1' : 'no pinning'}; ${rounds} rounds of ${seconds} s per variant, ${concurrency} handshakes in flight, TLS 1.3, loopback; medians.`,
      '',
      '| certificate | handshake | handshakes/s | server CPU per handshake | resumed |',
      '|---|---|---:|---:|---:|'
    ]
    for (const variant of VARIANTS) {
      for (const kind of ['full', 'resumed'] as const) {
        const s = summary(`${variant} ${kind}`)
        lines.push(`| ${variant === 'ecdsa-p256' ? 'ECDSA P-256 (default)' : 'RSA-4096'} | ${kind} | ${s.rate.toFixed(0)} | ${s.micros.toFixed(0)} µs | ${(s.resumedShare * 100).toFixed(0)}% |`)
      }
    }
    const full = { ec: summary('ecdsa-p256 full'), rsa: summary('rsa-4096 full') }
    const resumed = { ec: summary('ecdsa-p256 resumed'), rsa: summary('rsa-4096 resumed') }
    lines.push('',
      `Full handshakes: RSA-4096 costs the server ${(full.rsa.micros / full.ec.micros).toFixed(1)}x the CPU of ECDSA P-256; ECDSA completes ${(full.ec.rate / full.rsa.rate).toFixed(1)}x as many per second.`,
      `Resumed handshakes (no certificate signature): ${(resumed.rsa.micros / resumed.ec.micros).toFixed(2)}x CPU, ${(resumed.ec.rate / resumed.rsa.rate).toFixed(2)}x rate; ` +
        `a resumed handshake costs ${(resumed.ec.micros / full.ec.micros * 100).toFixed(0)}% of a full one with ECDSA and ${(resumed.rsa.micros / full.rsa.micros * 100).toFixed(0)}% with RSA-4096.`)
    const speed = signatureSpeed()
    if (speed !== null) {
      lines.push(`For reference, \`openssl speed\` on the same machine: ${speed.ecdsa.toFixed(0)} ECDSA P-256 signatures/s against ${speed.rsa.toFixed(0)} RSA-4096 signatures/s (${(speed.ecdsa / speed.rsa).toFixed(0)}x), the one operation a full handshake adds over a resumed one.`)
    }
    process.stdout.write(`${lines.join('\n')}\n`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (process.argv[2] === '--serve') {
  serve(process.argv[3] as Variant, process.argv[4] as string).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
    process.exit(1)
  })
} else {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
    process.exit(1)
  })
}
