/**
 * .ci/run repeats every failed assertion in its summary, under the tests that hold it and with the
 * first lines of its diagnostic, because only the end of a long CI log may be kept. The function is
 * taken from the script itself and run on what tap 21 printed for failing files
 * (test/fixtures/ci-failed-run.tap: failed assertions, a crash, an exit, a timeout).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'

const script = readFileSync(new URL('../.ci/run', import.meta.url), 'utf8')
const fixture = new URL('fixtures/ci-failed-run.tap', import.meta.url)

function failures (log: string): string {
  const definition = /^failures \(\) \{\n[\s\S]*?\n\}\n/m.exec(script)?.[0]
  if (definition === undefined) throw new Error('.ci/run defines no failures () function')
  const dir = mkdtempSync(join(tmpdir(), 'secure-https-ci-'))
  try {
    const file = join(dir, 'run.tap')
    writeFileSync(file, log)
    return execFileSync('bash', ['-c', `${definition}\nfailures "$1"`, 'bash', file], { encoding: 'utf8' })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

t.test('each failed assertion is named with the tests around it, once', async (t) => {
  const out = failures(readFileSync(fixture, 'utf8'))
  const named = out.split('\n').filter((line) => line.startsWith('not ok: '))
  t.same(named, [
    'not ok: test/crash.test.mjs > listen EADDRINUSE: address already in use 127.0.0.1:8443',
    'not ok: test/example.test.mjs > sessions > a tampered cookie > is a fresh session',
    'not ok: test/example.test.mjs > headers > frame options',
    'not ok: test/exit.test.mjs > quits > test unfinished',
    'not ok: test/hang.test.mjs > waits for the reload > timeout!',
    'not ok: timeout!',
  ], 'the subtests that only close over a failure are not repeated')
  t.match(out, /not ok: test\/example\.test\.mjs > headers > frame options\n {4}diff: \|\n {6}--- expected\n {6}\+\+\+ actual\n/, 'the diagnostic follows, its indentation kept relative to it')
  t.match(out, /\n {4}tapCaught: unhandledRejection\n/, 'a crash says what tap caught')
  t.match(out, /not ok: timeout!\n {4}expired: test\/hang\.test\.mjs/, 'a file that timed out is named')
  for (const block of out.split(/^not ok: .*\n/m).slice(1)) {
    t.ok(block.split('\n').filter((line) => line !== '').length <= 14, 'at most 14 lines of diagnostic each')
  }
})

t.test('a run that passed prints nothing', async (t) => {
  const passed = [
    'TAP version 14',
    '# Subtest: test/hsts.test.ts',
    '    # Subtest: the header is set',
    '        ok 1 - should be equal',
    '        1..1',
    '    ok 1 - the header is set # time=3.1ms',
    '    1..1',
    'ok 1 - test/hsts.test.ts # time=10ms',
    '# { total: 1, pass: 1 }',
    '',
  ].join('\n')
  t.equal(failures(passed), '')
})

t.test('the summary repeats the failures before the counts, and the failures are computed on every run', async (t) => {
  const summary = script.indexOf('echo "=== Summary"')
  const repeated = script.indexOf('printf \'%s\\n\' "$' + '{failed_lists[@]}"')
  t.ok(repeated > 0 && repeated < summary, 'the list is printed just before the summary')
  t.equal(script.match(/failures "\$log" >"\$log\.failures"/g)?.length, 2, 'after the whole suite and after each lightweight run')
})
