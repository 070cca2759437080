/**
 * A Fastify logger that keeps every line, so tests can assert on security events.
 */
import { Writable } from 'node:stream'

export interface LogLine {
  level: number
  msg?: string
  securityEvent?: string
  [key: string]: unknown
}

export interface LogCapture {
  /** Pass as Fastify's `logger` option. */
  logger: { level: string, stream: Writable }
  lines: LogLine[]
  /** Lines carrying the given security event. */
  events (name: string): LogLine[]
  /** Resolves when a line matching the predicate arrives (or rejects after `timeout` ms). */
  waitFor (predicate: (line: LogLine) => boolean, timeout?: number): Promise<LogLine>
}

export function captureLogs (level = 'info'): LogCapture {
  const lines: LogLine[] = []
  const waiters: Array<{ predicate: (line: LogLine) => boolean, resolve: (line: LogLine) => void }> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text.trim() === '') continue
        const line = JSON.parse(text) as LogLine
        lines.push(line)
        for (let i = waiters.length - 1; i >= 0; i--) {
          const waiter = waiters[i]
          if (waiter !== undefined && waiter.predicate(line)) {
            waiters.splice(i, 1)
            waiter.resolve(line)
          }
        }
      }
      callback()
    }
  })
  return {
    logger: { level, stream },
    lines,
    events: (name) => lines.filter((line) => line.securityEvent === name),
    waitFor (predicate, timeout = 10_000) {
      const found = lines.find(predicate)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('timed out waiting for a log line')), timeout)
        waiters.push({ predicate, resolve: (line) => { clearTimeout(timer); resolve(line) } })
      })
    }
  }
}
