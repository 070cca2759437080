/**
 * `check --timeout` and checkSite's `timeout` stop at 2147483647 ms, the longest a Node timer takes:
 * a longer one fired after 1 ms (with a TimeoutOverflowWarning), so every probe "timed out" at once.
 */
import t from 'tap'
import { checkSite } from '../index.ts'
import { main } from '../bin/cli.ts'
import { freePort } from './helpers/app.ts'

async function run (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await main(args, { out: (text) => { stdout += text }, err: (text) => { stderr += text } })
  return { code, stdout, stderr }
}

t.test('--timeout above 2147483647 is a usage error that names the option and its maximum', async (t) => {
  for (const value of ['2147483648', '9999999999999', '99999999999999999999']) {
    const result = await run(['check', 'https://127.0.0.1:1/', '--timeout', value])
    t.equal(result.code, 2, value)
    t.equal(result.stderr, `fastify-secure-https: --timeout must be a whole number from 1 to 2147483647 (got "${value}")\nRun "fastify-secure-https check --help" for usage.\n`)
  }
  // The maximum itself is taken: a refused port answers at once.
  const port = await freePort()
  const longest = await run(['check', `https://127.0.0.1:${port}/`, '--timeout', '2147483647'])
  t.equal(longest.code, 1, 'the check runs')
  t.match(longest.stderr, /connection refused/)
})

t.test('checkSite refuses a timeout a timer cannot hold, naming it and the range', async (t) => {
  for (const timeout of [2 ** 31, 1e12, Infinity, Number.NaN, 0, -5, 1.5]) {
    await t.rejects(checkSite('https://127.0.0.1:1/', { timeout }), { name: 'TypeError', message: /^timeout .* must be a whole number of milliseconds from 1 to 2147483647$/ }, String(timeout))
  }
  const port = await freePort()
  const report = await checkSite(`https://127.0.0.1:${port}/`, { timeout: 2147483647 })
  t.equal(report.reachable, false, 'the maximum is taken')
})
