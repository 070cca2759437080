/**
 * The instruction counter (bench/count.ts): its readers of callgrind's files and its table
 * (bench/count-report.ts), and a short run end to end under valgrind (dist/bench/count.js; `npm
 * test` builds first). Counts are not times: a server that does more work executes more instructions on any machine, however
 * loaded, so the end-to-end run can check the order of its figures.
 */
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { compilingWarnings, countTable, dumpFiles, dumpTotal, type CountResult } from '../bench/count-report.ts'
import { requirePrograms } from './helpers/external.ts'

const COUNTER = fileURLToPath(new URL('../dist/bench/count.js', import.meta.url))

t.test('dumpTotal reads the summary or totals line, and refuses a file with neither', async (t) => {
  t.equal(dumpTotal('# callgrind format\nversion: 1\nevents: Ir\nsummary: 427601066\n\nfn=(1) main\n16 3\ntotals: 427601066\n'), 427601066)
  t.equal(dumpTotal('events: Ir\nfn=(1) main\n16 3\ntotals: 12\n'), 12, 'totals alone (a dump written without summary)')
  t.throws(() => dumpTotal('events: Ir\nfn=(1) main\n16 3\n'), /not a callgrind dump/)
  t.throws(() => dumpTotal(''), /not a callgrind dump/, 'an empty file is not a count of 0')
  t.equal(dumpTotal('cmd: node summary: 5\nsummary: 7\n'), 7, 'only a line that starts with it')
})

t.test('dumpFiles picks one dump of every thread, never the counts written at exit', async (t) => {
  const names = ['w.out', 'w.out-01', 'w.out-02', 'w.out.1-01', 'w.out.1-03', 'w.out.1-02', 'w.out.2-01', 'w.out.2-04', 'w.out.1-01.bak', 'v.out.1-01', 'certs']
  t.same(dumpFiles(names, 'w.out', 1), { main: 'w.out.1-01', all: ['w.out.1-01', 'w.out.1-02', 'w.out.1-03'] })
  t.same(dumpFiles(names, 'w.out', 2), { main: 'w.out.2-01', all: ['w.out.2-01', 'w.out.2-04'] })
  t.throws(() => dumpFiles(names, 'w.out', 3), /no dump of the main thread \(w\.out\.3-01\)/)
  t.throws(() => dumpFiles(['w.out.1-02'], 'w.out', 1), /main thread/, 'a dump without the main thread is refused')
})

t.test('countTable: ratios to bare, the idle share taken off, the before-and-after line', async (t) => {
  const results: CountResult[] = [
    { variant: 'bare', requests: 10, main: 100_000, all: 130_000, idle: 1000, seconds: 1 },
    { variant: 'suite-write', requests: 10, main: 160_000, all: 259_000, idle: 1000, seconds: 1 },
    { variant: 'baseline-write', requests: 10, main: 200_000, all: 289_000, idle: 1000, seconds: 1 }
  ]
  const lines = countTable(results)
  t.match(lines[0], /^\| variant \| instructions\/req, all threads \| × bare \|/)
  t.equal(lines[2], '| bare | 130,000 | 1.000× | 100,000 | 1.000× | 1,000 | 129,000 | 1.000× |')
  t.equal(lines[3], '| suite-write | 259,000 | 1.992× | 160,000 | 1.600× | 1,000 | 258,000 | 2.000× |')
  t.ok(lines.includes('write: this build executes 0.896× the --baseline build\'s instructions (all threads less idle), 0.800× on the main thread.'), lines.join('\n'))
  t.match(countTable(results.slice(1))[2], /\| suite-write \| 259,000 \| n\/a \|/, 'without bare, no ratio')
})

t.test('compilingWarnings names a variant whose other threads were still compiling', async (t) => {
  const quiet: CountResult = { variant: 'suite-read', requests: 3000, main: 112_338, all: 113_030, idle: 263, seconds: 60 }
  const compiling: CountResult = { variant: 'suite-read', requests: 3000, main: 119_849, all: 169_501, idle: 357, seconds: 60 }
  t.same(compilingWarnings([quiet]), [], 'about 400 a request on the other threads is the collector: no warning')
  const [warning] = compilingWarnings([quiet, compiling])
  t.match(warning, /^suite-read: the other threads executed 49,295 instructions a request \(41% of the main thread's\)/)
  const round: CountResult = { variant: 'suite-write', requests: 3000, main: 100_000, all: 105_300, idle: 300, seconds: 60 }
  t.same(compilingWarnings([round]), [], 'at the share itself (5,000 of 100,000), no warning')
  t.equal(compilingWarnings([{ ...round, all: 105_301 }]).length, 1, 'above it, one')
})

function count (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  // Without coverage in the servers (see bench-run.test.ts): it slows their start-up under valgrind.
  const env = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }
  return new Promise((resolve) => {
    execFile(process.execPath, [COUNTER, ...args], { env, timeout: 300_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr })
    })
  })
}

t.test('count.js refuses bad options with exit 2, naming the option and the fix', { skip: existsSync(COUNTER) ? false : 'dist/bench/count.js is missing: npm run build' }, async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--warmup', 'x'], /--warmup takes a whole number of at least 0 \(got x\)/],
    [['--requests', '0'], /--requests takes a whole number of at least 1 \(got 0\)/],
    [['--only', 'suite-read,nope'], /--only: unknown variant nope/],
    [['--only', 'baseline-read'], /the baseline variants need --baseline PATH/],
    [['--baseline', '/nonexistent/checkout'], /--baseline: \/nonexistent\/checkout\/dist\/index\.js does not exist; build the other checkout first/],
    [['--bogus'], /Unknown option '--bogus'/]
  ]
  const outcomes = await Promise.all(cases.map(([args]) => count(args)))
  cases.forEach(([args, message], i) => {
    const outcome = outcomes[i] as { code: number, stderr: string }
    t.equal(outcome.code, 2, `${args.join(' ')}: exit 2`)
    t.match(outcome.stderr, message)
  })
  const help = await count(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /--keep DIR/, '--help lists the options')
})

t.test('a short count under valgrind: numbers for every variant, the suite\'s write above bare Fastify, the --baseline build beside it', { skip: existsSync(COUNTER) ? false : 'dist/bench/count.js is missing: npm run build' }, async (t) => {
  if (requirePrograms(t, ['valgrind', 'callgrind_control']) === null) return
  // With --baseline: this checkout's own build counted again as the "before" of a change.
  const root = fileURLToPath(new URL('..', import.meta.url))
  const keep = join(t.testdir(), 'counts')
  const { code, stdout, stderr } = await count(['--warmup', '300', '--requests', '40', '--only', 'suite-write,baseline-write', '--baseline', root, '--keep', keep])
  // 300 requests do not finish the JIT's work: exit 3 and a warning say so; the counts are printed still.
  t.ok(code === 0 || (code === 3 && /warning: .*the JIT was still compiling/.test(stderr)), `exit ${code}: ${stderr}`)
  const row = (name: string): number[] => {
    const line = stdout.split('\n').find((l) => l.startsWith(`| ${name} |`))
    if (line === undefined) throw new Error(`no row for ${name} in:\n${stdout}`)
    return line.split('|').slice(2, -1).map((cell) => Number(cell.trim().replace(/[,×]/g, '')))
  }
  const bare = row('bare')
  const write = row('suite-write')
  t.ok([...bare, ...write].every((n) => Number.isFinite(n)), `every cell a number: ${bare.join(' ')} / ${write.join(' ')}`)
  // all threads, × bare, main, × bare, idle, less idle, × bare
  t.ok((bare[0] as number) > 50_000, `bare Fastify executes tens of thousands of instructions a request over TLS (${bare[0]})`)
  t.ok((write[2] as number) > (bare[2] as number), `the write's main thread (${write[2]}) does more than bare Fastify's (${bare[2]})`)
  t.ok((write[5] as number) > (bare[5] as number), 'and so does the whole process, idle work taken off')
  t.ok((write[4] as number) >= 0 && (write[4] as number) < (write[0] as number), 'the idle share is a part of the whole')
  t.match(stderr, /suite-write: [\d,]+ instructions a request/)
  const before = row('baseline-write')
  t.ok(before.every((n) => Number.isFinite(n)) && (before[0] as number) > (bare[0] as number), `the --baseline build's write counted too: ${before.join(' ')}`)
  const kept = readdirSync(keep)
  for (const variant of ['bare', 'suite-write', 'baseline-write']) {
    t.ok(kept.includes(`${variant}.out.1-01`) && kept.includes(`${variant}.out.2-01`), `--keep: ${variant}'s counted and idle dumps (${kept.length} files)`)
    const map = kept.includes(`${variant}.perf.map`) ? readFileSync(join(keep, `${variant}.perf.map`), 'utf8') : ''
    t.match(map, /^[0-9a-f]+ [0-9a-f]+ JS:/m, `--keep: ${variant}'s perf map names the JIT's code`)
  }
  t.match(stdout, /^write: this build executes \d+\.\d{3}× the --baseline build's instructions \(all threads less idle\), \d+\.\d{3}× on the main thread\.$/m, 'with the before-and-after line')
})
