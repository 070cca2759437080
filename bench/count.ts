/**
 * Instructions per request, counted rather than timed: each benchmark server (the very servers
 * run.ts measures, in the same production environment, over TLS) runs under valgrind's callgrind,
 * which counts the instructions every thread of the process executes. One keep-alive connection
 * sends the warm-up requests uncounted, then `callgrind_control` turns counting on for the measured
 * requests and dumps the counts. The same build, inputs and requests give the same count within a
 * fraction of a per cent, whatever else the machine is doing: a change of 1% shows, where CPU time
 * on a shared host moves by 10 to 15% from one run to the next (docs/benchmarks.md).
 *
 * What a count leaves out: the kernel (system calls, the loopback network), and what an
 * instruction costs (cache misses, branch mispredictions), which CPU time includes. The counts
 * rank changes; the budget itself is judged in CPU time (run.ts --check).
 *
 * node dist/bench/count.js [--requests N] [--warmup N] [--only A,B] [--baseline PATH] [--jobs N] [--keep DIR]
 * @internal
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { Agent, request as httpsRequest } from 'node:https'
import os from 'node:os'
import { dirname, join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { BODIES, HOST, PATHS, runFiles, serverEnvironment, type Kind } from './environment.ts'
import type { ControlMessage, ServerMessage } from './servers/control.ts'
import { compilingWarnings, countTable, dumpFiles, dumpTotal, type CountResult } from './count-report.ts'

const SERVERS = fileURLToPath(new URL('./servers/', import.meta.url))
/** Preloaded into every server, as run.ts does (tick-shape.ts). */
const TICK_SHAPE = new URL('../tick-shape.js', import.meta.url).href

/** A server counted, and the request it is counted on. @internal */
export interface CountVariant {
  name: string
  server: 'bare' | 'suite' | 'suite-baseline'
  kind: Kind
}

/** The variants, in the order they are reported. @internal */
export const COUNT_VARIANTS: readonly CountVariant[] = [
  { name: 'bare', server: 'bare', kind: 'anonymous' },
  { name: 'suite-anonymous', server: 'suite', kind: 'anonymous' },
  { name: 'suite-read', server: 'suite', kind: 'read' },
  { name: 'suite-write', server: 'suite', kind: 'write' },
  { name: 'baseline-anonymous', server: 'suite-baseline', kind: 'anonymous' },
  { name: 'baseline-read', server: 'suite-baseline', kind: 'read' },
  { name: 'baseline-write', server: 'suite-baseline', kind: 'write' }
]

interface Options {
  requests: number
  warmup: number
  variants: CountVariant[]
  baseline: string | null
  jobs: number
  keep: string | null
}

const HELP = `node dist/bench/count.js [options]

Counts the instructions each benchmark server executes per request (valgrind --tool=callgrind,
every thread), over TLS on one keep-alive connection: bare Fastify and the suite's three requests.

  --requests N     requests counted per variant (default 3000)
  --warmup N       requests sent first, uncounted, so that the JIT has settled (default 40000)
  --only A,B       a subset of: ${COUNT_VARIANTS.map((v) => v.name).join(', ')} (bare is always counted)
  --baseline PATH  also count the suite built in another checkout (PATH, or its dist/index.js)
  --jobs N         servers under valgrind at once (default: the number of cores)
  --keep DIR       keep the callgrind files there, with each server's perf map (node --perf-basic-prof)
                   to name the JIT's code: callgrind_annotate reads them
  --help`

function usage (message: string): never {
  process.stderr.write(`${message}\n\n${HELP}\n`)
  process.exit(2)
}

function parse (argv: string[]): Options | null {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        requests: { type: 'string' },
        warmup: { type: 'string' },
        only: { type: 'string' },
        baseline: { type: 'string' },
        jobs: { type: 'string' },
        keep: { type: 'string' },
        help: { type: 'boolean' }
      },
      strict: true
    })
  } catch (error) {
    usage((error as Error).message)
  }
  const { values } = parsed
  if (values.help === true) return null
  const integer = (name: string, text: string | undefined, fallback: number, min: number): number => {
    if (text === undefined) return fallback
    const n = Number(text)
    if (!Number.isInteger(n) || n < min) usage(`--${name} takes a whole number of at least ${min} (got ${text})`)
    return n
  }
  let baseline: string | null = null
  if (values.baseline !== undefined) {
    baseline = resolvePath(values.baseline)
    if (!baseline.endsWith('.js')) baseline = join(baseline, 'dist', 'index.js')
    if (!existsSync(baseline)) usage(`--baseline: ${baseline} does not exist; build the other checkout first (npm run build there)`)
  }
  let names = new Set(COUNT_VARIANTS.filter((v) => v.server !== 'suite-baseline' || baseline !== null).map((v) => v.name))
  if (values.only !== undefined) {
    const asked = values.only.split(',').map((s) => s.trim()).filter((s) => s !== '')
    const unknown = asked.filter((name) => !COUNT_VARIANTS.some((v) => v.name === name))
    if (unknown.length > 0) usage(`--only: unknown variant ${unknown.join(', ')}`)
    if (baseline === null && asked.some((name) => name.startsWith('baseline-'))) usage('the baseline variants need --baseline PATH')
    names = new Set(['bare', ...asked])
  }
  return {
    requests: integer('requests', values.requests, 3000, 1),
    warmup: integer('warmup', values.warmup, 40_000, 0),
    variants: COUNT_VARIANTS.filter((v) => names.has(v.name)),
    baseline,
    jobs: integer('jobs', values.jobs, os.availableParallelism(), 1),
    keep: values.keep === undefined ? null : resolvePath(values.keep)
  }
}

function log (message: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${message}\n`)
}

function requireTool (name: string): void {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore' })
  } catch {
    usage(`${name} is not installed: the counts need valgrind (Debian: apt-get install valgrind)`)
  }
}

interface Running {
  child: ChildProcess
  port: number
  exited: Promise<number | null>
}

function startCounted (variant: CountVariant, env: NodeJS.ProcessEnv, out: string, naming: boolean): Promise<Running> {
  const script = join(SERVERS, `${variant.server}.js`)
  const child = spawn('valgrind', [
    '--tool=callgrind', '--smc-check=all-non-file', '--instr-atstart=no', '--separate-threads=yes',
    `--callgrind-out-file=${out}`,
    // In the run's own folder: --perf-basic-prof also writes V8's log (isolate-*.log) there.
    process.execPath, ...(naming ? ['--perf-basic-prof'] : []), '--import', TICK_SHAPE, script
  ], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env, cwd: dirname(out) })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000) })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${variant.name}: not ready within 600 s under valgrind`))
    }, 600_000)
    exited.then((code) => { clearTimeout(timer); reject(new Error(`${variant.name}: exited with ${code} before it was ready:\n${stderr}`)) }, reject)
    child.on('message', (message: ServerMessage) => {
      if (message.type === 'failed') {
        clearTimeout(timer)
        reject(new Error(`${variant.name}: failed to start: ${message.message}`))
      } else if (message.type === 'ready') {
        clearTimeout(timer)
        resolve({ child, port: message.port, exited })
      }
    })
  })
}

/** Resolves once `file` holds a complete callgrind dump (its `totals:` line). */
async function dumpWritten (file: string, timeout: number): Promise<void> {
  const started = Date.now()
  while (!(existsSync(file) && /^totals: \d+/m.test(readFileSync(file, 'utf8')))) {
    if (Date.now() - started > timeout) throw new Error(`callgrind did not write ${file} within ${timeout / 1000} s of the dump request`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

interface Answer { status: number, body: string, setCookie: string[] }

function get (agent: Agent, port: number, path: string, cert: string, cookie: string | null): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1',
      port,
      path,
      agent,
      ca: cert,
      servername: HOST,
      headers: { host: HOST, ...(cookie === null ? {} : { cookie }) }
    }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, setCookie: res.headers['set-cookie'] ?? [] }))
    })
    req.on('error', reject)
    req.end()
  })
}

async function countOne (variant: CountVariant, options: Options, files: Parameters<typeof serverEnvironment>[1], cert: string, dir: string): Promise<CountResult> {
  const base = `${variant.name}.out`
  const out = join(dir, base)
  log(`${variant.name}: starting under valgrind`)
  const env = serverEnvironment(variant.server, files)
  const server = await startCounted(variant, env, out, options.keep !== null)
  const pid = server.child.pid as number
  // vgdb, which callgrind_control talks through, names its pipes after $HOST as the server sees it
  // (the suite's listen address, 127.0.0.1): callgrind_control must see the same.
  const controlEnv: NodeJS.ProcessEnv = { ...process.env }
  if (env.HOST === undefined) delete controlEnv.HOST
  else controlEnv.HOST = env.HOST
  const control = (...args: string[]): void => { execFileSync('callgrind_control', [...args, String(pid)], { stdio: 'ignore', env: controlEnv }) }
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  let window = 0
  try {
    let cookie: string | null = null
    if (variant.kind !== 'anonymous') {
      const login = await get(agent, server.port, '/login', cert, null)
      const first = login.setCookie[0]
      if (login.status !== 200 || first === undefined) throw new Error(`${variant.name}: /login answered ${login.status} without a session cookie`)
      cookie = first.split(';')[0] as string
    }
    const check = (answer: Answer): void => {
      if (answer.status !== 200 || answer.body !== BODIES[variant.kind]) throw new Error(`${variant.name}: ${PATHS[variant.kind]} answered ${answer.status} ${answer.body}`)
      if (variant.kind === 'write' && answer.setCookie.length === 0) throw new Error(`${variant.name}: no Set-Cookie on a session write`)
    }
    // The write route counts up from the cookie it is sent; the same cookie every time, as in run.ts.
    for (let i = 0; i < options.warmup; i++) check(await get(agent, server.port, PATHS[variant.kind], cert, cookie))
    control('-i', 'on')
    const started = Date.now()
    for (let i = 0; i < options.requests; i++) check(await get(agent, server.port, PATHS[variant.kind], cert, cookie))
    window = Date.now() - started
    control('-d', variant.name)
    // callgrind_control asks for the dump and returns; valgrind writes it when the process next
    // runs. Every thread's file is written in that one step, the main thread's ending with `totals:`.
    await dumpWritten(`${out}.1-01`, 120_000)
    // What the process does on its own in as long a time, no request coming (timers: the
    // certificate files' poll, Node's own): under valgrind a window lasts a hundred times longer
    // than at full speed, so this part of the count above is not the requests'.
    control('-z')
    await new Promise((resolve) => setTimeout(resolve, window))
    control('-d', `${variant.name}-idle`)
    await dumpWritten(`${out}.2-01`, 120_000)
  } finally {
    agent.destroy()
    // A server that died has no channel left: sending would throw over the error that ended the run.
    if (server.child.connected) server.child.send({ type: 'exit' } satisfies ControlMessage)
    const killer = setTimeout(() => server.child.kill('SIGKILL'), 120_000)
    await server.exited
    clearTimeout(killer)
  }
  const names = readdirSync(dir)
  const { main, all } = dumpFiles(names, base, 1)
  const idle = dumpFiles(names, base, 2)
  const sum = (list: readonly string[]): number => list.reduce((total, name) => total + dumpTotal(readFileSync(join(dir, name), 'utf8')), 0)
  const total = sum(all)
  if (options.keep !== null) {
    mkdirSync(options.keep, { recursive: true })
    for (const name of [...all, ...idle.all]) copyFileSync(join(dir, name), join(options.keep, name))
    const map = `/tmp/perf-${pid}.map`
    if (existsSync(map)) {
      copyFileSync(map, join(options.keep, `${variant.name}.perf.map`))
      rmSync(map, { force: true })
    }
  }
  const result: CountResult = {
    variant: variant.name,
    requests: options.requests,
    main: dumpTotal(readFileSync(join(dir, main), 'utf8')) / options.requests,
    all: total / options.requests,
    idle: sum(idle.all) / options.requests,
    seconds: window / 1000
  }
  log(`${variant.name}: ${Math.round(result.all).toLocaleString('en-US')} instructions a request (${Math.round(result.main).toLocaleString('en-US')} on the main thread; ${Math.round(result.idle).toLocaleString('en-US')} a request's worth when idle as long; ${result.seconds.toFixed(0)} s under valgrind)`)
  return result
}

async function main (): Promise<void> {
  const options = parse(process.argv.slice(2))
  if (options === null) {
    process.stdout.write(`${HELP}\n`)
    return
  }
  requireTool('valgrind')
  requireTool('callgrind_control')
  const dir = mkdtempSync(join(os.tmpdir(), 'fastify-secure-https-count-'))
  try {
    const files = await runFiles(dir, options.baseline)
    log(`counting ${options.variants.map((v) => v.name).join(', ')}: ${options.warmup} requests of warm-up, ${options.requests} counted, ${options.jobs} at a time`)
    const results: CountResult[] = []
    const queue = [...options.variants]
    const worker = async (): Promise<void> => {
      for (let variant = queue.shift(); variant !== undefined; variant = queue.shift()) {
        results.push(await countOne(variant, options, files, files.cert, dir))
      }
    }
    await Promise.all(Array.from({ length: Math.min(options.jobs, queue.length) }, worker))
    results.sort((a, b) => COUNT_VARIANTS.findIndex((v) => v.name === a.variant) - COUNT_VARIANTS.findIndex((v) => v.name === b.variant))
    process.stdout.write([
      `Instructions per request (valgrind ${execFileSync('valgrind', ['--version']).toString().trim()}, Node.js ${process.version}, ` +
      `${os.cpus()[0]?.model ?? 'unknown CPU'}): ${options.warmup} requests of warm-up, then ${options.requests} counted, one keep-alive TLS connection.`,
      '',
      ...countTable(results),
      ''
    ].join('\n'))
    const warnings = compilingWarnings(results)
    for (const warning of warnings) log(`warning: ${warning}`)
    if (warnings.length > 0) process.exitCode = 3
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
})
