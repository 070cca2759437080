/**
 * A real Redis for tests: `redis-server` on a free loopback port, no persistence, data dir in a
 * fresh temporary folder. It can be stopped and started again on the same port (to test what the
 * app does while Redis is down), and is always stopped by PID in teardown.
 */
import { spawn, type ChildProcess, execFile } from 'node:child_process'
import { rmSync } from 'node:fs'
import { connect } from 'node:net'
import { freePort, tempDir } from './app.ts'

export interface RedisServer {
  port: number
  /** `redis://127.0.0.1:PORT` */
  url: string
  /** PID of the running server, or null while stopped. */
  pid (): number | null
  /** Stops the server (SHUTDOWN NOSAVE, then SIGKILL if it lingers). Idempotent. */
  stop (): Promise<void>
  /** Starts it again on the same port (empty: nothing is persisted). */
  start (): Promise<void>
  /** Runs `redis-cli -p PORT ...args` and returns its output. */
  cli (...args: string[]): Promise<string>
  /** Stops the server and removes its folder. */
  close (): Promise<void>
}

/** Resolves once something accepts TCP connections and answers PING on the port. */
async function waitReady (port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode} before it was ready`)
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.setTimeout(500)
      socket.once('connect', () => socket.write('PING\r\n'))
      socket.once('data', (data) => { socket.destroy(); resolve(data.toString().startsWith('+PONG')) })
      socket.once('error', () => { socket.destroy(); resolve(false) })
      socket.once('timeout', () => { socket.destroy(); resolve(false) })
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`redis-server did not answer PING on 127.0.0.1:${port} within ${timeoutMs} ms`)
}

function exited (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

/** Starts `redis-server` on a free loopback port (or `port`); `start: false` only reserves it. */
export async function startRedis (bin = 'redis-server', options: { port?: number, start?: boolean } = {}): Promise<RedisServer> {
  const port = options.port ?? await freePort()
  const dir = tempDir('secure-https-redis-')
  let child: ChildProcess | null = null
  let output = ''

  async function start (): Promise<void> {
    if (child !== null) return
    output = ''
    const started = spawn(bin, ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
    started.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
    started.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child = started
    started.once('exit', () => { if (child === started) child = null })
    try {
      await waitReady(port, started)
    } catch (error) {
      started.kill('SIGKILL')
      child = null
      throw new Error(`${(error as Error).message}\n${output}`)
    }
  }

  function cli (...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5000 }, (error, stdout) => {
        if (error !== null) reject(error)
        else resolve(stdout.trim())
      })
    })
  }

  async function stop (): Promise<void> {
    const running = child
    if (running === null) return
    const gone = exited(running)
    await cli('shutdown', 'nosave').catch(() => {})
    const timer = setTimeout(() => running.kill('SIGKILL'), 3000)
    await gone
    clearTimeout(timer)
    child = null
  }

  if (options.start !== false) await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: () => child?.pid ?? null,
    stop,
    start,
    cli,
    async close () {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
