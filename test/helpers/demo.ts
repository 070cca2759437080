/**
 * The demo as a user runs it (`node dist/examples/demo/server.js`), for the browser tests: free
 * ports, its own TLS_DIR, started and ready, stopped by PID in teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { freePort, tempDir } from './app.ts'
import { request } from './http.ts'

const SERVER = join(import.meta.dirname, '..', '..', 'dist', 'examples', 'demo', 'server.js')

export interface Demo {
  port: number
  /** `https://localhost:PORT`. */
  url: string
  /** The leaf, then the development CA that issued it (what a client trusts). */
  cert: string
  output: () => string
}

/** Starts the demo with `env` on top of its ports, TLS_DIR and LOG_LEVEL=info; resolves once /healthz answers. */
export async function startDemo (t: Test, env: Record<string, string>): Promise<Demo> {
  if (!existsSync(SERVER)) throw new Error(`${SERVER} is missing: run npm run build first`)
  const [port, httpPort] = [await freePort(), await freePort()]
  const dir = tempDir('secure-https-demo-')
  let output = ''
  const child: ChildProcess = spawn(process.execPath, [SERVER], {
    // The child runs the compiled dist/; tap would map its coverage onto the TypeScript sources and
    // the merge with the in-process tests' coverage comes out wrong, so the child records none.
    env: { PATH: process.env.PATH, PORT: String(port), HTTP_PORT: String(httpPort), TLS_DIR: dir, LOG_LEVEL: 'info', _TAPJS_PROCESSINFO_COVERAGE_: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  t.teardown(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      process.kill(child.pid as number, 'SIGTERM')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  })
  const url = `https://localhost:${port}`
  const certFile = join(dir, 'self-signed', 'cert.pem')
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`the demo exited (${child.exitCode}):\n${output}`)
    if (existsSync(certFile)) {
      const cert = readFileSync(certFile, 'utf8') + readFileSync(join(dir, 'ca', 'cert.pem'), 'utf8')
      const ok = await request(`${url}/healthz`, { ca: cert }).then((r) => r.status === 200, () => false)
      if (ok) return { port, url, cert, output: () => output }
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`the demo did not start:\n${output}`)
}
