/**
 * The benchmark runner: `npm run bench` (full run, writes docs/benchmarks.md), `npm run bench --
 * --quick` (under a minute, the suite against the hand-wired plugins, nothing written), `npm run
 * bench -- --profile` (a V8 CPU profile of the suite's variants and what costs what per request).
 *
 * Each variant is its own server process on loopback over TLS, pinned to one core; this process
 * (the load generator, autocannon over keep-alive connections) is pinned to the other. Variants are
 * measured in turn, round after round (A B C ... then ... C B A), so that a slow minute on a shared
 * machine lands on all of them. The figure that matters is the server's CPU time per request, read
 * from the server process's own `process.cpuUsage()` over the measured window through the IPC
 * channel (never through HTTP, so it is not counted as a request), and its ratio to bare Fastify
 * measured in the same round.
 *
 * Options: --quick, --profile, --rounds N, --duration SECONDS, --warmup SECONDS, --connections N,
 * --only NAME[,NAME], --out FILE (write the results block there), --no-write, --help.
 */
import autocannon from 'autocannon'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { generateSelfSigned } from 'fastify-secure-https'
import type { ControlMessage, ServerMessage } from './servers/control.js'
import { analyseProfile, profileMarkdown, type ProfileReport } from './profile.js'

/** Host name the requests carry and the certificate covers; not localhost, so that HSTS is sent. */
const HOST = 'bench.example'
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const SERVERS = fileURLToPath(new URL('./servers/', import.meta.url))

type ServerName = 'bare' | 'static-headers' | 'helmet' | 'suite-headers' | 'suite' | 'hand-wired' | 'express'
type Kind = 'anonymous' | 'read' | 'write'

interface Variant {
  name: string
  server: ServerName
  kind: Kind
  description: string
}

const VARIANTS: Variant[] = [
  { name: 'bare', server: 'bare', kind: 'anonymous', description: 'bare Fastify over TLS' },
  { name: 'static-headers', server: 'static-headers', kind: 'anonymous', description: 'bare Fastify + one hook copying the suite\'s 12 headers from a constant' },
  { name: 'helmet', server: 'helmet', kind: 'anonymous', description: 'bare Fastify + @fastify/helmet defaults (headers only)' },
  { name: 'suite-headers', server: 'suite-headers', kind: 'anonymous', description: 'suite without the session: TLS, redirect, proxy trust, HSTS, security headers' },
  { name: 'suite-anonymous', server: 'suite', kind: 'anonymous', description: 'suite, everything on, request without a session cookie' },
  { name: 'suite-read', server: 'suite', kind: 'read', description: 'suite, reads the session (valid cookie)' },
  { name: 'suite-write', server: 'suite', kind: 'write', description: 'suite, reads and writes the session (new Set-Cookie)' },
  { name: 'hand-anonymous', server: 'hand-wired', kind: 'anonymous', description: '@fastify/helmet + @fastify/secure-session, no session cookie' },
  { name: 'hand-read', server: 'hand-wired', kind: 'read', description: '@fastify/helmet + @fastify/secure-session, reads the session' },
  { name: 'hand-write', server: 'hand-wired', kind: 'write', description: '@fastify/helmet + @fastify/secure-session, writes the session' },
  { name: 'express-anonymous', server: 'express', kind: 'anonymous', description: 'Express 5 + helmet + express-session (MemoryStore), no cookie' },
  { name: 'express-read', server: 'express', kind: 'read', description: 'Express 5 + helmet + express-session, reads the session' },
  { name: 'express-write', server: 'express', kind: 'write', description: 'Express 5 + helmet + express-session, writes the session' }
]

/** The budget of issue 9: server CPU per request as a multiple of bare Fastify's. */
const TARGETS: Record<string, number> = { 'suite-anonymous': 1.25, 'suite-read': 1.6, 'suite-write': 2.0 }

const QUICK_VARIANTS = ['suite-anonymous', 'hand-anonymous', 'suite-read', 'hand-read', 'suite-write', 'hand-write']
const PROFILE_VARIANTS = ['bare', 'suite-anonymous', 'suite-read', 'suite-write']

const HELP = `npm run bench [-- options]

  (no option)        full run: every variant, 6 rounds of 2 s, each window paired with a bare
                     Fastify window; results written to docs/benchmarks.md (about 6 minutes)
  --quick            under a minute: the suite against the hand-wired plugins side by side,
                     3 rounds of 1.2 s; prints ratios, writes nothing (add bare Fastify with
                     --only bare,suite-anonymous,hand-anonymous,...)
  --profile          V8 CPU profile of bare and the suite's variants under load; prints what costs
                     what per request (with --out or in a full-run docs file: written there too)
  --rounds N         rounds (at least 3 for a full run)
  --duration S       measured seconds per variant per round
  --warmup S         seconds of unmeasured load per variant before the first round
  --connections N    keep-alive connections (default 10)
  --rate N           a fixed rate of N requests/s over all connections instead of as many as the
                     server answers: every variant then runs at the same load
  --only A,B         only these variants (${VARIANTS.map((v) => v.name).join(', ')})
  --out FILE         write the results block into FILE (default docs/benchmarks.md for a full run)
  --no-write         print only
`

interface Options {
  mode: 'full' | 'quick' | 'profile'
  rounds: number
  duration: number
  warmup: number
  connections: number
  /** Requests per second over all connections, or null for as many as the server answers. */
  rate: number | null
  variants: Variant[]
  out: string | null
}

function parseOptions (): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      rate: { type: 'string' },
      only: { type: 'string' },
      out: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) {
    process.stdout.write(HELP)
    process.exit(0)
  }
  if (values.quick && values.profile) throw new Error('--quick and --profile are separate modes; pick one')
  const mode = values.quick ? 'quick' : values.profile ? 'profile' : 'full'
  const number = (name: string, value: string | undefined, fallback: number, min: number): number => {
    if (value === undefined) return fallback
    const n = Number(value)
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min} (got ${value})`)
    return n
  }
  const defaults = { full: [6, 2, 3], quick: [3, 1.2, 1], profile: [1, 5, 2] }[mode]
  const names = values.only?.split(',').map((name) => name.trim()).filter(Boolean) ??
    (mode === 'quick' ? QUICK_VARIANTS : mode === 'profile' ? PROFILE_VARIANTS : VARIANTS.map((v) => v.name))
  const unknown = names.filter((name) => !VARIANTS.some((v) => v.name === name))
  if (unknown.length > 0) throw new Error(`--only: unknown variant ${unknown.join(', ')}; known: ${VARIANTS.map((v) => v.name).join(', ')}`)
  const variants = VARIANTS.filter((v) => names.includes(v.name))
  if (mode === 'full' && !variants.some((v) => v.name === 'bare')) variants.unshift(VARIANTS[0] as Variant)
  const out = values['no-write']
    ? null
    : values.out ?? (mode === 'full' ? join(ROOT, 'docs', 'benchmarks.md') : null)
  return {
    mode,
    rounds: number('rounds', values.rounds, defaults[0] as number, mode === 'full' ? 3 : 1),
    duration: number('duration', values.duration, defaults[1] as number, 0.5),
    warmup: number('warmup', values.warmup, defaults[2] as number, 0),
    connections: number('connections', values.connections, 10, 1),
    rate: values.rate === undefined ? null : number('rate', values.rate, 0, 1),
    variants,
    out
  }
}

// ---------------------------------------------------------------------------------------------
// Cores

interface Pinning {
  server: string | null
  load: string | null
  note: string
}

/** Pins this process (the load generator, all its threads) to core 0 and servers to core 1. */
function pinCores (cores: number): Pinning {
  const available = (() => {
    try {
      execFileSync('taskset', ['-V'], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  })()
  if (!available) return { server: null, load: null, note: 'not pinned: taskset is not installed (util-linux)' }
  if (cores < 2) return { server: null, load: null, note: `not pinned: ${cores} core available` }
  execFileSync('taskset', ['-a', '-c', '-p', '0', String(process.pid)], { stdio: 'ignore' })
  return { server: '1', load: '0', note: 'servers pinned to core 1, load generator (autocannon, this process) to core 0 with taskset' }
}

// ---------------------------------------------------------------------------------------------
// Server processes

interface Server {
  variant: Variant
  child: ChildProcess
  port: number
  redirectPort: number | null
  cookie: string | null
  sample: SampleResponse
  call<T extends ServerMessage> (message: ControlMessage & { id: number }, type: T['type'], timeout?: number): Promise<T>
}

interface Context {
  dir: string
  cert: string
  certFile: string
  keyFile: string
  sessionKey: string
  pinning: Pinning
}

let nextId = 1

function startServer (variant: Variant, context: Context): Promise<Server> {
  const script = join(SERVERS, `${variant.server}.js`)
  const child = spawn(process.execPath, [script], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: {
      ...process.env,
      NODE_ENV: 'development',
      BENCH_KEY_FILE: context.keyFile,
      BENCH_CERT_FILE: context.certFile,
      BENCH_TLS_DIR: context.dir,
      BENCH_SESSION_KEY: context.sessionKey,
      BENCH_HOST: HOST
    }
  })
  const waiting = new Map<number, { type: string, resolve: (message: ServerMessage) => void }>()
  child.on('message', (message: ServerMessage) => {
    if ('id' in message) {
      const entry = waiting.get(message.id)
      if (entry !== undefined && entry.type === message.type) {
        waiting.delete(message.id)
        entry.resolve(message)
      }
    }
  })
  const call = <T extends ServerMessage>(message: ControlMessage & { id: number }, type: T['type'], timeout = 15_000): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(message.id)
        reject(new Error(`${variant.name}: no ${type} answer from the server within ${timeout} ms`))
      }, timeout)
      waiting.set(message.id, { type, resolve: (answer) => { clearTimeout(timer); resolve(answer as T) } })
      child.send(message)
    })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${variant.name}: the server did not start within 30 s`)), 30_000)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${variant.name}: the server exited with code ${code} before it was ready`)) })
    child.on('message', (message: ServerMessage) => {
      if (message.type === 'failed') {
        clearTimeout(timer)
        reject(new Error(`${variant.name}: the server failed to start: ${message.message}`))
      } else if (message.type === 'ready') {
        clearTimeout(timer)
        // Pinned once started rather than started pinned: loading and compiling the modules of
        // several servers at once then uses every core, which keeps quick mode quick.
        if (context.pinning.server !== null && child.pid !== undefined) {
          execFileSync('taskset', ['-a', '-c', '-p', context.pinning.server, String(child.pid)], { stdio: 'ignore' })
        }
        resolve({
          variant,
          child,
          port: message.port,
          redirectPort: message.redirectPort,
          cookie: null,
          sample: { status: 0, headers: {}, body: '', protocol: '', cipher: '' },
          call
        })
      }
    })
  })
}

async function stopServer (server: Server): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => { server.child.kill('SIGKILL'); resolve() }, 5000)
    server.child.once('exit', () => { clearTimeout(timer); resolve() })
    try {
      server.child.send({ type: 'exit' } satisfies ControlMessage)
    } catch {
      server.child.kill('SIGTERM')
    }
  })
}

interface SampleResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  protocol: string
  cipher: string
}

function fetchOnce (port: number, path: string, cert: string, cookie: string | null): Promise<SampleResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1',
      port,
      path,
      servername: HOST,
      ca: cert,
      agent: false,
      headers: { host: HOST, ...(cookie === null ? {} : { cookie }) }
    }, (res) => {
      const socket = res.socket as import('node:tls').TLSSocket
      const protocol = socket.getProtocol() ?? ''
      const cipher = socket.getCipher()?.name ?? ''
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, protocol, cipher }))
    })
    req.on('error', reject)
    req.end()
  })
}

const PATHS: Record<Kind, string> = { anonymous: '/anonymous', read: '/read', write: '/write' }

/**
 * Logs in when the variant needs a session, then checks that one request of the variant does what
 * its name says, so that a broken cookie or a missing plugin cannot pass for a fast result.
 */
async function prime (server: Server, cert: string): Promise<void> {
  const { variant } = server
  if (variant.kind !== 'anonymous') {
    const login = await fetchOnce(server.port, '/login', cert, null)
    const setCookie = login.headers['set-cookie']
    const first = Array.isArray(setCookie) ? setCookie[0] : setCookie
    if (login.status !== 200 || first === undefined) throw new Error(`${variant.name}: /login answered ${login.status} without a session cookie`)
    server.cookie = first.split(';')[0] as string
  }
  const sample = await fetchOnce(server.port, PATHS[variant.kind], cert, server.cookie)
  server.sample = sample
  const problems: string[] = []
  if (sample.status !== 200) problems.push(`status ${sample.status}`)
  const expected = variant.kind === 'anonymous' ? { hello: 'world' } : variant.kind === 'read' ? { user: 'alice' } : { user: 'alice', n: 1 }
  if (sample.body !== JSON.stringify(expected)) problems.push(`body ${sample.body}, expected ${JSON.stringify(expected)}`)
  if (variant.server !== 'bare') {
    if (sample.headers['strict-transport-security'] === undefined) problems.push('no Strict-Transport-Security')
    if (sample.headers['content-security-policy'] === undefined) problems.push('no Content-Security-Policy')
  }
  if (variant.kind === 'write' && sample.headers['set-cookie'] === undefined) problems.push('no Set-Cookie on a session write')
  if (problems.length > 0) throw new Error(`${variant.name}: the sample request is not what the variant measures: ${problems.join('; ')}`)
}

// ---------------------------------------------------------------------------------------------
// Measurement

interface Sample {
  rps: number
  p99: number
  cpuPerRequest: number
  busy: number
  bytesPerResponse: number
  requests: number
}

async function cpuOf (server: Server): Promise<{ user: number, system: number }> {
  return server.call<Extract<ServerMessage, { type: 'cpu' }>>({ type: 'cpu', id: nextId++ }, 'cpu')
}

function load (server: Server, seconds: number, connections: number, rate: number | null): Promise<autocannon.Result> {
  return autocannon({
    url: `https://127.0.0.1:${server.port}${PATHS[server.variant.kind]}`,
    connections,
    ...(rate === null ? {} : { overallRate: rate }),
    pipelining: 1,
    duration: seconds,
    // autocannon notices the end of the duration at its next sample: 1 s by default, which would
    // stretch a 1.2 s window to 2 s.
    sampleInt: 100,
    servername: HOST,
    headers: { host: HOST, ...(server.cookie === null ? {} : { cookie: server.cookie }) }
  })
}

async function measure (server: Server, seconds: number, connections: number, rate: number | null, during?: { before: () => Promise<void>, after: () => Promise<void> }): Promise<Sample> {
  await during?.before()
  const before = await cpuOf(server)
  const started = process.hrtime.bigint()
  const result = await load(server, seconds, connections, rate)
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9
  const after = await cpuOf(server)
  await during?.after()
  const requests = result.requests.total
  if (result.errors > 0 || result.non2xx > 0 || requests === 0) {
    throw new Error(`${server.variant.name}: ${requests} responses, ${result.non2xx} not 2xx, ${result.errors} errors (${result.timeouts} timeouts); the numbers would mean nothing`)
  }
  const cpu = (after.user - before.user) + (after.system - before.system)
  return {
    rps: requests / result.duration,
    p99: result.latency.p99,
    cpuPerRequest: cpu / requests,
    busy: cpu / 1e6 / elapsed,
    bytesPerResponse: result.throughput.total / requests,
    requests
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics and reporting

interface Spread { median: number, min: number, max: number }

function spread (values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number }
}

function fmt (value: number, digits: number): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function show (s: Spread, digits: number, suffix = ''): string {
  return `${fmt(s.median, digits)}${suffix} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`
}

/** One measured window. Windows of the same `group` ran back to back. */
interface Measurement {
  name: string
  round: number
  group: number
  sample: Sample
}

/**
 * The bare Fastify CPU per request a window is divided by: the bare window of its own pair (the
 * one measured just before or just after it), else the median of the round's bare windows.
 * Interference on a shared machine comes in bursts of seconds (a compiler, a test file); two
 * windows a second apart mostly share the same conditions, two windows a minute apart often do
 * not.
 */
function bareFor (all: Measurement[], m: Measurement): number | null {
  const partner = all.find((x) => x.name === 'bare' && x.group === m.group && x !== m)
  if (partner !== undefined) return partner.sample.cpuPerRequest
  const bare = all.filter((x) => x.name === 'bare' && x.round === m.round).map((x) => x.sample.cpuPerRequest)
  return bare.length === 0 ? null : spread(bare).median
}

/** Ratios of `name`'s CPU per request to bare Fastify's, one per round. */
function ratiosToBare (all: Measurement[], name: string): Spread | null {
  const values = all.filter((m) => m.name === name).map((m) => {
    const bare = bareFor(all, m)
    return bare === null ? null : m.sample.cpuPerRequest / bare
  }).filter((x): x is number => x !== null)
  return values.length === 0 ? null : spread(values)
}

/**
 * Ratios of `name`'s CPU per request to `base`'s, one per round: directly when the two ran side by
 * side (quick mode), else each divided first by the bare window of its own pair (full run).
 */
function ratiosBetween (all: Measurement[], name: string, base: string): Spread | null {
  const values: number[] = []
  for (const m of all.filter((x) => x.name === name)) {
    const b = all.find((x) => x.name === base && x.group === m.group) ?? all.find((x) => x.name === base && x.round === m.round)
    if (b === undefined) continue
    const bareM = b.group === m.group ? null : bareFor(all, m)
    const bareB = b.group === m.group ? null : bareFor(all, b)
    values.push(bareM !== null && bareB !== null
      ? (m.sample.cpuPerRequest / bareM) / (b.sample.cpuPerRequest / bareB)
      : m.sample.cpuPerRequest / b.sample.cpuPerRequest)
  }
  return values.length === 0 ? null : spread(values)
}

/**
 * The windows of one round, in groups measured back to back. Full run: each variant paired with a
 * bare Fastify window (bare A, B bare, bare C, ...: the pair's order alternates, and the variants'
 * order is reversed every other round). Quick run: each kind's suite and hand-wired windows side by
 * side (A B, then B A in the next round); bare Fastify, when asked for, alone at the start.
 */
function schedule (mode: Options['mode'], servers: Server[], round: number): Server[][] {
  const bare = servers.find((s) => s.variant.name === 'bare')
  const others = servers.filter((s) => s !== bare)
  const flip = round % 2 === 1
  if (mode === 'quick') {
    const groups: Server[][] = bare === undefined ? [] : [[bare]]
    const paired: Server[] = []
    for (const kind of ['anonymous', 'read', 'write'] as const) {
      const pair = others.filter((s) => s.variant.kind === kind)
      paired.push(...pair)
      if (pair.length > 0) groups.push(flip ? pair.reverse() : pair)
    }
    for (const rest of others.filter((s) => !paired.includes(s))) groups.push([rest])
    return groups
  }
  const ordered = flip ? [...others].reverse() : others
  if (bare === undefined) return ordered.map((s) => [s])
  if (ordered.length === 0) return [[bare]]
  return ordered.map((s, i) => (i % 2 === 0) !== flip ? [bare, s] : [s, bare])
}

function packageVersion (name: string): string {
  for (const base of [ROOT, join(ROOT, 'node_modules')]) {
    const file = name === 'fastify-secure-https' ? join(ROOT, 'package.json') : join(base, name, 'package.json')
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
  }
  return '?'
}

function git (...args: string[]): string {
  try {
    return execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trimEnd()
  } catch {
    return ''
  }
}

function environmentLines (options: Options, machine: Machine, loadAfter: number[], servers: Server[]): string[] {
  const { pinning, loadBefore } = machine
  const cpus = os.cpus()
  const commit = git('rev-parse', '--short', 'HEAD')
  const sessionCommit = git('log', '-1', '--format=%h %s', '--', 'plugins/secure-session.ts')
  const dirty = git('status', '--porcelain', '--', 'index.ts', 'plugins', 'schemas', 'tls', 'server-options.ts')
  const packages = ['fastify-secure-https', 'fastify', '@fastify/helmet', '@fastify/secure-session', '@fastify/cookie', 'sodium-native', 'helmet', 'express', 'express-session', 'autocannon']
  const tlsOf = (server: ServerName): string => {
    const found = servers.find((s) => s.variant.server === server)
    return found === undefined ? '' : `${server} ${found.sample.protocol} ${found.sample.cipher}`
  }
  return [
    `- Machine: ${machine.cores} cores (nproc), ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}; load average ${loadBefore.map((n) => n.toFixed(2)).join(' ')} before, ${loadAfter.map((n) => n.toFixed(2)).join(' ')} after.`,
    `- Node ${process.version}; ${packages.map((name) => `${name} ${packageVersion(name)}`).join(', ')}.`,
    `- Code measured: commit ${commit === '' ? 'unknown' : commit}${dirty === '' ? ' (sources clean)' : `, with uncommitted changes in: ${dirty.split('\n').map((line) => line.slice(3)).join(', ')}`}; plugins/secure-session.ts as of ${sessionCommit === '' ? 'unknown' : sessionCommit}.`,
    `- Method: ${options.rounds} rounds, ${options.duration} s per variant per round after ${options.warmup} s of warm-up each; ${options.mode === 'quick' ? 'suite and hand-wired windows side by side, their order swapped every other round' : 'each variant\'s window paired with a bare Fastify window measured just before or after it (bare A, B bare, bare C, ...), the order reversed every other round'}; autocannon ${options.connections} keep-alive connections, pipelining 1, ${options.rate === null ? 'as many requests as the server answers' : `a fixed ${options.rate} requests/s`}, HTTP/1.1 over TLS (${[...new Set(servers.map((s) => s.variant.server))].map(tlsOf).join('; ')}); ${pinning.note}.`,
    '- Server CPU µs/request = (user + system CPU of the server process over the window, all its threads) / responses. "× bare" is the median (min–max) over rounds of the ratio to the bare Fastify window of the same pair. "Core busy" is that CPU time over wall time: below 100% the load generator, not the server, was the limit.'
  ]
}

function resultsTable (variants: Variant[], all: Measurement[], servers: Server[]): string[] {
  const lines = [
    '| variant | req/s | p99 ms | server CPU µs/req | × bare (target) | core busy | bytes/resp | Set-Cookie |',
    '|---|---|---|---|---|---|---|---|'
  ]
  for (const variant of variants) {
    const list = all.filter((m) => m.name === variant.name).map((m) => m.sample)
    if (list.length === 0) continue
    const ratio = variant.name === 'bare' ? null : ratiosToBare(all, variant.name)
    const target = TARGETS[variant.name]
    let ratioText = variant.name === 'bare' ? '1' : ratio === null ? 'n/a' : show(ratio, 2, '×')
    if (target !== undefined && ratio !== null) ratioText += ` (≤ ${target}: ${ratio.median <= target ? 'met' : '**not met**'})`
    const server = servers.find((s) => s.variant.name === variant.name)
    const setCookie = server?.sample.headers['set-cookie'] === undefined ? 'no' : 'yes'
    lines.push(`| ${variant.name} | ${show(spread(list.map((s) => s.rps)), 0)} | ${show(spread(list.map((s) => s.p99)), 0)} | ` +
      `${show(spread(list.map((s) => s.cpuPerRequest)), 1)} | ${ratioText} | ${fmt(spread(list.map((s) => s.busy * 100)).median, 0)}% | ` +
      `${fmt(spread(list.map((s) => s.bytesPerResponse)).median, 0)} | ${setCookie} |`)
  }
  return lines
}

function comparisonLines (all: Measurement[]): string[] {
  const lines: string[] = []
  const headers = ratiosBetween(all, 'suite-headers', 'helmet')
  if (headers !== null) lines.push(`- headers: the suite without its session costs ${show(headers, 2, '×')} the server CPU per request of @fastify/helmet alone.`)
  for (const kind of ['anonymous', 'read', 'write'] as const) {
    const ratio = ratiosBetween(all, `suite-${kind}`, `hand-${kind}`)
    if (ratio !== null) lines.push(`- ${kind}: the suite costs ${show(ratio, 2, '×')} the server CPU per request of @fastify/helmet + @fastify/secure-session wired by hand.`)
  }
  for (const kind of ['anonymous', 'read', 'write'] as const) {
    const ratio = ratiosBetween(all, `express-${kind}`, `suite-${kind}`)
    if (ratio !== null) lines.push(`- ${kind}: Express + helmet + express-session costs ${show(ratio, 2, '×')} the suite's server CPU per request.`)
  }
  return lines
}

const START = '<!-- bench:results:start -->'
const END = '<!-- bench:results:end -->'
const PROFILE_START = '<!-- bench:profile:start -->'
const PROFILE_END = '<!-- bench:profile:end -->'

/** Replaces the block between the markers, or adds it before `## TLS handshakes` (or at the end). */
function writeBlock (file: string, start: string, end: string, lines: string[]): void {
  const block = `${start}\n${lines.join('\n')}\n${end}`
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n'
  const a = text.indexOf(start)
  const b = text.indexOf(end)
  if (a !== -1 && b > a) {
    text = text.slice(0, a) + block + text.slice(b + end.length)
  } else {
    const tls = text.indexOf('\n## TLS handshakes')
    text = tls === -1 ? `${text.trimEnd()}\n\n${block}\n` : `${text.slice(0, tls).trimEnd()}\n\n${block}\n${text.slice(tls)}`
  }
  mkdirSync(join(file, '..'), { recursive: true })
  writeFileSync(file, text)
}

// ---------------------------------------------------------------------------------------------
// Main

interface Machine {
  cores: number
  pinning: Pinning
  loadBefore: number[]
}

async function main (): Promise<void> {
  const options = parseOptions()
  const began = Date.now()
  const cores = os.availableParallelism()
  const machine: Machine = { cores, pinning: pinCores(cores), loadBefore: os.loadavg() }
  const pinning = machine.pinning
  const dir = mkdtempSync(join(os.tmpdir(), 'fastify-secure-https-bench-'))
  const servers: Server[] = []
  const cleanup = async (): Promise<void> => {
    await Promise.all(servers.map(stopServer))
    rmSync(dir, { recursive: true, force: true })
  }
  process.once('SIGINT', () => { cleanup().finally(() => process.exit(130)) })
  try {
    // One certificate for every variant, made by the suite's generator and stored where the suite's
    // self-signed source looks for its cache, so that all variants pay the same handshake.
    const pair = await generateSelfSigned([HOST])
    mkdirSync(join(dir, 'self-signed'), { mode: 0o700 })
    const keyFile = join(dir, 'self-signed', 'key.pem')
    const certFile = join(dir, 'self-signed', 'cert.pem')
    writeFileSync(keyFile, pair.key, { mode: 0o600 })
    writeFileSync(certFile, pair.cert)
    const context: Context = { dir, cert: pair.cert, certFile, keyFile, sessionKey: randomBytes(32).toString('base64'), pinning }

    log(`${options.mode} run: ${options.variants.map((v) => v.name).join(', ')}; ${pinning.note}`)
    const starting = options.variants.map((variant) => startServer(variant, context))
    const results = await Promise.allSettled(starting)
    for (const result of results) if (result.status === 'fulfilled') servers.push(result.value)
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failure !== undefined) throw failure.reason
    for (const server of servers) await prime(server, pair.cert)
    if (options.warmup > 0) {
      log(`servers up in ${((Date.now() - began) / 1000).toFixed(1)} s; warm-up: ${options.warmup} s per variant`)
      for (const server of servers) await load(server, options.warmup, options.connections, options.rate)
    }

    if (options.mode === 'profile') {
      await profileRun(options, servers, machine)
      return
    }

    const all: Measurement[] = []
    let group = 0
    const measuring = Date.now()
    for (let round = 0; round < options.rounds; round++) {
      for (const windows of schedule(options.mode, servers, round)) {
        for (const server of windows) {
          const sample = await measure(server, options.duration, options.connections, options.rate)
          all.push({ name: server.variant.name, round, group, sample })
          log(`round ${round + 1}/${options.rounds} ${server.variant.name.padEnd(18)} ${fmt(sample.rps, 0).padStart(7)} req/s  p99 ${fmt(sample.p99, 0).padStart(3)} ms  ${fmt(sample.cpuPerRequest, 1).padStart(6)} µs/req  busy ${fmt(sample.busy * 100, 0)}%`)
        }
        group++
      }
    }

    log(`${all.length} windows in ${((Date.now() - measuring) / 1000).toFixed(0)} s (${(all.length * options.duration).toFixed(0)} s of load)`)
    const variants = servers.map((s) => s.variant)
    const lines = [
      `### ${options.mode === 'quick' ? 'Quick run' : 'Run'} of ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC (${Math.round((Date.now() - began) / 1000)} s)`,
      '',
      ...environmentLines(options, machine, os.loadavg(), servers),
      '',
      ...resultsTable(variants, all, servers),
      '',
      ...comparisonLines(all)
    ]
    process.stdout.write(`\n${lines.join('\n')}\n`)
    if (options.out !== null) {
      writeBlock(options.out, START, END, lines)
      log(`written to ${options.out}`)
    }
  } finally {
    await cleanup()
  }
}

async function profileRun (options: Options, servers: Server[], machine: Machine): Promise<void> {
  const folder = join(os.tmpdir(), `fastify-secure-https-profiles-${Date.now()}`)
  mkdirSync(folder, { recursive: true })
  const reports: ProfileReport[] = []
  for (const server of servers) {
    const file = join(folder, `${server.variant.name}.cpuprofile`)
    const sample = await measure(server, options.duration, options.connections, options.rate, {
      before: async () => { await server.call({ type: 'profile-start', id: nextId++, interval: 100 }, 'done') },
      after: async () => { await server.call({ type: 'profile-stop', id: nextId++, file }, 'done', 60_000) }
    })
    const report = analyseProfile(JSON.parse(readFileSync(file, 'utf8')), server.variant.name, sample.requests, sample.cpuPerRequest, ROOT)
    reports.push(report)
    log(`profiled ${server.variant.name}: ${fmt(sample.cpuPerRequest, 1)} µs/req (process), ${fmt(report.sampledPerRequest, 1)} µs/req sampled on the main thread; ${file}`)
  }
  const lines = [
    `### Profile of ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    ...environmentLines(options, machine, os.loadavg(), servers),
    `- V8 CPU profiler (the one behind \`node --cpu-prof\`), 100 µs sampling, started and stopped through the inspector around the measured window only. Profiles: ${folder} (open in Chrome DevTools, Performance tab).`,
    '',
    ...profileMarkdown(reports)
  ]
  process.stdout.write(`\n${lines.join('\n')}\n`)
  if (options.out !== null) {
    writeBlock(options.out, PROFILE_START, PROFILE_END, lines)
    log(`written to ${options.out}`)
  }
}

function log (message: string): void {
  process.stderr.write(`[bench] ${message}\n`)
}

main().catch((error: unknown) => {
  process.stderr.write(`[bench] failed: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
})
