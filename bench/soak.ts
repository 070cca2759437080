/**
 * Soak: a bounded load through haproxy against a small fleet of demo instances (test/helpers/cluster)
 * while one instance is restarted and SESSION_KEYS is rotated across the fleet, the way an
 * operator does it (docs/scaling.md). Virtual users log in, read their session, and log out; every
 * answer is checked, so a lost session counts as an error just as a 5xx or a reset does.
 *
 *   npm run build && node dist/bench/soak.js [--duration 60] [--store cookie|redis]
 *     [--instances 2] [--users 8] [--rate 200] [--json out.json]
 *   node dist/bench/soak.js --cost [--seconds 5] [--rounds 3]   (what a Redis store costs per request)
 *
 * Timeline: warm-up; at 10% of the run, a plain rolling restart of instance a1; then rotation
 * phase 1 (every instance restarted with `K1,K2`: the new key readable everywhere) and phase 2
 * (`K2,K1`: the new key writes). After the last restart the fleet runs untouched for at least 40%
 * of the duration; memory growth is measured over that window, on processes that live through it.
 */
import autocannon from 'autocannon'
import { Agent } from 'node:https'
import { readFileSync, writeFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { startCluster, sessionKey, type Cluster } from '../test/helpers/cluster.ts'
import { cookieHeader, request, type Response } from '../test/helpers/http.ts'

/** Options of a soak run. */
export interface SoakOptions {
  /** Seconds of load (default 60). The run stretches when restarts take longer than planned. */
  duration?: number
  store?: 'cookie' | 'redis'
  instances?: number
  /** Concurrent virtual users (default 8). */
  users?: number
  /** Requests per second for the whole fleet, shared by the users (default 200). */
  rate?: number
  /** Progress lines go here (default: nothing). */
  progress?: (line: string) => void
}

/** One process's memory over the run (bytes). */
export interface ProcessMemory {
  instance: string
  pid: number
  /** Seconds since the start of the run. */
  startedAt: number
  endedAt: number
  /** RSS at its first sample, after its warm-up. */
  first: number
  last: number
  peak: number
}

/** What a soak run measured. */
export interface SoakReport {
  store: 'cookie' | 'redis'
  instances: number
  users: number
  targetRate: number
  seconds: number
  requests: number
  logins: number
  /** Every failure: network errors, unexpected statuses, and sessions that came back wrong. */
  errors: number
  /** Failures that happened while an instance was being restarted (the documented cost, if any). */
  errorsDuringRestarts: number
  errorSamples: string[]
  /** A logged-out cookie replayed afterwards still opened the session (possible only with cookie sessions). */
  replayedAfterLogout: number
  latencyMs: { p50: number, p90: number, p99: number, max: number }
  restarts: Array<{ instance: string, reason: string, startedAt: number, seconds: number }>
  /** RSS per instance slot at the start (after warm-up) and at the end of the run, bytes. */
  memory: Array<{ instance: string, before: number, after: number }>
  /** Over the window after the last restart: RSS growth per process, bytes. */
  steadyWindow: { from: number, to: number, growth: Array<{ instance: string, pid: number, from: number, mid: number, to: number }> }
  redis?: { keysBefore: number, keysAfter: number, usedMemoryBefore: number, usedMemoryAfter: number }
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function percentile (sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

async function redisStats (cluster: Cluster): Promise<{ keys: number, usedMemory: number }> {
  if (cluster.redis === null) return { keys: 0, usedMemory: 0 }
  const keys = Number(await cluster.redis.cli('dbsize'))
  const info = await cluster.redis.cli('info', 'memory')
  const used = /used_memory:(\d+)/.exec(info)
  return { keys, usedMemory: used === null ? 0 : Number(used[1]) }
}

/** Runs one soak and returns its figures; starts and stops its own fleet. */
export async function runSoak (options: SoakOptions = {}): Promise<SoakReport> {
  const duration = (options.duration ?? 60) * 1000
  const store = options.store ?? 'cookie'
  const count = options.instances ?? 2
  const users = options.users ?? 8
  const rate = options.rate ?? 200
  const progress = options.progress ?? (() => {})
  const k1 = sessionKey()
  const k2 = sessionKey()
  const cluster = await startCluster({
    instances: count,
    redis: store === 'redis',
    env: { SESSION_KEYS: k1, ...(store === 'redis' ? { SESSION_STORE: 'redis' } : {}) }
  })
  // Idle connections are dropped by the client before haproxy drops them (timeout http-keep-alive
  // 10s): otherwise a request can leave on a connection the proxy is closing, and be reset.
  const agent = new Agent({ keepAlive: true, maxSockets: users, ca: cluster.ca, timeout: 4000 })
  const start = performance.now()
  const now = (): number => (performance.now() - start) / 1000
  const latencies: number[] = []
  const errorSamples: string[] = []
  let requests = 0
  let logins = 0
  let errors = 0
  let errorsDuringRestarts = 0
  let replayedAfterLogout = 0
  let restarting = false
  const run = { stopping: false }
  const restarts: SoakReport['restarts'] = []
  const processes = new Map<number, ProcessMemory>()

  const fail = (what: string): void => {
    errors++
    if (restarting) errorsDuringRestarts++
    if (errorSamples.length < 20) errorSamples.push(`${now().toFixed(1)}s ${what}`)
  }

  async function send (path: string, init: { method?: string, body?: string, cookie?: string } = {}): Promise<Response | null> {
    const headers: Record<string, string> = {}
    if (init.body !== undefined) Object.assign(headers, FORM)
    if (init.cookie !== undefined) headers.cookie = init.cookie
    const began = performance.now()
    requests++
    try {
      const res = await request(`${cluster.url}${path}`, { method: init.method ?? 'GET', body: init.body, headers, agent, timeout: 10_000 })
      latencies.push(performance.now() - began)
      return res
    } catch (error) {
      fail(`${init.method ?? 'GET'} ${path}: ${(error as Error).message}`)
      return null
    }
  }

  // Each user paces itself so that the fleet sees about `rate` requests per second.
  const interval = (users / rate) * 1000
  async function user (n: number): Promise<void> {
    let cycle = 0
    let next = performance.now()
    const paced = async <T>(step: () => Promise<T>): Promise<T> => {
      next += interval
      const wait = next - performance.now()
      if (wait > 0) await sleep(wait)
      else next = performance.now()
      return await step()
    }
    while (!run.stopping) {
      const name = `u${n}-${cycle++}`
      const login = await paced(() => send('/login', { method: 'POST', body: `user=${name}` }))
      if (login === null) continue
      if (login.status !== 303) { fail(`POST /login: ${login.status}`); continue }
      logins++
      const cookie = cookieHeader(login)
      for (let i = 0; i < 4 && !run.stopping; i++) {
        const me = await paced(() => send('/api/me', { cookie }))
        if (me === null) continue
        if (me.status !== 200) fail(`GET /api/me: ${me.status}`)
        else if (JSON.parse(me.body).user !== name) fail(`GET /api/me: session lost (${me.body}, served by ${String(me.headers['x-served-by'])})`)
      }
      const dash = await paced(() => send('/dashboard', { cookie }))
      if (dash !== null && (dash.status !== 200 || !dash.body.includes(name))) fail(`GET /dashboard: ${dash.status}`)
      const logout = await paced(() => send('/logout', { method: 'POST', cookie }))
      if (logout === null) continue
      if (logout.status !== 303) { fail(`POST /logout: ${logout.status}`); continue }
      // The cookie from before the logout, replayed (a stolen copy): only a server-side store can refuse it.
      const replay = await paced(() => send('/api/me', { cookie }))
      if (replay === null) continue
      if (replay.status !== 200) fail(`GET /api/me after logout: ${replay.status}`)
      else if (JSON.parse(replay.body).user !== null) replayedAfterLogout++
    }
  }

  function sample (): void {
    const t = now()
    for (const instance of cluster.instances) {
      const pid = instance.pid()
      const rss = instance.rss()
      if (pid === null || rss === null) continue
      const seen = processes.get(pid)
      if (seen === undefined) processes.set(pid, { instance: instance.name, pid, startedAt: t, endedAt: t, first: rss, last: rss, peak: rss })
      else Object.assign(seen, { endedAt: t, last: rss, peak: Math.max(seen.peak, rss) })
    }
  }

  const redisBefore = await redisStats(cluster)
  const before = new Map<string, number>()
  const workers = Array.from({ length: users }, (_, n) => user(n))
  const sampler = setInterval(sample, 250)
  try {
    // Warm-up: the first samples of the first processes are taken after the JIT has settled.
    await sleep(Math.min(duration * 0.1, 5000))
    for (const instance of cluster.instances) before.set(instance.name, instance.rss() ?? 0)
    sample()
    const restart = async (index: number, reason: string, env?: Record<string, string>): Promise<void> => {
      const name = cluster.instances[index]?.name ?? String(index)
      const began = now()
      progress(`${began.toFixed(1)}s restarting ${name}: ${reason}`)
      restarting = true
      try {
        await cluster.restart(index, env)
      } finally {
        restarting = false
      }
      restarts.push({ instance: name, reason, startedAt: began, seconds: now() - began })
    }
    await restart(0, 'plain restart (deploy)')
    for (let i = 0; i < count; i++) await restart(i, 'rotation phase 1: SESSION_KEYS=K1,K2', { SESSION_KEYS: `${k1},${k2}` })
    for (let i = 0; i < count; i++) await restart(i, 'rotation phase 2: SESSION_KEYS=K2,K1', { SESSION_KEYS: `${k2},${k1}` })
    // Let the new processes warm up before the steady window opens.
    await sleep(Math.min(duration * 0.1, 5000))
    const windowFrom = now()
    const atWindow = new Map<number, number>()
    for (const instance of cluster.instances) {
      const pid = instance.pid()
      if (pid !== null) atWindow.set(pid, instance.rss() ?? 0)
    }
    const end = Math.max(duration / 1000, windowFrom + (duration / 1000) * 0.4)
    progress(`${windowFrom.toFixed(1)}s last restart done; steady until ${end.toFixed(1)}s`)
    // A sample half way, to tell a curve that flattens (heap settling) from one that keeps rising.
    await sleep(Math.max(0, ((end - now()) / 2) * 1000))
    const atMiddle = new Map<string, number>(cluster.instances.map((instance) => [instance.name, instance.rss() ?? 0]))
    await sleep(Math.max(0, (end - now()) * 1000))
    sample()
    const windowTo = now()
    const growth = cluster.instances.map((instance) => {
      const pid = instance.pid() ?? 0
      return { instance: instance.name, pid, from: atWindow.get(pid) ?? 0, mid: atMiddle.get(instance.name) ?? 0, to: instance.rss() ?? 0 }
    })
    run.stopping = true
    await Promise.all(workers)
    const seconds = now()
    const sorted = latencies.slice().sort((a, b) => a - b)
    const redisAfter = await redisStats(cluster)
    const report: SoakReport = {
      store,
      instances: count,
      users,
      targetRate: rate,
      seconds: Math.round(seconds * 10) / 10,
      requests,
      logins,
      errors,
      errorsDuringRestarts,
      errorSamples,
      replayedAfterLogout,
      latencyMs: {
        p50: Math.round(percentile(sorted, 50) * 10) / 10,
        p90: Math.round(percentile(sorted, 90) * 10) / 10,
        p99: Math.round(percentile(sorted, 99) * 10) / 10,
        max: Math.round((sorted.at(-1) ?? 0) * 10) / 10
      },
      restarts,
      memory: cluster.instances.map((instance) => ({ instance: instance.name, before: before.get(instance.name) ?? 0, after: instance.rss() ?? 0 })),
      steadyWindow: { from: Math.round(windowFrom * 10) / 10, to: Math.round(windowTo * 10) / 10, growth }
    }
    if (store === 'redis') {
      report.redis = { keysBefore: redisBefore.keys, keysAfter: redisAfter.keys, usedMemoryBefore: redisBefore.usedMemory, usedMemoryAfter: redisAfter.usedMemory }
    }
    return report
  } finally {
    run.stopping = true
    clearInterval(sampler)
    await Promise.allSettled(workers)
    agent.destroy()
    await cluster.close()
  }
}

/** One measurement: throughput and latency as autocannon saw them, CPU as the kernel counted it. */
export interface CostSample {
  rps: number
  p50: number
  p99: number
  /** CPU time of the app process per request, microseconds (robust to a busy machine). */
  appCpuUs: number
  /** CPU time of redis-server per request, microseconds (0 with cookie sessions). */
  redisCpuUs: number
}

/** Per-request cost of one session store on one instance. */
export interface CostFigures {
  store: 'cookie' | 'redis'
  /** GET /api/me with a session cookie: the session is read. */
  read: CostSample
  /** POST /login: a new session is written (and, with Redis, stored). */
  write: CostSample
}

/** user + system CPU of a process, milliseconds, from /proc (Linux; clock ticks of 10 ms). */
function cpuMs (pid: number | null): number {
  if (pid === null) return 0
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return 0
  }
}

/**
 * Measures reads and writes of the session on one instance per store (plain HTTP straight to the
 * instance, so TLS and haproxy are out of the figures), interleaving the stores round by round
 * and keeping the median, so that noise on a shared machine hits both alike.
 */
export async function measureCost (options: { seconds?: number, rounds?: number, connections?: number } = {}): Promise<CostFigures[]> {
  const seconds = options.seconds ?? 5
  const rounds = options.rounds ?? 3
  const connections = options.connections ?? 10
  const stores = ['cookie', 'redis'] as const
  const clusters = new Map<'cookie' | 'redis', Cluster>()
  try {
    for (const store of stores) {
      clusters.set(store, await startCluster({ instances: 1, redis: store === 'redis', env: store === 'redis' ? { SESSION_STORE: 'redis' } : {} }))
    }
    const samples = new Map<string, CostSample[]>()
    const headers = { host: 'localhost', 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' }
    for (let round = 0; round < rounds; round++) {
      for (const kind of ['read', 'write'] as const) {
        for (const store of stores) {
          const instance = (clusters.get(store) as Cluster).instances[0]
          if (instance === undefined) throw new Error('no instance')
          let cookie = ''
          if (kind === 'read') {
            const login = await request(`${instance.url}/login`, { method: 'POST', body: 'user=bench', headers: { ...headers, ...FORM } })
            cookie = cookieHeader(login)
          }
          const redisPid = (clusters.get(store) as Cluster).redis?.pid() ?? null
          const appBefore = cpuMs(instance.pid())
          const redisBefore = cpuMs(redisPid)
          const result = await autocannon({
            url: `${instance.url}${kind === 'read' ? '/api/me' : '/login'}`,
            connections,
            duration: seconds,
            method: kind === 'read' ? 'GET' : 'POST',
            headers: kind === 'read' ? { ...headers, cookie } : { ...headers, ...FORM },
            body: kind === 'read' ? undefined : 'user=bench'
          })
          const expected = kind === 'read' ? result['2xx'] : result['3xx']
          if (result.errors > 0 || result.non2xx !== (kind === 'read' ? 0 : expected)) {
            throw new Error(`${store} ${kind}: ${result.errors} errors, ${result.non2xx} non-2xx answers`)
          }
          const key = `${store}:${kind}`
          const total = result.requests.total
          samples.set(key, [...(samples.get(key) ?? []), {
            rps: result.requests.average,
            p50: result.latency.p50,
            p99: result.latency.p99,
            appCpuUs: ((cpuMs(instance.pid()) - appBefore) * 1000) / total,
            redisCpuUs: ((cpuMs(redisPid) - redisBefore) * 1000) / total
          }])
        }
      }
    }
    const median = (key: string): CostSample => {
      const list = samples.get(key) ?? []
      const pick = (f: (x: CostSample) => number): number => list.map(f).sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? 0
      return {
        rps: Math.round(pick((x) => x.rps)),
        p50: pick((x) => x.p50),
        p99: pick((x) => x.p99),
        appCpuUs: Math.round(pick((x) => x.appCpuUs)),
        redisCpuUs: Math.round(pick((x) => x.redisCpuUs))
      }
    }
    return stores.map((store) => ({ store, read: median(`${store}:read`), write: median(`${store}:write`) }))
  } finally {
    for (const cluster of clusters.values()) await cluster.close()
  }
}

const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MB`

/** The report as the plain text the CLI prints. */
export function formatReport (r: SoakReport): string {
  const lines = [
    `soak: ${r.store} sessions, ${r.instances} instances behind haproxy, ${r.users} users at ~${r.targetRate} req/s, ${r.seconds} s`,
    `requests ${r.requests} (${Math.round(r.requests / r.seconds)}/s), logins ${r.logins}, errors ${r.errors} (${r.errorsDuringRestarts} during restarts)`,
    `latency p50 ${r.latencyMs.p50} ms, p90 ${r.latencyMs.p90} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms`,
    `logged-out cookies replayed that still opened the session: ${r.replayedAfterLogout}`,
    ...r.restarts.map((x) => `  ${x.startedAt.toFixed(1)}s ${x.instance} ${x.reason}: ${x.seconds.toFixed(1)} s`),
    ...r.memory.map((m) => `memory ${m.instance}: RSS ${mb(m.before)} at start, ${mb(m.after)} at end (new process after restarts)`),
    `steady window ${r.steadyWindow.from}s to ${r.steadyWindow.to}s:`,
    ...r.steadyWindow.growth.map((g) => `  ${g.instance} (pid ${g.pid}) RSS ${mb(g.from)} -> ${mb(g.mid)} half way -> ${mb(g.to)} (${g.to >= g.from ? '+' : ''}${mb(g.to - g.from)})`)
  ]
  if (r.redis !== undefined) lines.push(`redis: keys ${r.redis.keysBefore} -> ${r.redis.keysAfter}, used_memory ${mb(r.redis.usedMemoryBefore)} -> ${mb(r.redis.usedMemoryAfter)}`)
  if (r.errorSamples.length > 0) lines.push('first errors:', ...r.errorSamples.map((e) => `  ${e}`))
  return lines.join('\n')
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '60' },
      store: { type: 'string', default: 'cookie' },
      instances: { type: 'string', default: '2' },
      users: { type: 'string', default: '8' },
      rate: { type: 'string', default: '200' },
      json: { type: 'string' },
      cost: { type: 'boolean', default: false },
      seconds: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' }
    }
  })
  if (values.cost) {
    const figures = await measureCost({ seconds: Number(values.seconds), rounds: Number(values.rounds) })
    for (const f of figures) {
      for (const kind of ['read', 'write'] as const) {
        const x = f[kind]
        process.stdout.write(`${f.store.padEnd(6)} ${kind.padEnd(5)} ${x.rps} req/s  p50 ${x.p50} ms  p99 ${x.p99} ms  app CPU ${x.appCpuUs} us/req  redis CPU ${x.redisCpuUs} us/req\n`)
      }
    }
    if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(figures, null, 2)}\n`)
    return
  }
  if (values.store !== 'cookie' && values.store !== 'redis') throw new Error(`--store must be cookie or redis (got ${values.store})`)
  const report = await runSoak({
    duration: Number(values.duration),
    store: values.store,
    instances: Number(values.instances),
    users: Number(values.users),
    rate: Number(values.rate),
    progress: (line) => process.stderr.write(`${line}\n`)
  })
  process.stdout.write(`${formatReport(report)}\n`)
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`)
  process.exitCode = report.errors === 0 ? 0 : 1
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
    process.exit(1)
  })
}
