/**
 * Scrapes a Prometheus endpoint over a real socket and reads the exposition text: samples by name
 * and labels, and the HELP/TYPE lines that say a metric exists.
 */
import { request } from './http.ts'

/** One sample: `name{labels} value`. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** A scrape: its samples, the metric names it declares (# TYPE), and the raw text. */
export interface Scrape {
  text: string
  contentType: string
  types: Map<string, string>
  samples: Sample[]
  /** The value of the one sample with this name whose labels include `labels`; undefined when none. */
  value (name: string, labels?: Record<string, string>): number | undefined
}

function parseLabels (text: string): Record<string, string> {
  const labels: Record<string, string> = {}
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf('=', i)
    if (eq === -1) break
    const key = text.slice(i, eq).trim().replace(/^,/, '').trim()
    let j = eq + 2 // past ="
    let value = ''
    while (j < text.length && text[j] !== '"') {
      if (text[j] === '\\') {
        const next = text[j + 1]
        value += next === 'n' ? '\n' : (next ?? '')
        j += 2
      } else {
        value += text[j]
        j++
      }
    }
    labels[key] = value
    i = j + 1
  }
  return labels
}

/** Parses the Prometheus text exposition format. */
export function parseExposition (text: string, contentType = ''): Scrape {
  const types = new Map<string, string>()
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ')
      if (name !== undefined && type !== undefined) types.set(name, type)
      continue
    }
    if (line === '' || line.startsWith('#')) continue
    const brace = line.indexOf('{')
    const space = line.lastIndexOf(' ')
    if (brace !== -1 && brace < space) {
      const close = line.lastIndexOf('}')
      samples.push({ name: line.slice(0, brace), labels: parseLabels(line.slice(brace + 1, close)), value: Number(line.slice(close + 1).trim()) })
    } else {
      samples.push({ name: line.slice(0, space), labels: {}, value: Number(line.slice(space + 1)) })
    }
  }
  return {
    text,
    contentType,
    types,
    samples,
    value (name, labels = {}) {
      const found = samples.filter((sample) => sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v))
      if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
      return found[0]?.value
    }
  }
}

/** GETs the metrics endpoint (http://127.0.0.1:PORT/metrics) and parses it; throws unless 200. */
export async function scrape (port: number, host = '127.0.0.1'): Promise<Scrape> {
  const response = await request(`http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`)
  if (response.status !== 200) throw new Error(`scrape of port ${port}: ${response.status} ${response.body}`)
  return parseExposition(response.body, String(response.headers['content-type']))
}

/** Scrapes until `check` holds (an event handled asynchronously), or fails after `timeout` ms. */
export async function scrapeUntil (port: number, check: (scrape: Scrape) => boolean, what: string, timeout = 10_000): Promise<Scrape> {
  const end = Date.now() + timeout
  let last: Scrape | null = null
  while (Date.now() < end) {
    last = await scrape(port)
    if (check(last)) return last
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`metrics: ${what} not seen within ${timeout} ms; last scrape:\n${last?.text ?? '(none)'}`)
}
