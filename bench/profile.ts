/**
 * Reading a V8 CPU profile (the `.cpuprofile` format of `node --cpu-prof` and the inspector) into
 * "what costs what per request": sampled time grouped by where it was spent (a package, a part of
 * Node, one of the suite's modules, GC, native work with no JavaScript on the stack), divided by
 * the responses served while the profiler ran.
 * @internal
 */
import { relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}

/** The parts of a `.cpuprofile` used here. @internal */
export interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** Per-request costs of one profiled variant. @internal */
export interface ProfileReport {
  variant: string
  requests: number
  /** Server CPU µs per request from process.cpuUsage (all threads). */
  processPerRequest: number
  /** Sampled, non-idle µs per request on the main thread. */
  sampledPerRequest: number
  /** Self time by place, µs per request, largest first. */
  places: Array<{ place: string, perRequest: number }>
  /** Inclusive time of the suite's and the session/header libraries' functions, µs per request. */
  functions: Array<{ name: string, perRequest: number }>
}

/** Packages whose functions are listed with their inclusive time. */
const WATCHED = new Set(['@fastify/secure-session', '@fastify/cookie', 'cookie', 'sodium-native', '@fastify/helmet', 'helmet'])
const SUITE = 'fastify-secure-https'

function place (frame: CallFrame, root: string): string {
  const { url, functionName } = frame
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC'
    if (functionName === '(program)') return 'native, no JS on the stack (TLS records, sockets, libuv)'
    if (functionName === '(idle)' || functionName === '(root)') return 'idle'
    return 'V8 builtins and native bindings'
  }
  const modules = url.lastIndexOf('/node_modules/')
  if (modules !== -1) {
    const parts = url.slice(modules + '/node_modules/'.length).split('/')
    return (parts[0] ?? '').startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] ?? url)
  }
  if (url.startsWith('node:')) {
    const name = url.slice(5).replace(/^internal\//, '').split('/')[0]?.replace(/\.js$/, '') ?? url
    return `node:${name}`
  }
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  const rel = relative(root, path).split(sep).join('/')
  if (rel.startsWith('dist/bench/')) return 'bench routes and control'
  if (rel.startsWith('dist/')) return `${SUITE} ${rel.slice(5).replace(/\.js$/, '')}`
  return url
}

/** Fastify's hook chain moving on to the next hook (or the handler, or the reply). */
function isContinuation (frame: CallFrame): boolean {
  return frame.url.endsWith('/node_modules/fastify/lib/hooks.js') && (frame.functionName === 'next' || frame.functionName === 'handleResolve')
}

function frameName (frame: CallFrame, root: string): string {
  const where = place(frame, root)
  const file = frame.url.slice(frame.url.lastIndexOf('/') + 1)
  return `${frame.functionName === '' ? '(anonymous)' : frame.functionName} (${where.startsWith(SUITE) ? where : `${where} ${file}`}:${frame.lineNumber + 1})`
}

/** Groups a profile's samples into per-request costs. @internal */
export function analyseProfile (profile: CpuProfile, variant: string, requests: number, processPerRequest: number, root: string): ProfileReport {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map<number, number>()
  const { samples, timeDeltas } = profile
  for (let i = 0; i < samples.length; i++) {
    // A sample stands for the time until the next one.
    const duration = i + 1 < timeDeltas.length ? timeDeltas[i + 1] as number : 0
    const id = samples[i] as number
    self.set(id, (self.get(id) ?? 0) + Math.max(0, duration))
  }

  const places = new Map<string, number>()
  let sampled = 0
  for (const [id, time] of self) {
    const node = byId.get(id)
    if (node === undefined) continue
    const where = place(node.callFrame, root)
    if (where === 'idle') continue
    sampled += time
    places.set(where, (places.get(where) ?? 0) + time)
  }

  // Inclusive time of watched functions: every sample below a frame counts once for it, even when
  // the function recurses. A hook calls `done()` synchronously, so the rest of the request (the
  // next hooks, the handler, the reply) runs below it on the stack: a sample is not counted for
  // the frames above Fastify's hook continuation (`next` in fastify/lib/hooks.js).
  const inclusive = new Map<string, number>()
  const parents = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id)
  for (const [id, time] of self) {
    const seen = new Set<string>()
    for (let current: number | undefined = id; current !== undefined; current = parents.get(current)) {
      const frame = byId.get(current)?.callFrame
      if (frame === undefined) continue
      if (isContinuation(frame)) break
      const where = place(frame, root)
      if (!where.startsWith(SUITE) && !WATCHED.has(where)) continue
      const name = frameName(frame, root)
      if (seen.has(name)) continue
      seen.add(name)
      inclusive.set(name, (inclusive.get(name) ?? 0) + time)
    }
  }

  return {
    variant,
    requests,
    processPerRequest,
    sampledPerRequest: sampled / requests,
    places: [...places].map(([p, time]) => ({ place: p, perRequest: time / requests })).sort((a, b) => b.perRequest - a.perRequest),
    functions: [...inclusive].map(([name, time]) => ({ name, perRequest: time / requests })).sort((a, b) => b.perRequest - a.perRequest)
  }
}

const f1 = (n: number): string => n.toFixed(1)

/** Markdown: one table of places across variants, then each variant's costliest watched functions. @internal */
export function profileMarkdown (reports: ProfileReport[], placesShown = 16, functionsShown = 12): string[] {
  const totals = new Map<string, number>()
  for (const report of reports) for (const { place: p, perRequest } of report.places) totals.set(p, Math.max(totals.get(p) ?? 0, perRequest))
  const rows = [...totals].sort((a, b) => b[1] - a[1]).map(([p]) => p)
  const shown = rows.slice(0, placesShown)
  const lines = [
    '#### Self time by place, µs per request (main thread)',
    '',
    `| place | ${reports.map((r) => r.variant).join(' | ')} |`,
    `|---|${reports.map(() => '---:').join('|')}|`
  ]
  const cell = (report: ProfileReport, p: string): string => {
    const entry = report.places.find((x) => x.place === p)
    return entry === undefined ? '' : f1(entry.perRequest)
  }
  for (const p of shown) lines.push(`| ${p} | ${reports.map((r) => cell(r, p)).join(' | ')} |`)
  const rest = rows.slice(placesShown)
  if (rest.length > 0) {
    lines.push(`| other (${rest.length} places) | ${reports.map((r) => f1(r.places.filter((x) => rest.includes(x.place)).reduce((sum, x) => sum + x.perRequest, 0))).join(' | ')} |`)
  }
  lines.push(`| **sampled total** | ${reports.map((r) => `**${f1(r.sampledPerRequest)}**`).join(' | ')} |`)
  lines.push(`| process CPU (all threads, cpuUsage) | ${reports.map((r) => f1(r.processPerRequest)).join(' | ')} |`)
  for (const report of reports) {
    if (report.functions.length === 0) continue
    lines.push('', `#### ${report.variant}: the suite's and the session/header libraries' functions, inclusive µs per request`, '', '| function | µs/req |', '|---|---:|')
    for (const fn of report.functions.slice(0, functionsShown)) lines.push(`| \`${fn.name}\` | ${f1(fn.perRequest)} |`)
  }
  return lines
}
