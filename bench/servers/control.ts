/**
 * The side channel between a benchmark server and the runner (bench/run.ts), shared by every
 * server variant. It runs over the IPC channel the runner opens, never over HTTP, so that nothing the
 * runner asks for (CPU readings, profiles) is counted as a request or costs the measured server a
 * route or a hook.
 *
 * Messages from the runner: `cpu` (reply with process.cpuUsage()), `profile-start` and
 * `profile-stop` (V8 CPU profile of exactly the measured window, written to a file), `headers`
 * (the header list the static-headers variant sends), `exit`.
 * @internal
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import type { FastifyInstance } from 'fastify'

/** What every server reads from its environment, set by the runner. @internal */
export interface BenchEnvironment {
  /** PEM key and certificate made by the suite's generator, shared by all variants. */
  key: string
  cert: string
  /**
   * A TLS_DIR of its own, holding the same pair in the layout of the suite's self-signed cache
   * (`self-signed/key.pem`, `self-signed/cert.pem`), for a variant run in TLS_MODE=self-signed.
   */
  tlsDir: string
  /** A base64 32-byte session key. */
  sessionKey: string
  /** The host name requests carry and the certificate covers. */
  host: string
}

function required (name: string): string {
  const value = process.env[name]
  if (value === undefined || value === '') throw new Error(`${name} is not set: benchmark servers are started by bench/run.ts (node dist/bench/run.js)`)
  return value
}

/** Reads the environment the runner passes. @internal */
export function benchEnvironment (): BenchEnvironment {
  return {
    key: readFileSync(required('BENCH_KEY_FILE'), 'utf8'),
    cert: readFileSync(required('BENCH_CERT_FILE'), 'utf8'),
    tlsDir: required('BENCH_TLS_DIR'),
    sessionKey: required('BENCH_SESSION_KEY'),
    host: required('BENCH_HOST')
  }
}

/** A message from the runner. @internal */
export type ControlMessage =
  | { type: 'cpu', id: number }
  | { type: 'profile-start', id: number, interval: number }
  | { type: 'profile-stop', id: number, file: string }
  | { type: 'headers', id: number, headers: Array<[string, string]> }
  | { type: 'exit' }

/** A message to the runner. @internal */
export type ServerMessage =
  | { type: 'ready', port: number, redirectPort: number | null }
  | { type: 'cpu', id: number, user: number, system: number, rss: number, switches: number }
  | { type: 'done', id: number }
  | { type: 'refused', id: number, message: string }
  | { type: 'failed', message: string }

function send (message: ServerMessage): void {
  process.send?.(message)
}

/** Receives the `headers` message; only the static-headers variant has one. @internal */
export type HeadersHandler = (headers: Array<[string, string]>) => void

/**
 * Announces the listening server to the runner and answers its control messages until told to exit.
 * `close` stops the server; the process then exits.
 * @internal
 */
export function controlled (port: number, redirectPort: number | null, close: () => Promise<unknown>, onHeaders?: HeadersHandler): void {
  if (process.send === undefined) throw new Error('benchmark servers are started by bench/run.ts (node dist/bench/run.js), which talks to them over IPC')
  let profiler: Session | undefined
  process.on('message', (message: ControlMessage) => {
    switch (message.type) {
      case 'cpu': {
        const usage = process.cpuUsage()
        // Context switches of the whole process (every thread), voluntary (a wait: epoll with
        // nothing to do) and not (the scheduler handing the core to another process).
        const resources = process.resourceUsage()
        send({ type: 'cpu', id: message.id, user: usage.user, system: usage.system, rss: process.memoryUsage.rss(), switches: resources.voluntaryContextSwitches + resources.involuntaryContextSwitches })
        break
      }
      case 'profile-start': {
        profiler = new Session()
        profiler.connect()
        const session = profiler
        session.post('Profiler.enable')
          .then(() => session.post('Profiler.setSamplingInterval', { interval: message.interval }))
          .then(() => session.post('Profiler.start'))
          .then(() => send({ type: 'done', id: message.id }), failed)
        break
      }
      case 'profile-stop': {
        const session = profiler
        if (session === undefined) break
        session.post('Profiler.stop').then(({ profile }) => {
          session.disconnect()
          writeFileSync(message.file, JSON.stringify(profile))
          send({ type: 'done', id: message.id })
        }, failed)
        break
      }
      case 'headers':
        if (onHeaders === undefined) {
          send({ type: 'refused', id: message.id, message: 'this variant takes no header list' })
        } else {
          onHeaders(message.headers)
          send({ type: 'done', id: message.id })
        }
        break
      case 'exit':
        close().finally(() => process.exit(0))
        break
    }
  })
  // The runner going away (Ctrl-C, a crash) must not leave servers behind.
  process.on('disconnect', () => { close().finally(() => process.exit(0)) })
  send({ type: 'ready', port, redirectPort })
}

/** Reports a start-up failure to the runner and exits. @internal */
export function failed (error: unknown): never {
  send({ type: 'failed', message: error instanceof Error ? (error.stack ?? error.message) : String(error) })
  process.exit(1)
}

/**
 * Starts a Fastify variant: listens on a free loopback port and hands it to the runner, or reports
 * the failure. `redirectPort` names the suite's HTTP listener, for the variants that have one.
 * @internal
 */
export async function serveFastify (build: (env: BenchEnvironment) => Promise<FastifyInstance>, redirectPort: (app: FastifyInstance) => number | null = () => null, onHeaders?: HeadersHandler): Promise<void> {
  try {
    const app = await build(benchEnvironment())
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    controlled(typeof address === 'object' && address !== null ? address.port : 0, redirectPort(app), () => app.close(), onHeaders)
  } catch (error) {
    failed(error)
  }
}
