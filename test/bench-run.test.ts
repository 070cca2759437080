/**
 * The benchmark runner end to end, briefly (dist/bench/run.js; `npm test` builds first): a
 * `--check` run starts its servers, checks their sample answers, measures every round and prints a
 * verdict. Nothing here depends on how fast the machine is: the exit code may be 0, 1 or 2
 * depending on the neighbours, but the report must be complete and its figures must be numbers.
 * What the suite costs is measured by `node dist/bench/run.js`, never by a test.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const RUNNER = fileURLToPath(new URL('../dist/bench/run.js', import.meta.url))

interface Outcome { code: number, stdout: string, stderr: string }

/**
 * The runner and its servers run without coverage (the documented switch of @tapjs/processinfo,
 * which tap passes down to every child process): collecting it slows each server's start-up
 * several times over on a busy machine, and the benchmark's code is covered by its unit tests.
 */
const env = { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }

function run (args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [RUNNER, ...args], { env, timeout: 170_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      resolve({ code, stdout, stderr })
    })
  })
}

t.test('a short --check run measures every round and prints a verdict', { skip: existsSync(RUNNER) ? false : 'dist/bench/run.js is missing: npm run build' }, async (t) => {
  // With --baseline: this checkout's own build measured again as the "before" of a change (the
  // runner neither knows nor cares), to show the before-and-after line.
  const root = fileURLToPath(new URL('..', import.meta.url))
  const { code, stdout, stderr } = await run(['--check', '--rounds', '3', '--duration', '0.5', '--warmup', '0', '--no-write', '--baseline', root])
  t.notMatch(stderr, /\[bench\] failed/, 'the run was made')
  t.ok([0, 1, 2].includes(code), `exit code ${code} is a verdict`)
  // --check measures --paired: every variant once per round, in a window shared with bare.
  for (const variant of ['control', 'suite-anonymous', 'suite-read', 'suite-write', 'baseline-anonymous', 'baseline-read', 'baseline-write']) {
    const windows = [...stderr.matchAll(new RegExp(`\\] round \\d/3 ${variant} +[\\d.,]+ µs/req against bare +[\\d.,]+ \\(bare (first|second)\\): [\\d.]+×`, 'g'))]
    t.equal(windows.length, 3, `${variant} measured once per round, beside bare`)
    const orders = windows.map((w) => w[1])
    t.ok(orders[0] !== orders[1] && orders[0] === orders[2], `${variant}: which load starts first alternates round to round (${orders.join(', ')})`)
  }
  t.match(stdout, /^- Method: 3 rounds; in each, every variant measured once for 0\.5 s in a window it shares with bare Fastify \(--paired/m, 'the report says how it measured')
  const ratio = '(\\d+\\.\\d\\d)× \\(IQR (\\d+\\.\\d\\d)–(\\d+\\.\\d\\d), range (\\d+\\.\\d\\d)–(\\d+\\.\\d\\d)\\)'
  for (const label of ['control \\(bare again\\)', 'anonymous ≤ 1.25×', 'session read ≤ 1.6×', 'session write ≤ 2×']) {
    const match = new RegExp(`^${label}\\s+${ratio}`, 'm').exec(stdout)
    t.ok(match, `${label} reported`)
    const [median, q1, q3, min, max] = (match?.slice(1) ?? []).map(Number) as [number, number, number, number, number]
    t.ok(min > 0 && min <= q1 && q1 <= median && median <= q3 && q3 <= max, `${label}: ordered positive figures`)
  }
  const verdict = /^verdict\s+(.*)$/m.exec(stdout)?.[1] ?? ''
  t.match(verdict, code === 2 ? /^NOT TRUSTWORTHY \(exit 2\): / : new RegExp(`^trustworthy run; .*\\(exit ${code}\\)$`), 'the verdict line agrees with the exit code')
  t.match(stdout, /^- Other processes during the 21 measured windows/m, 'the machine\'s load is reported, once per shared window')
  t.match(stdout, /^\| suite-write \| [\d.,]+ \| [\d.]+× \| [\d.]+–[\d.]+ \| [\d.]+–[\d.]+ \| ≤ 2: (PASS|\*\*FAIL\*\*) \| \d+% \(min \d+%\) \|/m, 'the table has the target and saturation columns')
  t.match(stdout, /^\| suite-write \| .* \| (yes|no) \| \d+\.\d\d \|$/m, 'the table ends with the context switches per request')
  t.match(stdout, /^switches\/req \(median\)\s+bare \d+\.\d\d, control \d+\.\d\d, suite-anonymous \d+\.\d\d, suite-read \d+\.\d\d, suite-write \d+\.\d\d/m, 'and the summary gives them for every variant')
  t.match(stdout, /^\| \d{4}-\d\d-\d\d \| \w+/m, 'a row for the before-and-after table')
  for (const kind of ['anonymous', 'read', 'write']) {
    t.match(stdout, new RegExp(`^- ${kind}: the suite as built here costs \\d+\\.\\d\\d× \\(IQR [\\d.]+–[\\d.]+, range [\\d.]+–[\\d.]+\\) the --baseline build\\.$`, 'm'), `${kind}: the before-and-after line`)
  }
})

t.test('--check --sequential measures one server at a time, bare in its own window', { skip: existsSync(RUNNER) ? false : 'dist/bench/run.js is missing: npm run build' }, async (t) => {
  const { code, stdout, stderr } = await run(['--check', '--sequential', '--rounds', '3', '--duration', '0.5', '--warmup', '0', '--no-write'])
  t.notMatch(stderr, /\[bench\] failed/, 'the run was made')
  t.ok([0, 1, 2].includes(code), `exit code ${code} is a verdict`)
  for (const variant of ['bare', 'control', 'suite-anonymous', 'suite-read', 'suite-write']) {
    t.equal(stderr.match(new RegExp(`\\] round \\d/3 ${variant} +[\\d,]+ req/s +[\\d.,]+ µs/req  busy`, 'g'))?.length, 3, `${variant} measured once per round, alone`)
  }
  t.match(stdout, /^- Method: 3 rounds; in each, every variant measured once for 0\.5 s, in the round's row of a Williams design/m)
  t.match(stdout, /^- Other processes during the 15 measured windows/m)
  t.match(stdout, /^control \(bare again\)\s+\d+\.\d\d× \(IQR/m)
})

t.test('--check refuses what would not give a verdict, with exit 2', { skip: existsSync(RUNNER) ? false : 'dist/bench/run.js is missing: npm run build' }, async (t) => {
  const [rate, pins, usage, both, profile] = await Promise.all([
    run(['--check', '--rate', '1000']),
    run(['--check', '--server-cpus', '0', '--load-cpus', '0']),
    run(['--rounds', 'two']),
    run(['--check', '--paired', '--sequential']),
    run(['--profile', '--paired'])
  ])
  t.equal(rate.code, 2)
  t.match(rate.stderr, /--check judges the targets flat out/)
  t.equal(pins.code, 2)
  t.match(pins.stderr, /share CPU 0|need taskset/)
  t.equal(usage.code, 1, 'outside --check a bad option is an ordinary failure')
  t.match(usage.stderr, /--rounds must be a whole number >= 3 \(got two\)/)
  t.equal(both.code, 2)
  t.match(both.stderr, /--paired and --sequential are two ways to measure; pick one/)
  t.equal(profile.code, 1)
  t.match(profile.stderr, /--profile measures one server at a time; --paired does not apply/)
})

t.test('a server that does not start in time ends the run with the reason', { skip: existsSync(RUNNER) ? false : 'dist/bench/run.js is missing: npm run build' }, async (t) => {
  const { code, stderr } = await run(['--check', '--start-timeout', '0.001', '--no-write'])
  t.equal(code, 2, 'no verdict')
  t.match(stderr, /\[bench\] failed: \S+: the server did not start within 0\.001 s \(--start-timeout\)/)
})

t.test('--baseline refuses a checkout that is not built, with the fix', { skip: existsSync(RUNNER) ? false : 'dist/bench/run.js is missing: npm run build' }, async (t) => {
  const bad = await run(['--only', 'suite-read', '--baseline', '/nonexistent/checkout', '--rounds', '3', '--no-write'])
  t.not(bad.code, 0)
  t.match(bad.stderr, /--baseline: \/nonexistent\/checkout\/dist\/index\.js does not exist; build the other checkout first/, 'naming the option and the fix')
})
