/**
 * Log lines kept for assertions: from a Fastify logger in this process (`captureLogs`) or from a
 * child process's JSON output (`lineLog`, fed by the caller).
 */
import { Writable } from 'node:stream'

export interface LogLine {
  level: number
  msg?: string
  securityEvent?: string
  [key: string]: unknown
}

/** Lines received so far, with the queries the tests make of them. */
export interface LineLog {
  lines: LogLine[]
  /** Adds JSON text (one or more lines; a line cut in two is kept until its end arrives). */
  write (text: string): void
  /** Lines carrying the given security event. */
  events (name: string): LogLine[]
  /** Resolves when a line matching the predicate arrives (or rejects after `timeout` ms). */
  waitFor (predicate: (line: LogLine) => boolean, timeout?: number): Promise<LogLine>
}

/** A line log; `describe` adds context (the process's output) to a timeout error. */
export function lineLog (describe: () => string = () => '', defaultTimeout = 30_000): LineLog {
  const lines: LogLine[] = []
  const waiters: Array<{ predicate: (line: LogLine) => boolean, resolve: (line: LogLine) => void }> = []
  let partial = ''
  return {
    lines,
    write (text) {
      const parts = (partial + text).split('\n')
      partial = parts.pop() ?? ''
      for (const part of parts) {
        let line: LogLine
        try { line = JSON.parse(part) as LogLine } catch { continue }
        lines.push(line)
        for (let i = waiters.length - 1; i >= 0; i--) {
          const waiter = waiters[i]
          if (waiter !== undefined && waiter.predicate(line)) {
            waiters.splice(i, 1)
            waiter.resolve(line)
          }
        }
      }
    },
    events: (name) => lines.filter((line) => line.securityEvent === name),
    waitFor (predicate, timeout = defaultTimeout) {
      const found = lines.find(predicate)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for a log line${describe()}`)), timeout)
        waiters.push({ predicate, resolve: (line) => { clearTimeout(timer); resolve(line) } })
      })
    }
  }
}

export interface LogCapture extends Omit<LineLog, 'write'> {
  /** Pass as Fastify's `logger` option. */
  logger: { level: string, stream: Writable }
}

/** A Fastify logger that keeps every line. */
export function captureLogs (level = 'info'): LogCapture {
  const log = lineLog()
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      log.write(chunk.toString('utf8'))
      callback()
    }
  })
  return { logger: { level, stream }, lines: log.lines, events: log.events, waitFor: log.waitFor }
}
