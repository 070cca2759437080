/**
 * The benchmark runner.
 *
 *   node dist/bench/run.js                  full run: every variant, 10 rounds; writes docs/benchmarks.md
 *   node dist/bench/run.js --check       the budget: PASS/FAIL per target, exit 0, 1 or 2
 *   node dist/bench/run.js --quick       under a minute, for before and after a change; prints only
 *   node dist/bench/run.js --profile     V8 CPU profile: what costs what per request
 *
 * Each variant is its own server process on loopback over TLS; this process is the load generator
 * (autocannon over keep-alive connections). Servers and the load generator are pinned to separate
 * cores. The figure that matters is the server's CPU time per request, read from the server's own
 * `process.cpuUsage()` over each measured window through the IPC channel (never over HTTP, so it is
 * not a request), and its ratio to the bare Fastify window of the same round.
 *
 * Every round measures every variant once, in that round's row of a Williams design (stats.ts
 * `balancedOrder`): every variant comes right after every other equally often. With --paired (the
 * default of --check) each variant's window is shared with bare Fastify: both servers loaded at
 * once on the servers' core, so that a machine that slows down for seconds at a time (a neighbour
 * on the host) slows both halves of the ratio instead of one. A second bare
 * Fastify process, the control, is measured like any variant: its ratio to bare is the noise floor
 * of the run. Ratios are reported as the median, interquartile range and
 * range over rounds, with the machine's load (load average, and what other processes took of the
 * cores during the windows, from /proc/stat) and whether each server was saturated.
 *
 * `node dist/bench/run.js --help` lists every option.
 */
import type autocannon from 'autocannon'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { BODIES, HOST, PATHS, runFiles, serverEnvironment, type Kind, type RunFiles } from './environment.ts'
import type { ControlMessage, ServerMessage } from './servers/control.ts'
import type { ProfileReport } from './profile.ts'
import { choosePinning, clockTicks, interference, onlineCpus, othersOver, pin, snapshot, tasksetAvailable, type Interference, type Pinning, type Snapshot } from './machine.ts'
import { balancedOrder, bareStartsFirst, baseOrder, checkVerdict, DEFAULT_RULES, roundRatios, summarize, TARGETS, windowFigures, type CheckVerdict, type Summary, type TrustRules, type WindowFigure } from './stats.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const SERVERS = fileURLToPath(new URL('./servers/', import.meta.url))
/**
 * Preloaded into every server, bare Fastify included (the suite also imports it itself, first):
 * keeps one nextTick entry alive (tick-shape.ts), so that every server's nextTick builds its
 * entries the same way whatever modules it loads and whenever its first full garbage collection
 * comes. Without it, bare Fastify's own cost rises by half at a collection during the run
 * (docs/benchmarks.md, "The nextTick literal").
 */
const TICK_SHAPE = new URL('../tick-shape.js', import.meta.url).href

type ServerName = 'bare' | 'static-headers' | 'helmet' | 'suite-headers' | 'suite' | 'suite-metrics' | 'suite-baseline' | 'hand-wired' | 'express'

interface Variant {
  name: string
  server: ServerName
  kind: Kind
  description: string
}

const VARIANTS: Variant[] = [
  { name: 'bare', server: 'bare', kind: 'anonymous', description: 'bare Fastify over TLS: the reference of every ratio' },
  { name: 'control', server: 'bare', kind: 'anonymous', description: 'bare Fastify again, its own process: the noise floor' },
  { name: 'static-headers', server: 'static-headers', kind: 'anonymous', description: 'bare Fastify + one hook copying the suite\'s headers (as sent by suite-headers) from a constant' },
  { name: 'helmet', server: 'helmet', kind: 'anonymous', description: 'bare Fastify + @fastify/helmet defaults (headers only)' },
  { name: 'suite-headers', server: 'suite-headers', kind: 'anonymous', description: 'suite without the session: TLS files, redirect, proxy trust, HSTS, security headers, error handler' },
  { name: 'suite-anonymous', server: 'suite', kind: 'anonymous', description: 'suite, everything on, request without a session cookie' },
  { name: 'suite-read', server: 'suite', kind: 'read', description: 'suite, reads the session (valid cookie)' },
  { name: 'suite-write', server: 'suite', kind: 'write', description: 'suite, reads and writes the session (new Set-Cookie)' },
  { name: 'metrics-anonymous', server: 'suite-metrics', kind: 'anonymous', description: 'suite with METRICS=true (no event firing), request without a session cookie' },
  { name: 'metrics-read', server: 'suite-metrics', kind: 'read', description: 'suite with METRICS=true, reads the session' },
  { name: 'metrics-write', server: 'suite-metrics', kind: 'write', description: 'suite with METRICS=true, writes the session' },
  { name: 'baseline-anonymous', server: 'suite-baseline', kind: 'anonymous', description: 'the suite built from the --baseline checkout, request without a session cookie' },
  { name: 'baseline-read', server: 'suite-baseline', kind: 'read', description: 'the --baseline build, reads the session' },
  { name: 'baseline-write', server: 'suite-baseline', kind: 'write', description: 'the --baseline build, writes the session' },
  { name: 'hand-anonymous', server: 'hand-wired', kind: 'anonymous', description: '@fastify/helmet + @fastify/secure-session, no session cookie' },
  { name: 'hand-read', server: 'hand-wired', kind: 'read', description: '@fastify/helmet + @fastify/secure-session, reads the session' },
  { name: 'hand-write', server: 'hand-wired', kind: 'write', description: '@fastify/helmet + @fastify/secure-session, writes the session' },
  { name: 'express-anonymous', server: 'express', kind: 'anonymous', description: 'Express 5 + helmet + express-session (MemoryStore), no cookie' },
  { name: 'express-read', server: 'express', kind: 'read', description: 'Express 5 + helmet + express-session, reads the session' },
  { name: 'express-write', server: 'express', kind: 'write', description: 'Express 5 + helmet + express-session, writes the session' }
]

type Mode = 'full' | 'check' | 'quick' | 'profile'

const MODE_VARIANTS: Record<Mode, string[]> = {
  full: VARIANTS.filter((v) => v.server !== 'suite-baseline').map((v) => v.name),
  check: ['bare', 'control', 'suite-anonymous', 'suite-read', 'suite-write'],
  quick: ['bare', 'control', 'suite-anonymous', 'suite-read', 'suite-write', 'hand-anonymous', 'hand-read', 'hand-write'],
  profile: ['bare', 'suite-anonymous', 'suite-read', 'suite-write']
}

/** rounds, seconds per window, seconds of warm-up per variant. */
const MODE_DEFAULTS: Record<Mode, [number, number, number]> = {
  full: [10, 2, 3],
  check: [10, 2, 2],
  quick: [4, 1, 1],
  profile: [1, 5, 2]
}

const HELP = `node dist/bench/run.js [options]          (npm run build first: the bench runs from dist/)

Modes
  (none)             full run: every variant, ${MODE_DEFAULTS.full[0]} rounds of ${MODE_DEFAULTS.full[1]} s, about 6 minutes;
                     writes the results block of docs/benchmarks.md
  --check            the budget: bare, control and the suite's three requests, ${MODE_DEFAULTS.check[0]} rounds
                     of ${MODE_DEFAULTS.check[1]} s, --paired unless --sequential (about 2 minutes); prints each
                     target's median ratio, spread,
                     the control and PASS/FAIL. Exit 0: every target holds; 1: a target
                     missed; 2: no verdict to trust (control off 1.00 by more than the
                     tolerance, a server not saturated, the load generator starved, or
                     the run could not be made)
  --quick            under a minute: bare, control, the suite and the hand-wired plugins,
                     ${MODE_DEFAULTS.quick[0]} rounds of ${MODE_DEFAULTS.quick[1]} s; prints only
  --profile          V8 CPU profile of bare and the suite's variants under load

Options
  --paired           measure each variant in a window it shares with bare Fastify: both servers
                     loaded at once on the servers' core, so that whatever slows the machine
                     during a window slows both halves of its ratio (the default of --check)
  --sequential       measure one server at a time, bare in its own window of the round (the
                     default outside --check)
  --rounds N         rounds (each measures every variant once, in a balanced order)
  --duration S       measured seconds per variant per round
  --warmup S         seconds of unmeasured load per variant before the first round
  --connections N    keep-alive connections (default 10)
  --rate N           a fixed N requests/s over all connections instead of flat out (the
                     targets are judged flat out: --check refuses it)
  --server-cpus L    taskset CPU list for the servers (default 1)
  --load-cpus L      taskset CPU list for the load generator, this process (default 0)
  --no-pin           pin nothing
  --control-tolerance X   trust the run when the control's median is within 1 ± X (default ${DEFAULT_RULES.controlTolerance})
  --wait-quiet S     before each window, wait while other processes use more than a tenth
                     of a core, up to S seconds in all over the run (default 0: never wait)
  --start-timeout S  seconds a server may take to start (default 120)
  --baseline PATH    also measure the suite built in another checkout (PATH: its dist/index.js,
                     or the checkout), as baseline-anonymous, -read and -write: before and after
                     a change in the same run
  --only A,B         only these variants, besides bare and the control (${VARIANTS.map((v) => v.name).join(', ')})
  --out FILE         write the results block into FILE (default docs/benchmarks.md for a full run)
  --no-write         print only
`

interface Options {
  mode: Mode
  rounds: number
  duration: number
  warmup: number
  connections: number
  /** Requests per second over all connections, or null for flat out. */
  rate: number | null
  variants: Variant[]
  out: string | null
  rules: TrustRules
  pinning: { server?: string, load?: string, pin: boolean }
  /** Seconds the run may spend in all waiting, before a window, for other processes to go quiet. */
  waitQuiet: number
  startTimeout: number
  /** The other build's dist/index.js, for the baseline variants. */
  baseline: string | null
  /**
   * Each variant measured in the same window as bare Fastify, both servers loaded at once on the
   * servers' core, instead of one after the other: a slowdown of the machine then falls on both
   * halves of every ratio.
   */
  paired: boolean
}

/** A mistake in the command line: printed without a stack. */
class UsageError extends Error {}

function parseOptions (argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      rate: { type: 'string' },
      'server-cpus': { type: 'string' },
      'load-cpus': { type: 'string' },
      'no-pin': { type: 'boolean', default: false },
      'control-tolerance': { type: 'string' },
      only: { type: 'string' },
      out: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      'wait-quiet': { type: 'string' },
      'start-timeout': { type: 'string' },
      baseline: { type: 'string' },
      paired: { type: 'boolean', default: false },
      sequential: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) {
    process.stdout.write(HELP)
    process.exit(0)
  }
  const modes = (['quick', 'check', 'profile'] as const).filter((m) => values[m])
  if (modes.length > 1) throw new UsageError(`--${modes.join(' and --')} are separate modes; pick one`)
  const mode: Mode = modes[0] ?? 'full'
  const number = (name: string, value: string | undefined, fallback: number, min: number, integer = false): number => {
    if (value === undefined) return fallback
    const n = Number(value)
    if (value.trim() === '' || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      throw new UsageError(`--${name} must be ${integer ? 'a whole number' : 'a number'} >= ${min} (got ${value})`)
    }
    return n
  }
  if (mode === 'check' && values.rate !== undefined) {
    throw new UsageError('--check judges the targets flat out, with every server saturated; --rate runs below saturation, where a ratio means something else (see docs/benchmarks.md). Run --rate without --check.')
  }
  if (mode === 'check' && values.only !== undefined) throw new UsageError('--check measures bare, the control and the suite\'s three requests; --only does not apply')
  if (values.paired && values.sequential) throw new UsageError('--paired and --sequential are two ways to measure; pick one')
  if (values.paired && mode === 'profile') throw new UsageError('--profile measures one server at a time; --paired does not apply')
  const defaults = MODE_DEFAULTS[mode]
  const asked = values.only?.split(',').map((name) => name.trim()).filter(Boolean)
  const unknown = (asked ?? []).filter((name) => !VARIANTS.some((v) => v.name === name))
  if (unknown.length > 0) throw new UsageError(`--only: unknown variant ${unknown.join(', ')}; known: ${VARIANTS.map((v) => v.name).join(', ')}`)
  const names = new Set(asked ?? MODE_VARIANTS[mode])
  if (mode !== 'profile') {
    names.add('bare')
    names.add('control')
  }
  let baseline: string | null = null
  if (values.baseline !== undefined) {
    baseline = resolve(values.baseline)
    if (!baseline.endsWith('.js')) baseline = join(baseline, 'dist', 'index.js')
    if (!existsSync(baseline)) throw new UsageError(`--baseline: ${baseline} does not exist; build the other checkout first (npm run build there)`)
    for (const kind of ['anonymous', 'read', 'write'] as const) if (mode === 'full' || names.has(`suite-${kind}`)) names.add(`baseline-${kind}`)
  } else if ([...names].some((name) => name.startsWith('baseline-'))) {
    throw new UsageError('the baseline variants need --baseline PATH (another checkout, built)')
  }
  // The static-headers floor copies the header list the suite-headers variant sends.
  if (names.has('static-headers')) names.add('suite-headers')
  const out = values['no-write'] ? null : values.out ?? (mode === 'full' ? join(ROOT, 'docs', 'benchmarks.md') : null)
  const tolerance = number('control-tolerance', values['control-tolerance'], DEFAULT_RULES.controlTolerance, 0)
  if (tolerance >= 1) throw new UsageError(`--control-tolerance is a fraction of 1.00, such as 0.05 (got ${tolerance})`)
  return {
    mode,
    rounds: number('rounds', values.rounds, defaults[0], mode === 'full' || mode === 'check' ? 3 : 1, true),
    duration: number('duration', values.duration, defaults[1], 0.5),
    warmup: number('warmup', values.warmup, defaults[2], 0),
    connections: number('connections', values.connections, 10, 1, true),
    rate: values.rate === undefined ? null : number('rate', values.rate, 0, 1),
    variants: VARIANTS.filter((v) => names.has(v.name)),
    out,
    rules: { ...DEFAULT_RULES, controlTolerance: tolerance },
    pinning: { server: values['server-cpus'], load: values['load-cpus'], pin: !values['no-pin'] },
    waitQuiet: number('wait-quiet', values['wait-quiet'], 0, 0),
    startTimeout: number('start-timeout', values['start-timeout'], 120, 0.001),
    baseline,
    paired: mode === 'check' ? !values.sequential : values.paired
  }
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

interface Context extends RunFiles {
  pinning: Pinning
  /** Seconds a server may take to start. */
  startTimeout: number
}

let nextId = 1

function startServer (variant: Variant, context: Context): Promise<Server> {
  const script = join(SERVERS, `${variant.server}.js`)
  const child = spawn(process.execPath, ['--import', TICK_SHAPE, script], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: serverEnvironment(variant.server, context)
  })
  const waiting = new Map<number, { type: string, resolve: (message: ServerMessage) => void, reject: (error: Error) => void }>()
  child.on('message', (message: ServerMessage) => {
    if (!('id' in message)) return
    const entry = waiting.get(message.id)
    if (entry === undefined) return
    waiting.delete(message.id)
    if (message.type === 'refused') entry.reject(new Error(`${variant.name}: ${message.message}`))
    else if (entry.type === message.type) entry.resolve(message)
  })
  const call = <T extends ServerMessage>(message: ControlMessage & { id: number }, type: T['type'], timeout = 15_000): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(message.id)
        reject(new Error(`${variant.name}: no ${type} answer from the server within ${timeout} ms`))
      }, timeout)
      waiting.set(message.id, {
        type,
        resolve: (answer) => { clearTimeout(timer); resolve(answer as T) },
        reject: (error) => { clearTimeout(timer); reject(error) }
      })
      child.send(message)
    })
  return new Promise((resolve, reject) => {
    // A safety net, not a pace: on a machine busy with other work, loading and compiling every
    // server at once takes long. A server that never says it is ready is killed, so that it cannot
    // keep the runner alive through its IPC channel.
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${variant.name}: the server did not start within ${context.startTimeout} s (--start-timeout)`))
    }, context.startTimeout * 1000)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${variant.name}: the server exited with code ${code} before it was ready`)) })
    child.on('message', (message: ServerMessage) => {
      if (message.type === 'failed') {
        clearTimeout(timer)
        reject(new Error(`${variant.name}: the server failed to start: ${message.message}`))
      } else if (message.type === 'ready') {
        clearTimeout(timer)
        // Pinned once started rather than started pinned: loading and compiling the modules of
        // several servers at once then uses every core, which keeps start-up quick.
        if (context.pinning.server !== null && child.pid !== undefined) pin(child.pid, context.pinning.server)
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

const BARE: ReadonlySet<ServerName> = new Set(['bare'])
/** Headers of every response that are not security headers: left out of the static-headers copy. */
const TRANSPORT_HEADERS = new Set(['content-type', 'content-length', 'date', 'connection', 'keep-alive', 'transfer-encoding', 'set-cookie'])

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
  if (sample.body !== BODIES[variant.kind]) problems.push(`body ${sample.body}, expected ${BODIES[variant.kind]}`)
  const hsts = sample.headers['strict-transport-security']
  if (BARE.has(variant.server)) {
    if (hsts !== undefined) problems.push('a Strict-Transport-Security header on bare Fastify')
  } else {
    if (hsts === undefined) problems.push('no Strict-Transport-Security')
    if (sample.headers['x-content-type-options'] !== 'nosniff') problems.push('no X-Content-Type-Options: nosniff')
  }
  if (variant.kind === 'write' && sample.headers['set-cookie'] === undefined) problems.push('no Set-Cookie on a session write')
  if (problems.length > 0) throw new Error(`${variant.name}: the sample request is not what the variant measures: ${problems.join('; ')}`)
}

/** The security headers of a sample response, in the order they came, for the static-headers copy. */
function securityHeadersOf (sample: SampleResponse): Array<[string, string]> {
  const list: Array<[string, string]> = []
  for (const [name, value] of Object.entries(sample.headers)) {
    if (TRANSPORT_HEADERS.has(name) || value === undefined) continue
    list.push([name, Array.isArray(value) ? value.join(', ') : value])
  }
  return list
}

// ---------------------------------------------------------------------------------------------
// Measurement

interface Sample {
  rps: number
  p99: number
  cpuPerRequest: number
  /** The server's CPU time over wall time (1: one core, all the time). */
  busy: number
  /**
   * The servers' core: the CPU time of every server measured in the window over wall time. The
   * same as `busy` when one server is measured at a time; with --paired, the two servers' sum.
   */
  coreBusy: number
  /** The load generator's (this process's) CPU time over wall time. */
  loadBusy: number
  bytesPerResponse: number
  requests: number
  /**
   * The server's context switches (all its threads) per response: how often it gave up the core,
   * each time leaving caches to whatever ran next. Saturated, about once in 10 to 50 requests,
   * paired or alone; more when the load generator sets the pace.
   */
  switchesPerRequest: number
  others: Interference
}

interface Machine {
  cores: number
  online: number[]
  pinning: Pinning
  hz: number
  loadBefore: number[]
}

async function cpuOf (server: Server): Promise<{ cpu: number, switches: number }> {
  const usage = await server.call<Extract<ServerMessage, { type: 'cpu' }>>({ type: 'cpu', id: nextId++ }, 'cpu')
  return { cpu: usage.user + usage.system, switches: usage.switches }
}

// Loaded when first needed, like the package itself: a mistyped option is then answered at once.
let autocannonModule: Promise<{ default: typeof autocannon }> | undefined

async function load (server: Server, seconds: number, connections: number, rate: number | null): Promise<autocannon.Result> {
  autocannonModule ??= import('autocannon')
  const { default: run } = await autocannonModule
  return run({
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

async function measure (server: Server, servers: readonly Server[], machine: Machine, options: Options, during?: { before: () => Promise<void>, after: () => Promise<void> }): Promise<Sample> {
  await during?.before()
  const [sample] = await measureTogether([server], servers, machine, options)
  await during?.after()
  return sample as Sample
}

/**
 * One window: every server of `targets` loaded at once, each by its own autocannon instance over
 * its own connections, their CPU read before and after the same window. With two servers on one
 * core they take turns on it, and whatever slows the machine during the window slows both.
 */
async function measureTogether (targets: readonly Server[], servers: readonly Server[], machine: Machine, options: Options): Promise<Sample[]> {
  const pids = servers.map((s) => s.child.pid).filter((pid): pid is number => pid !== undefined)
  const cpuBefore = await Promise.all(targets.map(cpuOf))
  const machineBefore: Snapshot = snapshot(pids)
  const runnerBefore = process.cpuUsage()
  const started = process.hrtime.bigint()
  const results = await Promise.all(targets.map((server) => load(server, options.duration, options.connections, options.rate)))
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9
  const runner = process.cpuUsage(runnerBefore)
  const machineAfter = snapshot(pids)
  const cpuAfter = await Promise.all(targets.map(cpuOf))
  const others = interference(machineBefore, machineAfter, machine.pinning, elapsed, machine.hz)
  const cpus = targets.map((_, i) => (cpuAfter[i]?.cpu as number) - (cpuBefore[i]?.cpu as number))
  const switches = targets.map((_, i) => (cpuAfter[i]?.switches as number) - (cpuBefore[i]?.switches as number))
  const shared = cpus.reduce((a, b) => a + b, 0) / 1e6 / elapsed
  return targets.map((server, i) => {
    const result = results[i] as autocannon.Result
    const requests = result.requests.total
    if (result.errors > 0 || result.non2xx > 0 || requests === 0) {
      throw new Error(`${server.variant.name}: ${requests} responses, ${result.non2xx} not 2xx, ${result.errors} errors (${result.timeouts} timeouts); the numbers would mean nothing`)
    }
    const cpu = cpus[i] as number
    return {
      rps: requests / elapsed,
      p99: result.latency.p99,
      cpuPerRequest: cpu / requests,
      busy: cpu / 1e6 / elapsed,
      coreBusy: shared,
      loadBusy: (runner.user + runner.system) / 1e6 / elapsed,
      bytesPerResponse: result.throughput.total / requests,
      requests,
      switchesPerRequest: (switches[i] as number) / requests,
      others
    }
  })
}

/** The share of a core other processes must stay under for the machine to count as quiet. */
const QUIET = 0.1

/**
 * Waits, within what is left of the run's budget, while other processes use more than a tenth of a
 * core in all (measured over half a second, the benchmark's own processes idle meanwhile). A
 * compiler or a test file on a shared machine runs for seconds to minutes: a window measured
 * after it has finished is worth the wait.
 */
async function waitForQuiet (servers: readonly Server[], machine: Machine, quiet: { budget: number, waited: number }): Promise<void> {
  if (quiet.waited >= quiet.budget) return
  const pids = servers.map((s) => s.child.pid).filter((pid): pid is number => pid !== undefined)
  let announced = false
  while (quiet.waited < quiet.budget) {
    const started = Date.now()
    const others = await othersOver(pids, 500, machine.hz)
    if (others <= QUIET) break
    quiet.waited += Date.now() - started
    if (!announced) log(`waiting for other processes to go quiet (${fmt(others, 2)} of a core in use; ${fmt((quiet.budget - quiet.waited) / 1000, 0)} s of waiting left)`)
    announced = true
  }
  if (announced && quiet.waited >= quiet.budget) log('--wait-quiet: no waiting left; measuring on a busy machine (the report says how busy)')
}

/** One measured window. */
interface Measurement {
  name: string
  round: number
  sample: Sample
  /** With --paired: bare Fastify's CPU µs per request in the same window. */
  bare?: number
}

/**
 * The servers as the balanced design numbers them: bare first and the control half-way down, or,
 * with --paired, where bare shares every window, the others alone (the control still half-way).
 */
function designOrder (servers: Server[], paired: boolean): Server[] {
  const bare = servers.find((s) => s.variant.name === 'bare')
  const control = servers.find((s) => s.variant.name === 'control') ?? null
  if (bare === undefined) return servers
  const others = servers.filter((s) => s !== bare && s !== control)
  if (!paired) return baseOrder(bare, control, others)
  return others.length === 0 ? (control === null ? [] : [control]) : baseOrder(others[0] as Server, control, others.slice(1))
}

/** The windows of one round, in order: each server of `order` once, in the round's row of the balanced design. */
function schedule (order: Server[], round: number): Server[] {
  return balancedOrder(order.length, round).map((i) => order[i] as Server)
}

/** The measured windows: with --paired, bare's entry and its partner's are one window; bare's are left out. */
function windowsOf (options: Options, all: Measurement[]): Measurement[] {
  return options.paired ? all.filter((m) => m.name !== 'bare') : all
}

// ---------------------------------------------------------------------------------------------
// Reporting

function fmt (value: number, digits: number): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function pct (share: number): string {
  return `${fmt(share * 100, 0)}%`
}

/** `1.23× (IQR 1.20–1.26, 1.15–1.31)`. */
function showRatio (s: Summary): string {
  return `${fmt(s.median, 2)}× (IQR ${fmt(s.q1, 2)}–${fmt(s.q3, 2)}, range ${fmt(s.min, 2)}–${fmt(s.max, 2)})`
}

/** The windows as the statistics see them (stats.ts `windowFigures`). */
function figures (all: Measurement[]): WindowFigure[] {
  return windowFigures(all.map((m) => ({ variant: m.name, round: m.round, cpuPerRequest: m.sample.cpuPerRequest, bare: m.bare })))
}

function medianOf (all: Measurement[], name: string, pick: (s: Sample) => number): number {
  return summarize(all.filter((m) => m.name === name).map((m) => pick(m.sample))).median
}

function verdictOf (options: Options, all: Measurement[], variants: Variant[]): CheckVerdict {
  const windows = figures(all)
  const ratios: Record<string, number[]> = { control: roundRatios(windows, 'control', 'bare') }
  for (const { variant } of TARGETS) ratios[variant] = roundRatios(windows, variant, 'bare')
  const busy: Record<string, number> = {}
  const rps: Record<string, number> = {}
  for (const { name } of variants) {
    busy[name] = medianOf(all, name, (s) => s.coreBusy)
    rps[name] = medianOf(all, name, (s) => s.rps)
  }
  const loadInterference = summarize(windowsOf(options, all).map((m) => m.sample.others.loadCores)).median
  return checkVerdict({ ratios, busy, rps, loadInterference, rate: options.rate }, options.rules)
}

function packageVersion (name: string): string {
  const file = name === 'fastify-secure-https' ? join(ROOT, 'package.json') : join(ROOT, 'node_modules', name, 'package.json')
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version : '?'
}

function git (...args: string[]): string {
  try {
    return execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trimEnd()
  } catch {
    return ''
  }
}

function codeMeasured (): string {
  const commit = git('rev-parse', '--short', 'HEAD')
  const dirty = git('status', '--porcelain', '--', 'index.ts', 'plugins', 'schemas', 'tls', 'sessions', 'server-options.ts')
  return `${commit === '' ? 'unknown' : commit}${dirty === '' ? '' : ' + uncommitted changes'}`
}

function environmentLines (options: Options, machine: Machine, servers: Server[]): string[] {
  const cpus = os.cpus()
  const dirty = git('status', '--porcelain', '--', 'index.ts', 'plugins', 'schemas', 'tls', 'sessions', 'server-options.ts')
  const subject = git('log', '-1', '--format=%s')
  const packages = ['fastify-secure-https', 'fastify', '@fastify/helmet', '@fastify/secure-session', '@fastify/cookie', 'sodium-native', 'helmet', 'express', 'express-session', 'autocannon']
  const tlsOf = [...new Set(servers.map((s) => s.variant.server))].map((name) => {
    const found = servers.find((s) => s.variant.server === name) as Server
    return `${name} ${found.sample.protocol} ${found.sample.cipher}`
  })
  return [
    `- Machine: ${machine.cores} cores (nproc), ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}; Node ${process.version}.`,
    `- Packages: ${packages.map((name) => `${name} ${packageVersion(name)}`).join(', ')}.`,
    `- Code measured: commit ${codeMeasured().replace(' + uncommitted changes', '')}${subject === '' ? '' : ` (${subject})`}${dirty === '' ? ', sources clean' : `, with uncommitted changes in: ${dirty.split('\n').map((line) => line.slice(3)).join(', ')}`}.`,
    `- Method: ${options.rounds} rounds; in each, ${options.paired ? `every variant measured once for ${options.duration} s in a window it shares with bare Fastify (--paired: both servers loaded at once on the servers' core, each by its own autocannon, their CPU read over the same window; which load starts first alternates from round to round), the windows in the round's row of a Williams design` : `every variant measured once for ${options.duration} s, in the round's row of a Williams design`} (each variant at every position and right after every other variant equally often over the square); ${options.warmup} s of warm-up per variant before the first round. autocannon, ${options.connections} keep-alive connections, pipelining 1, ${options.rate === null ? 'flat out (as many requests as the server answers)' : `a fixed ${options.rate} requests/s`}, HTTP/1.1 over TLS (${tlsOf.join('; ')}); ${machine.pinning.note}. Servers run with NODE_ENV=production; the suite reads its configuration with loadConfig(process.env).`,
    options.paired
      ? '- Server CPU µs/request: user + system CPU of the server process (all its threads) over the window, divided by the responses. "× bare": the ratio of a variant\'s CPU per request to bare Fastify\'s in the window they shared (bare\'s own figures: over all its windows); median, interquartile range and range over the rounds. "Core busy": the two servers\' CPU over wall time; below 90% the core was not saturated. "req/s": each server\'s own, with the core shared. "Load gen": the runner\'s (autocannon\'s) CPU over wall time. "Switches/req": the server\'s context switches (all threads, voluntary and not, from process.resourceUsage()) per response: each hands the core, and its caches, to whatever runs next.'
      : '- Server CPU µs/request: user + system CPU of the server process (all its threads) over the window, divided by the responses. "× bare": the ratio of a variant\'s window to the bare window of the same round; median, interquartile range and range over the rounds. "Core busy": server CPU over wall time; below 90% the server was not saturated. "Load gen": the runner\'s (autocannon\'s) CPU over wall time. "Switches/req": the server\'s context switches (all threads, voluntary and not, from process.resourceUsage()) per response: each hands the core, and its caches, to whatever runs next.'
  ]
}

function machineLines (options: Options, machine: Machine, all: Measurement[], loadAfter: number[], waited: number): string[] {
  const windows = windowsOf(options, all)
  const others = (pick: (i: Interference) => number): Summary => summarize(windows.map((m) => pick(m.sample.others)))
  const server = others((i) => i.serverCores)
  const loadCores = others((i) => i.loadCores)
  const total = others((i) => i.total)
  const steal = others((i) => i.steal)
  const irq = others((i) => i.irq)
  const idle = options.rate === null
    ? windows.filter((m) => m.sample.coreBusy < options.rules.minBusy).length
    : all.filter((m) => m.sample.rps < (options.rate as number) * options.rules.minRateHeld).length
  const starved = windows.filter((m) => m.sample.others.loadCores > options.rules.maxLoadInterference).length
  const pinned = machine.pinning.server !== null
  return [
    `- Load average (1, 5, 15 min): ${machine.loadBefore.map((n) => n.toFixed(2)).join(' ')} before the run, ${loadAfter.map((n) => n.toFixed(2)).join(' ')} after.`,
    pinned
      ? `- Other processes during the ${windows.length} measured windows (/proc/stat minus the servers and the runner): on the servers' core ${pct(server.median)} median (max ${pct(server.max)}), on the load generator's core ${pct(loadCores.median)} median (max ${pct(loadCores.max)}); ${fmt(total.median, 2)} of a core in all, median (max ${fmt(total.max, 2)}). Steal ${fmt(steal.median, 2)} of a core; interrupts and softirq (mostly the benchmark's own loopback traffic) ${fmt(irq.median, 2)}.`
      : `- Other processes during the ${windows.length} measured windows (/proc/stat minus the servers and the runner; not pinned, so not split by core): ${fmt(total.median, 2)} of a core median (max ${fmt(total.max, 2)}). Steal ${fmt(steal.median, 2)} of a core; interrupts and softirq ${fmt(irq.median, 2)}.`,
    ...(options.waitQuiet > 0 ? [`- Waited ${fmt(waited / 1000, 0)} s in all before windows for other processes to go quiet (--wait-quiet ${options.waitQuiet}).`] : []),
    `- Windows ${options.rate === null ? `with the ${options.paired ? 'servers\' core' : 'server'} below ${pct(options.rules.minBusy)} busy` : `below ${pct(options.rules.minRateHeld)} of the rate asked`}: ${idle} of ${options.rate === null ? windows.length : all.length}; with other processes over ${pct(options.rules.maxLoadInterference)} of the load generator's core${pinned ? '' : 's'}: ${starved} of ${windows.length}.`
  ]
}

function resultsTable (options: Options, variants: Variant[], all: Measurement[], servers: Server[]): string[] {
  const windows = figures(all)
  const lines = [
    '| variant | server CPU µs/req | × bare: median | IQR | range | target | core busy | load gen | req/s | p99 ms | bytes/resp | Set-Cookie | switches/req |',
    '|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|'
  ]
  for (const variant of variants) {
    const list = all.filter((m) => m.name === variant.name).map((m) => m.sample)
    if (list.length === 0) continue
    const ratios = variant.name === 'bare' ? [] : roundRatios(windows, variant.name, 'bare')
    const ratio = ratios.length === 0 ? null : summarize(ratios)
    const target = TARGETS.find((t) => t.variant === variant.name)
    const median = (pick: (s: Sample) => number): number => summarize(list.map(pick)).median
    const busy = summarize(list.map((s) => s.coreBusy))
    const server = servers.find((s) => s.variant.name === variant.name)
    const cells = variant.name === 'bare'
      ? ['1', '', '']
      : ratio === null ? ['n/a', '', ''] : [`${fmt(ratio.median, 2)}×`, `${fmt(ratio.q1, 2)}–${fmt(ratio.q3, 2)}`, `${fmt(ratio.min, 2)}–${fmt(ratio.max, 2)}`]
    const targetCell = variant.name === 'control'
      ? `noise floor (1 ± ${options.rules.controlTolerance})`
      : target === undefined
        ? ''
        : ratio === null || options.rate !== null ? `≤ ${target.limit}${options.rate === null ? '' : ' (judged flat out)'}` : `≤ ${target.limit}: ${ratio.median <= target.limit ? 'PASS' : '**FAIL**'}`
    lines.push(`| ${variant.name} | ${fmt(median((s) => s.cpuPerRequest), 1)} | ${cells.join(' | ')} | ${targetCell} | ` +
      `${pct(busy.median)} (min ${pct(busy.min)}) | ${pct(median((s) => s.loadBusy))} | ${fmt(median((s) => s.rps), 0)} | ${fmt(median((s) => s.p99), 0)} | ` +
      `${fmt(median((s) => s.bytesPerResponse), 0)} | ${server?.sample.headers['set-cookie'] === undefined ? 'no' : 'yes'} | ${fmt(median((s) => s.switchesPerRequest), 2)} |`)
  }
  return lines
}

function comparisonLines (all: Measurement[]): string[] {
  const windows = figures(all)
  const lines: string[] = []
  const line = (name: string, base: string, text: (ratio: string) => string): void => {
    const ratios = roundRatios(windows, name, base)
    if (ratios.length > 0) lines.push(`- ${text(showRatio(summarize(ratios)))}`)
  }
  line('static-headers', 'bare', (r) => `headers: sending the suite's header set from a constant costs ${r} bare Fastify (the floor for suite-headers).`)
  line('suite-headers', 'static-headers', (r) => `headers: the suite without its session costs ${r} that floor.`)
  line('suite-headers', 'helmet', (r) => `headers: the suite without its session costs ${r} @fastify/helmet alone.`)
  for (const kind of ['anonymous', 'read', 'write'] as const) {
    line(`suite-${kind}`, `hand-${kind}`, (r) => `${kind}: the suite costs ${r} @fastify/helmet + @fastify/secure-session wired by hand.`)
  }
  for (const kind of ['anonymous', 'read', 'write'] as const) {
    line(`express-${kind}`, `suite-${kind}`, (r) => `${kind}: Express + helmet + express-session costs ${r} the suite.`)
  }
  for (const kind of ['anonymous', 'read', 'write'] as const) {
    line(`suite-${kind}`, `baseline-${kind}`, (r) => `${kind}: the suite as built here costs ${r} the --baseline build.`)
  }
  for (const kind of ['anonymous', 'read', 'write'] as const) {
    line(`metrics-${kind}`, `suite-${kind}`, (r) => `${kind}: the suite with METRICS=true (no event firing) costs ${r} the suite without.`)
  }
  return lines
}

function verdictLines (options: Options, verdict: CheckVerdict, all: Measurement[], variants: Variant[]): string[] {
  const lines: string[] = []
  const control = verdict.control
  if (control !== null) {
    const ok = Math.abs(control.median - 1) <= options.rules.controlTolerance
    lines.push(`control (bare again)     ${showRatio(control)}   ${ok ? 'within' : 'OUTSIDE'} 1 ± ${options.rules.controlTolerance}`)
  }
  for (const target of verdict.targets) {
    const name = `${target.request} ≤ ${target.limit}×`.padEnd(24)
    if (target.ratio === null) {
      lines.push(`${name} not measured`)
      continue
    }
    lines.push(options.rate !== null
      ? `${name} ${showRatio(target.ratio)}`
      : `${name} ${showRatio(target.ratio)}   ${target.pass ? 'PASS' : 'FAIL'}${target.marginal ? ' (the target lies inside the IQR: marginal)' : ''}`)
  }
  if (options.rate !== null) lines.push('targets                  judged flat out only: at a fixed rate the ratios are for comparison')
  const measured = variants.filter((v) => all.some((m) => m.name === v.name))
  lines.push(options.rate === null
    ? `core busy (median)       ${measured.map((v) => `${v.name} ${pct(medianOf(all, v.name, (s) => s.coreBusy))}`).join(', ')}; saturated from ${pct(options.rules.minBusy)}`
    : `req/s (median)           ${measured.map((v) => `${v.name} ${fmt(medianOf(all, v.name, (s) => s.rps), 0)}`).join(', ')}; asked ${options.rate}`)
  lines.push(`switches/req (median)    ${measured.map((v) => `${v.name} ${fmt(medianOf(all, v.name, (s) => s.switchesPerRequest), 2)}`).join(', ')}`)
  lines.push(`load generator           other processes took ${pct(summarize(all.map((m) => m.sample.others.loadCores)).median)} of its core (median over windows; starved above ${pct(options.rules.maxLoadInterference)})`)
  if (verdict.trustworthy && options.rate !== null) {
    lines.push('verdict                  trustworthy run at a fixed rate (no PASS/FAIL)')
  } else if (verdict.trustworthy) {
    const missed = verdict.targets.filter((t) => !t.pass).length
    lines.push(`verdict                  trustworthy run; ${missed === 0 ? 'every target holds' : `${missed} of ${verdict.targets.length} targets missed`} (exit ${verdict.exitCode})`)
  } else {
    lines.push(`verdict                  NOT TRUSTWORTHY (exit 2): ${verdict.problems.join('; ')}`)
  }
  return lines
}

/** A row for the "before and after, per change" table of docs/benchmarks.md. */
function changeRow (verdict: CheckVerdict): string {
  const cell = (s: Summary | null): string => s === null ? 'n/a' : `${fmt(s.median, 2)}× (${fmt(s.q1, 2)}–${fmt(s.q3, 2)})`
  return `| ${new Date().toISOString().slice(0, 10)} | ${codeMeasured()} | (the change) | ${verdict.targets.map((t) => cell(t.ratio)).join(' | ')} | ${cell(verdict.control)} | ${verdict.trustworthy ? 'yes' : 'no'} |`
}

const START = '<!-- bench:results:start -->'
const END = '<!-- bench:results:end -->'
const PROFILE_START = '<!-- bench:profile:start -->'
const PROFILE_END = '<!-- bench:profile:end -->'

/** Replaces the block between the markers, or adds it at the end. */
function writeBlock (file: string, start: string, end: string, lines: string[]): void {
  const block = `${start}\n${lines.join('\n')}\n${end}`
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n'
  const a = text.indexOf(start)
  const b = text.indexOf(end)
  text = a !== -1 && b > a ? text.slice(0, a) + block + text.slice(b + end.length) : `${text.trimEnd()}\n\n${block}\n`
  mkdirSync(join(file, '..'), { recursive: true })
  writeFileSync(file, text)
}

// ---------------------------------------------------------------------------------------------
// Main

async function main (options: Options): Promise<number> {
  const began = Date.now()
  const online = onlineCpus()
  const pinning = choosePinning(options.pinning, online, tasksetAvailable())
  const machine: Machine = { cores: os.availableParallelism(), online, pinning, hz: clockTicks(), loadBefore: os.loadavg() }
  if (pinning.load !== null) pin(process.pid, pinning.load)
  const dir = mkdtempSync(join(os.tmpdir(), 'fastify-secure-https-bench-'))
  const servers: Server[] = []
  const cleanup = async (): Promise<void> => {
    await Promise.all(servers.map(stopServer))
    rmSync(dir, { recursive: true, force: true })
  }
  process.once('SIGINT', () => { cleanup().finally(() => process.exit(130)) })
  try {
    const files = await runFiles(dir, options.baseline)
    const context: Context = { ...files, pinning, startTimeout: options.startTimeout }

    log(`${options.mode} run: ${options.variants.map((v) => v.name).join(', ')}; ${pinning.note}`)
    const results = await Promise.allSettled(options.variants.map((variant) => startServer(variant, context)))
    for (const result of results) if (result.status === 'fulfilled') servers.push(result.value)
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failure !== undefined) throw failure.reason
    const staticHeaders = servers.find((s) => s.variant.name === 'static-headers')
    for (const server of servers) {
      if (server === staticHeaders) continue
      await prime(server, files.cert)
    }
    if (staticHeaders !== undefined) {
      const suite = servers.find((s) => s.variant.name === 'suite-headers') as Server
      await staticHeaders.call({ type: 'headers', id: nextId++, headers: securityHeadersOf(suite.sample) }, 'done')
      await prime(staticHeaders, files.cert)
      const copied = JSON.stringify(securityHeadersOf(staticHeaders.sample))
      if (copied !== JSON.stringify(securityHeadersOf(suite.sample))) throw new Error(`static-headers: sends ${copied}, not the suite's header set`)
    }
    if (options.warmup > 0) {
      log(`servers up in ${((Date.now() - began) / 1000).toFixed(1)} s; warm-up: ${options.warmup} s per variant`)
      for (const server of servers) await load(server, options.warmup, options.connections, options.rate)
    }

    if (options.mode === 'profile') {
      await profileRun(options, servers, machine)
      return 0
    }

    const all: Measurement[] = []
    const measuring = Date.now()
    const quiet = { budget: options.waitQuiet * 1000, waited: 0 }
    const bare = servers.find((s) => s.variant.name === 'bare')
    const order = designOrder(servers, options.paired)
    for (let round = 0; round < options.rounds; round++) {
      if (options.paired && bare !== undefined) {
        // Every other variant once, in the round's row of the balanced design, each in a window
        // it shares with bare Fastify.
        for (const server of schedule(order, round)) {
          await waitForQuiet(servers, machine, quiet)
          const bareFirst = bareStartsFirst(order.indexOf(server), round)
          const samples = await measureTogether(bareFirst ? [bare, server] : [server, bare], servers, machine, options)
          const [ownBare, sample] = (bareFirst ? samples : [...samples].reverse()) as [Sample, Sample]
          all.push({ name: 'bare', round, sample: ownBare, bare: ownBare.cpuPerRequest })
          all.push({ name: server.variant.name, round, sample, bare: ownBare.cpuPerRequest })
          log(`round ${round + 1}/${options.rounds} ${server.variant.name.padEnd(18)} ${fmt(sample.cpuPerRequest, 1).padStart(6)} µs/req against bare ${fmt(ownBare.cpuPerRequest, 1).padStart(6)} (bare ${bareFirst ? 'first' : 'second'}): ` +
            `${fmt(sample.cpuPerRequest / ownBare.cpuPerRequest, 2)}×  req/s ${fmt(sample.rps, 0)} and ${fmt(ownBare.rps, 0)}  core busy ${pct(sample.coreBusy).padStart(4)}  load gen ${pct(sample.loadBusy).padStart(4)}  ` +
            `others: server core ${pct(sample.others.serverCores)}, load core ${pct(sample.others.loadCores)}`)
        }
        continue
      }
      for (const server of schedule(order, round)) {
        await waitForQuiet(servers, machine, quiet)
        const sample = await measure(server, servers, machine, options)
        all.push({ name: server.variant.name, round, sample })
        log(`round ${round + 1}/${options.rounds} ${server.variant.name.padEnd(18)} ${fmt(sample.rps, 0).padStart(7)} req/s  ${fmt(sample.cpuPerRequest, 1).padStart(6)} µs/req  ` +
          `busy ${pct(sample.busy).padStart(4)}  load gen ${pct(sample.loadBusy).padStart(4)}  others: server core ${pct(sample.others.serverCores)}, load core ${pct(sample.others.loadCores)}`)
      }
    }
    const windowCount = windowsOf(options, all).length
    log(`${windowCount} windows in ${((Date.now() - measuring) / 1000).toFixed(0)} s (${(windowCount * options.duration).toFixed(0)} s of load)`)

    const variants = servers.map((s) => s.variant)
    const verdict = verdictOf(options, all, variants)
    const title = { full: 'Run', check: 'Check', quick: 'Quick run', profile: 'Profile' }[options.mode]
    const lines = [
      `### ${title} of ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC (${Math.round((Date.now() - began) / 1000)} s)`,
      '',
      ...environmentLines(options, machine, servers),
      '',
      ...machineLines(options, machine, all, os.loadavg(), quiet.waited),
      '',
      ...resultsTable(options, variants, all, servers),
      '',
      ...comparisonLines(all),
      '',
      '```text',
      ...verdictLines(options, verdict, all, variants),
      '```'
    ]
    process.stdout.write(`\n${lines.join('\n')}\n\nRow for the "before and after, per change" table of docs/benchmarks.md:\n${changeRow(verdict)}\n`)
    if (options.out !== null) {
      writeBlock(options.out, START, END, lines)
      log(`written to ${options.out}`)
    }
    return options.mode === 'check' ? verdict.exitCode : 0
  } finally {
    await cleanup()
  }
}

async function profileRun (options: Options, servers: Server[], machine: Machine): Promise<void> {
  const { analyseProfile, profileMarkdown } = await import('./profile.ts')
  const folder = join(os.tmpdir(), `fastify-secure-https-profiles-${Date.now()}`)
  mkdirSync(folder, { recursive: true })
  const reports: ProfileReport[] = []
  for (const server of servers) {
    const file = join(folder, `${server.variant.name}.cpuprofile`)
    const sample = await measure(server, servers, machine, options, {
      before: async () => { await server.call({ type: 'profile-start', id: nextId++, interval: 100 }, 'done') },
      after: async () => { await server.call({ type: 'profile-stop', id: nextId++, file }, 'done', 60_000) }
    })
    const report = analyseProfile(JSON.parse(readFileSync(file, 'utf8')), server.variant.name, sample.requests, sample.cpuPerRequest, ROOT)
    reports.push(report)
    log(`profiled ${server.variant.name}: ${fmt(sample.cpuPerRequest, 1)} µs/req (process), ${fmt(report.sampledPerRequest, 1)} µs/req sampled on the main thread, busy ${pct(sample.busy)}; ${file}`)
  }
  const lines = [
    `### Profile of ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    ...environmentLines(options, machine, servers).filter((line) => !line.startsWith('- Method')),
    `- Method: one ${options.duration} s window per variant after ${options.warmup} s of warm-up, ${options.connections} keep-alive connections, flat out; ${machine.pinning.note}. V8 CPU profiler (the one behind \`node --cpu-prof\`), 100 µs sampling, started and stopped through the inspector around the measured window only. Profiles: ${folder} (open in Chrome DevTools, Performance tab).`,
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

let parsed: Options | undefined
try {
  parsed = parseOptions(process.argv.slice(2))
  process.exitCode = await main(parsed)
} catch (error: unknown) {
  const usage = error instanceof UsageError || (error instanceof Error && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))
  process.stderr.write(`[bench] ${usage ? '' : 'failed: '}${error instanceof Error ? error.message : String(error)}\n`)
  // In --check, 1 means a target was missed: a run that could not be made gives no verdict.
  process.exitCode = parsed?.mode === 'check' || process.argv.includes('--check') ? 2 : 1
}
