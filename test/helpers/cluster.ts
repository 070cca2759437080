/**
 * A small fleet on loopback, the way the suite runs in production behind a load balancer:
 * optionally Redis, two or more instances of the demo (`node dist/examples/demo/server.js`, so
 * `npm run build` first) with TLS_MODE=proxy, and haproxy in front terminating TLS with a
 * certificate from the suite's own generator, balancing round robin. Every process is started on
 * a free port, stopped by PID, and its folder removed in `close()`.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateSelfSigned } from '../../tls/self-signed.ts'
import { freePort, tempDir } from './app.ts'
import { request } from './http.ts'
import { startRedis, type RedisServer } from './redis.ts'

// The package root, found from here whether this file runs from test/helpers or dist/test/helpers.
function packageRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!(existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'tsconfig.build.json')))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error('cannot find the package root (package.json) above test/helpers')
    dir = parent
  }
  return dir
}
const ROOT = packageRoot()
/** The built demo server every instance runs. */
export const DEMO_SERVER = join(ROOT, 'dist', 'examples', 'demo', 'server.js')

export interface ClusterOptions {
  /** Number of app instances (default 2). */
  instances?: number
  /** Start a Redis and pass its URL as REDIS_URL (default false). */
  redis?: boolean
  /** Environment shared by every instance (added to the defaults below). */
  env?: Record<string, string>
  /** Per-instance environment, by index, applied after `env`. */
  instanceEnv?: Array<Record<string, string>>
  /** Path of haproxy (default: from PATH). */
  haproxy?: string
  /** Path of redis-server (default: from PATH). */
  redisServer?: string
}

export interface Instance {
  /** haproxy's name for it: a1, a2, ... */
  name: string
  port: number
  /** Direct URL of the instance (plain HTTP, as haproxy talks to it). */
  url: string
  /** The environment it was last started with. */
  env: Record<string, string>
  pid (): number | null
  /** stdout and stderr lines of the current process (JSON log lines from pino). */
  logs (): string[]
  /** Resident set size in bytes, from /proc (Linux), or null when not running. */
  rss (): number | null
  /** Stops the process (SIGTERM, then SIGKILL after 5 s). */
  stop (): Promise<void>
  /** Starts it again on the same port, with `env` merged over the previous environment. */
  start (env?: Record<string, string>): Promise<void>
}

export interface Cluster {
  /** https://localhost:PORT, haproxy's TLS front end. */
  url: string
  /** haproxy's front-end port. */
  port: number
  /** The certificate haproxy serves (PEM), to trust in clients. */
  ca: string
  instances: Instance[]
  redis: RedisServer | null
  /** Runs a command on haproxy's runtime API (admin level), e.g. `show servers state`. */
  haproxyCommand (command: string): Promise<string>
  /**
   * Rolling restart of one instance, as an operator does it: drain it in haproxy, wait for its
   * connections to end, restart it (with `env` merged in), wait until it is healthy, put it back.
   */
  restart (index: number, env?: Record<string, string>): Promise<void>
  /** Stops everything and removes the temporary folder. */
  close (): Promise<void>
}

/** A random base64 key of 32 bytes, for SESSION_KEYS. */
export function sessionKey (): string {
  return Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString('base64')
}

async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

function exited (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

async function stopChild (child: ChildProcess | null, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (child === null || child.exitCode !== null || child.signalCode !== null) return
  const gone = exited(child)
  child.kill(signal)
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await gone
  clearTimeout(timer)
}

function rssOf (pid: number | null): number | null {
  if (pid === null) return null
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match === null ? null : Number(match[1]) * 1024
  } catch {
    return null
  }
}

function startInstance (name: string, port: number, baseEnv: Record<string, string>): Instance {
  let child: ChildProcess | null = null
  let lines: string[] = []
  const instance: Instance = {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    env: baseEnv,
    pid: () => child?.pid ?? null,
    logs: () => lines.slice(),
    rss: () => rssOf(child?.pid ?? null),
    async stop () {
      const running = child
      child = null
      await stopChild(running)
    },
    async start (env = {}) {
      if (child !== null) throw new Error(`instance ${name} is already running`)
      instance.env = { ...instance.env, ...env }
      lines = []
      const started = spawn(process.execPath, [DEMO_SERVER], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', ...instance.env },
        stdio: ['ignore', 'pipe', 'pipe']
      })
      let partial = ''
      const collect = (chunk: Buffer): void => {
        const text = partial + chunk.toString()
        const parts = text.split('\n')
        partial = parts.pop() ?? ''
        lines.push(...parts.filter((line) => line.length > 0))
      }
      started.stdout?.on('data', collect)
      started.stderr?.on('data', collect)
      child = started
      try {
        await waitFor(`instance ${name} on port ${port}`, async () => {
          if (started.exitCode !== null) throw new Error(`instance ${name} exited with ${started.exitCode}:\n${lines.join('\n')}`)
          const res = await request(`${instance.url}/healthz`, { timeout: 1000 })
          return res.status === 200
        })
      } catch (error) {
        child = null
        await stopChild(started, 'SIGKILL')
        throw new Error(`${(error as Error).message}\n${lines.join('\n')}`)
      }
      if (started.exitCode !== null) throw new Error(`instance ${name} exited with ${started.exitCode}:\n${lines.join('\n')}`)
    }
  }
  return instance
}

function haproxyConfig (dir: string, port: number, instances: readonly Instance[]): string {
  return `global
  maxconn 2000
  stats socket ${join(dir, 'admin.sock')} mode 600 level admin
  tune.ssl.default-dh-param 2048

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 10s
  # A server that refuses a connection (restarting) costs a retry on another one, not an error.
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response

frontend https
  bind 127.0.0.1:${port} ssl crt ${join(dir, 'haproxy.pem')} alpn h2,http/1.1
  # What the app's proxy trust reads: the client's address and that the client spoke HTTPS.
  option forwardfor
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-response set-header X-Served-By %[srv_name]
  default_backend app

backend app
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
${instances.map((instance) => `  server ${instance.name} 127.0.0.1:${instance.port} check inter 300 fall 1 rise 1`).join('\n')}
`
}

/** Starts Redis (optionally), the instances and haproxy; resolves once every instance is healthy behind haproxy. */
export async function startCluster (options: ClusterOptions = {}): Promise<Cluster> {
  if (!existsSync(DEMO_SERVER)) throw new Error(`${DEMO_SERVER} is missing: run npm run build first`)
  const count = options.instances ?? 2
  const dir = tempDir('secure-https-cluster-')
  const cleanups: Array<() => Promise<void>> = []
  let redis: RedisServer | null = null
  let haproxy: ChildProcess | null = null
  let haproxyOutput = ''
  const instances: Instance[] = []

  async function close (): Promise<void> {
    await stopChild(haproxy)
    await Promise.all(instances.map((instance) => instance.stop()))
    for (const cleanup of cleanups.reverse()) await cleanup()
    rmSync(dir, { recursive: true, force: true })
  }

  try {
    if (options.redis === true) {
      redis = await startRedis(options.redisServer)
      const started = redis
      cleanups.push(() => started.close())
    }
    const haproxyPort = await freePort()
    const pair = await generateSelfSigned(['localhost', '127.0.0.1'])
    writeFileSync(join(dir, 'haproxy.pem'), `${pair.cert}\n${pair.key}\n`, { mode: 0o600 })

    const sharedEnv: Record<string, string> = {
      TLS_MODE: 'proxy',
      TRUST_PROXY: '127.0.0.1',
      HOST: '127.0.0.1',
      HTTPS_PUBLIC_PORT: String(haproxyPort),
      SESSION_KEYS: sessionKey(),
      ALLOWED_HOSTS: 'localhost',
      LOG_LEVEL: 'warn',
      TLS_DIR: join(dir, 'tls'),
      ...(redis === null ? {} : { REDIS_URL: redis.url }),
      ...options.env
    }
    for (let i = 0; i < count; i++) {
      const port = await freePort()
      instances.push(startInstance(`a${i + 1}`, port, { ...sharedEnv, PORT: String(port), ...options.instanceEnv?.[i] }))
    }
    await Promise.all(instances.map((instance) => instance.start()))

    writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig(dir, haproxyPort, instances))
    haproxy = spawn(options.haproxy ?? 'haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'pipe', 'pipe'] })
    haproxy.stdout?.on('data', (chunk: Buffer) => { haproxyOutput += chunk.toString() })
    haproxy.stderr?.on('data', (chunk: Buffer) => { haproxyOutput += chunk.toString() })
    const proxy = haproxy
    await waitFor('haproxy', async () => {
      if (proxy.exitCode !== null) throw new Error(`haproxy exited with ${proxy.exitCode}: ${haproxyOutput}`)
      const res = await request(`https://localhost:${haproxyPort}/healthz`, { ca: pair.cert, timeout: 1000 })
      return res.status === 200
    }).catch((error: Error) => { throw new Error(`${error.message}\n${haproxyOutput}`) })

    const haproxyCommand = (command: string): Promise<string> => new Promise((resolve, reject) => {
      const socket = connect(join(dir, 'admin.sock'))
      let answer = ''
      socket.on('data', (chunk) => { answer += chunk.toString() })
      socket.on('end', () => resolve(answer.trim()))
      socket.on('error', reject)
      socket.end(`${command}\n`)
    })
    const upServers = async (): Promise<Set<string>> => {
      const state = await haproxyCommand('show servers state app')
      // Columns: be_id be_name srv_id srv_name srv_addr srv_op_state (2 = running) srv_admin_state ...
      const up = new Set<string>()
      for (const line of state.split('\n').slice(2)) {
        const cols = line.split(' ')
        if (cols[5] === '2' && cols[6] === '0' && cols[3] !== undefined) up.add(cols[3])
      }
      return up
    }
    await waitFor('every instance healthy in haproxy', async () => (await upServers()).size === count)

    return {
      url: `https://localhost:${haproxyPort}`,
      port: haproxyPort,
      ca: pair.cert,
      instances,
      redis,
      haproxyCommand,
      async restart (index, env) {
        const instance = instances[index]
        if (instance === undefined) throw new Error(`no instance ${index}`)
        await haproxyCommand(`set server app/${instance.name} state drain`)
        await haproxyCommand(`set server app/${instance.name} state maint`)
        // Requests already on their way to it finish; new ones go to the others.
        await waitFor(`${instance.name} drained`, async () => {
          // CSV: pxname,svname,qcur,qmax,scur,...; scur is the number of requests it is serving.
          const row = (await haproxyCommand('show stat')).split('\n').map((l) => l.split(',')).find((cols) => cols[0] === 'app' && cols[1] === instance.name)
          return row === undefined || row[4] === '0'
        }, 5000).catch(() => {}) // a request that outlives 5 s is cut, as any deploy would
        await instance.stop()
        await instance.start(env)
        await haproxyCommand(`set server app/${instance.name} state ready`)
        await waitFor(`${instance.name} back in haproxy`, async () => (await upServers()).has(instance.name))
      },
      close
    }
  } catch (error) {
    await close()
    throw error
  }
}
