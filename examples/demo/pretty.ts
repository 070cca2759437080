/**
 * Readable logs for a terminal: pino's JSON lines as `12:00:01 INFO  message key=value`, colours
 * when the terminal has them. The demo uses it when stdout is a TTY; piped or in a container, the
 * JSON lines stay as they are, for machines.
 */
import { Writable } from 'node:stream'

const LEVELS: Record<number, [string, string]> = {
  10: ['TRACE', '\u001b[90m'],
  20: ['DEBUG', '\u001b[36m'],
  30: ['INFO ', '\u001b[32m'],
  40: ['WARN ', '\u001b[33m'],
  50: ['ERROR', '\u001b[31m'],
  60: ['FATAL', '\u001b[35m']
}
const RESET = '\u001b[0m'
const DIM = '\u001b[2m'
// Fields every line carries, or that the message already says.
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'reqId', 'secureHttps'])

function value (field: unknown): string {
  if (typeof field === 'string') return /\s/.test(field) ? JSON.stringify(field) : field
  return JSON.stringify(field)
}

/** One JSON log line as text. */
export function prettyLine (line: string, colours: boolean): string {
  let entry: Record<string, unknown>
  try {
    entry = JSON.parse(line) as Record<string, unknown>
  } catch {
    return line
  }
  const [name, colour] = LEVELS[entry.level as number] ?? ['LOG  ', '']
  const time = new Date(typeof entry.time === 'number' ? entry.time : Date.now()).toTimeString().slice(0, 8)
  const err = entry.err as { message?: string, stack?: string } | undefined
  const extras = Object.entries(entry)
    .filter(([key]) => !HIDDEN.has(key) && key !== 'err')
    .map(([key, field]) => `${key}=${value(field)}`)
  let text = `${colours ? DIM : ''}${time}${colours ? RESET : ''} ${colours ? colour : ''}${name}${colours ? RESET : ''} ${String(entry.msg ?? '')}`
  if (extras.length > 0) text += ` ${colours ? DIM : ''}${extras.join(' ')}${colours ? RESET : ''}`
  if (err?.stack !== undefined) text += `\n${err.stack}`
  else if (err?.message !== undefined) text += ` (${err.message})`
  return text
}

/** A stream for Fastify's `logger.stream` that writes pretty lines to `out`. */
export function prettyStream (out: NodeJS.WriteStream): Writable {
  const colours = out.hasColors?.() === true
  let partial = ''
  return new Writable({
    write (chunk: Buffer, _encoding, callback) {
      const lines = (partial + chunk.toString('utf8')).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) if (line !== '') out.write(`${prettyLine(line, colours)}\n`)
      callback()
    }
  })
}
