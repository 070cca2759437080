/**
 * Child processes for the proxy tests: waiting for a port, stopping by PID, and the demo app
 * (`node dist/examples/demo/server.js`, so `npm run build` first) run with a given environment,
 * its JSON log lines kept for assertions.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { environmentVariables } from '../../schemas/env.ts'
import { generateSelfSigned } from '../../tls/self-signed.ts'
import { freePort, tempDir } from './app.ts'
import { DEMO_SERVER, sessionKey } from './cluster.ts'
import { lineLog, type LogLine } from './logs.ts'

function exited (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

/** Stops a child by its PID: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProcess (child: ChildProcess | null, graceMs = 3000): Promise<void> {
  if (child === null || child.exitCode !== null || child.signalCode !== null) return
  const gone = exited(child)
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await gone
  clearTimeout(timer)
}

function accepts (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/** Resolves once 127.0.0.1:port accepts a connection; rejects if the child exits first or after `timeoutMs`. */
export async function waitForPort (child: ChildProcess, port: number, name: string, output: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before listening on ${port}:\n${output()}`)
    if (await accepts(port)) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`${name} did not listen on ${port} within ${timeoutMs} ms:\n${output()}`)
}

export interface DemoProcess {
  port: number
  /** http://127.0.0.1:PORT: the app itself, plain HTTP, as the proxy reaches it. */
  url: string
  /** Every JSON log line written so far. */
  lines: LogLine[]
  /** Lines carrying the given security event. */
  events (name: string): LogLine[]
  /** Resolves when a matching line arrives (rejects after `timeoutMs`). */
  waitFor (predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>
  stop (): Promise<void>
}

/**
 * Starts the built demo with TLS_MODE=proxy, trusting 127.0.0.1, on a free port; `env` is added
 * over those defaults (give PORT to choose the port, e.g. one a proxy was already pointed at).
 * None of the suite's variables leak in from the test's own environment.
 */
export async function startDemo (env: Record<string, string>): Promise<DemoProcess> {
  if (!existsSync(DEMO_SERVER)) throw new Error(`${DEMO_SERVER} is missing: run npm run build first`)
  const port = env.PORT !== undefined ? Number(env.PORT) : await freePort()
  const dir = tempDir('secure-https-demo-')
  const inherited = { ...process.env }
  for (const name of [...Object.keys(environmentVariables), 'NODE_ENV', 'LOG_LEVEL']) delete inherited[name]
  const child = spawn(process.execPath, [DEMO_SERVER], {
    cwd: dir,
    env: {
      ...inherited,
      TLS_MODE: 'proxy',
      TRUST_PROXY: '127.0.0.1',
      HOST: '127.0.0.1',
      PORT: String(port),
      SESSION_KEYS: sessionKey(),
      ALLOWED_HOSTS: 'localhost',
      TLS_DIR: join(dir, 'tls'),
      // The child runs the compiled dist/: its coverage would be merged wrongly with the sources'.
      _TAPJS_PROCESSINFO_COVERAGE_: '0',
      ...env
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let text = ''
  const log = lineLog(() => `; the demo wrote:\n${text}`, 30_000)
  child.stdout?.on('data', (chunk: Buffer) => {
    text += chunk.toString()
    log.write(chunk.toString())
  })
  child.stderr?.on('data', (chunk: Buffer) => { text += chunk.toString() })
  const stop = async (): Promise<void> => {
    await stopProcess(child)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    // Loading the suite takes a few seconds on a busy 2-core machine.
    await waitForPort(child, port, 'the demo', () => text, 30_000)
  } catch (error) {
    await stop()
    throw error
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    lines: log.lines,
    events: log.events,
    waitFor: log.waitFor,
    stop
  }
}

/** A TLS-terminating proxy started by `startTlsProxy`. */
export interface TlsProxy {
  /** https://localhost:PORT */
  httpsUrl: string
  /** http://localhost:PORT */
  httpUrl: string
  httpsPort: number
  httpPort: number
  /** The certificate the proxy serves (PEM), to trust in clients. */
  ca: string
  /** The configuration file the proxy runs with. */
  config: string
  /** Stops the proxy by PID and removes its folder. */
  stop (): Promise<void>
}

/** What a proxy needs to start, written into its own folder by the caller. */
export interface ProxyLaunch {
  config: string
  command: string
  args: string[]
  /** More output to show when it fails to start (e.g. an error log file). */
  log?: () => string
}

/**
 * Starts a proxy (nginx, haproxy) with an HTTPS and an HTTP port, both free, a certificate from the
 * suite's generator, and a folder of its own; resolves once both ports accept connections.
 */
export async function startTlsProxy (
  name: string,
  hosts: readonly string[],
  prepare: (dir: string, ports: { https: number, http: number }, pair: { cert: string, key: string }) => ProxyLaunch
): Promise<TlsProxy> {
  const dir = tempDir(`secure-https-${name}-`)
  let child: ChildProcess | null = null
  const stop = async (): Promise<void> => {
    await stopProcess(child)
    child = null
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const pair = await generateSelfSigned(hosts)
    const httpsPort = await freePort()
    const httpPort = await freePort()
    const launch = prepare(dir, { https: httpsPort, http: httpPort }, pair)
    const started = spawn(launch.command, launch.args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child = started
    let output = ''
    started.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
    started.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
    const log = (): string => output + (launch.log?.() ?? '')
    await waitForPort(started, httpsPort, name, log)
    await waitForPort(started, httpPort, name, log)
    return {
      httpsUrl: `https://localhost:${httpsPort}`,
      httpUrl: `http://localhost:${httpPort}`,
      httpsPort,
      httpPort,
      ca: pair.cert,
      config: launch.config,
      stop
    }
  } catch (error) {
    await stop()
    throw error
  }
}
