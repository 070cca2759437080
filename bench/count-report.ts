/**
 * The pure parts of the instruction counter (count.ts): reading callgrind's dump files and the
 * report's table. Kept apart so that the tests import them without the script.
 * @internal
 */

/**
 * The instructions of one callgrind dump file: its `summary:` line (callgrind writes `totals:`
 * too; older versions only one of them). Throws on a file without either: a count read as 0
 * would look like a miracle. @internal
 */
export function dumpTotal (text: string): number {
  const match = /^(?:summary|totals): (\d+)/m.exec(text)
  if (match === null) throw new Error('not a callgrind dump: no summary or totals line')
  return Number(match[1])
}

/**
 * The files of dump `part` (the first `-d` is 1) of a run with `--separate-threads=yes`:
 * `OUT.1-01` (the main thread), `OUT.1-02` and so on; the counts callgrind writes again at exit
 * (`OUT-01`, ...) are not among them. @internal
 */
export function dumpFiles (names: readonly string[], base: string, part: number): { main: string, all: string[] } {
  const prefix = `${base}.${part}-`
  const all = names.filter((name) => name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length))).sort()
  const main = all.find((name) => name === `${prefix}01`)
  if (main === undefined) throw new Error(`no dump of the main thread (${prefix}01) among ${names.length} files`)
  return { main, all }
}

/** One variant's counts, per measured request. @internal */
export interface CountResult {
  variant: string
  requests: number
  /** Main thread (JavaScript, the TLS and HTTP work of the event loop). */
  main: number
  /** Every thread: the main one, plus V8's garbage collection and compiler helpers and libuv's pool. */
  all: number
  /** Every thread, in a window as long as the counted one with no request: the process's own timers. */
  idle: number
  /** How long the counted requests took, under valgrind. */
  seconds: number
}

/** The report: a table of counts and ratios to bare Fastify. @internal */
export function countTable (results: readonly CountResult[]): string[] {
  const bare = results.find((r) => r.variant === 'bare')
  const ratio = (value: number, base: number | undefined): string => base === undefined ? 'n/a' : `${(value / base).toFixed(3)}×`
  const n = (value: number): string => Math.round(value).toLocaleString('en-US')
  const lines = [
    '| variant | instructions/req, all threads | × bare | main thread | × bare | idle as long, per req | all threads less idle | × bare |',
    '|---|---:|---:|---:|---:|---:|---:|---:|'
  ]
  for (const r of results) {
    lines.push(`| ${r.variant} | ${n(r.all)} | ${ratio(r.all, bare?.all)} | ${n(r.main)} | ${ratio(r.main, bare?.main)} | ${n(r.idle)} | ${n(r.all - r.idle)} | ${ratio(r.all - r.idle, bare === undefined ? undefined : bare.all - bare.idle)} |`)
  }
  for (const kind of ['anonymous', 'read', 'write'] as const) {
    const suite = results.find((r) => r.variant === `suite-${kind}`)
    const before = results.find((r) => r.variant === `baseline-${kind}`)
    if (suite !== undefined && before !== undefined) {
      lines.push('', `${kind}: this build executes ${ratio(suite.all - suite.idle, before.all - before.idle)} the --baseline build's instructions (all threads less idle), ${ratio(suite.main, before.main)} on the main thread.`)
    }
  }
  return lines
}

/**
 * Variants whose other threads (V8's compiler and collector helpers, libuv's pool), idle share
 * taken off, executed more than `share` of the main thread's instructions: the JIT was still
 * compiling in the counted window. Tiering waits for background compile jobs, which a loaded
 * machine delays: the same build counted 119,849 instructions a read on the main thread and
 * 50,000 on the others during a CI run, against 112,338 and 700 on a quiet machine. @internal
 */
export function compilingWarnings (results: readonly CountResult[], share = 0.05): string[] {
  return results
    .filter((r) => r.all - r.idle - r.main > share * r.main)
    .map((r) => `${r.variant}: the other threads executed ${Math.round(r.all - r.idle - r.main).toLocaleString('en-US')} instructions a request (${Math.round(100 * (r.all - r.idle - r.main) / r.main)}% of the main thread's): the JIT was still compiling. Count again on a quieter machine, or with more --warmup.`)
}
