/**
 * Every problem at once: a wrong TLS_PROFILE does not hide a missing TLS_CERT_FILE (zod skips a
 * section's cross-field checks after any of its fields fails), and REDIS_URL is read as a URL (a
 * port that is no number, or out of range, is refused before the app starts, never quoting the
 * URL, which may carry a password).
 */
import fc from 'fast-check'
import t from 'tap'
import { loadConfig } from '../index.ts'
import { redisUrlProblem } from '../schemas/common.ts'
import { configErrorOf } from './helpers/config.ts'
import { growth } from './helpers/linear.ts'

const issuesOf = (env: Record<string, string>): ReadonlyArray<{ variable?: string, message: string }> => configErrorOf(() => loadConfig(env)).issues

t.test('TLS_MODE=files with a mistyped TLS_PROFILE reports the profile and the missing files together', async (t) => {
  const issues = issuesOf({ TLS_MODE: 'files', TLS_PROFILE: 'moderne' })
  t.match(issues.filter((issue) => issue.variable === 'TLS_PROFILE'), [{ message: /must be one of intermediate, modern/ }])
  t.match(issues.filter((issue) => issue.variable === 'TLS_CERT_FILE'), [{ message: /is required with TLS_MODE=files/ }], 'TLS_CERT_FILE is named too')
  t.match(issues.filter((issue) => issue.variable === 'TLS_KEY_FILE'), [{ message: /is required with TLS_MODE=files/ }], 'and TLS_KEY_FILE')
  const acme = issuesOf({ TLS_MODE: 'acme', HTTP2: 'maybe' })
  t.ok(acme.some((issue) => issue.variable === 'HTTP2'), 'HTTP2 is reported')
  t.ok(acme.some((issue) => issue.variable === 'ACME_DOMAINS'), 'and the ACME settings missing beside it')
  const mode = issuesOf({ TLS_MODE: 'filez', TLS_PROFILE: 'moderne' })
  t.notOk(mode.some((issue) => issue.variable === 'TLS_CERT_FILE'), 'a mistyped TLS_MODE is its own problem: nothing is asked of a mode not chosen')
})

t.test('REDIS_URL is a URL: host, port 1 to 65535, a database number as its path', async (t) => {
  const base = { TLS_MODE: 'proxy', TRUST_PROXY: '10.0.0.1', SESSION_STORE: 'redis' }
  for (const [url, why] of [
    ['redis://:s3cret-pass@10.0.0.5:xx', /is not a valid URL/],
    ['redis://10.0.0.5:70000', /is not a valid URL|port outside 1 to 65535/],
    ['redis://10.0.0.5:0', /port outside 1 to 65535/],
    ['redis://10.0.0.5:6379/zero', /database number/],
    ['redis://', /must be a redis|has no host|not a valid URL/],
    ['localhost:6379', /must be a redis:\/\/ or rediss:\/\/ URL/]
  ] as const) {
    const redis = issuesOf({ ...base, REDIS_URL: url }).filter((issue) => issue.variable === 'REDIS_URL')
    t.equal(redis.length, 1, `${url}: one problem`)
    t.match(redis[0]?.message, why, url)
    t.notMatch(redis[0]?.message, /s3cret/, 'the password is never quoted')
  }
  for (const url of ['redis://127.0.0.1:6379', 'rediss://:pw@redis.internal:6380/2', 'redis://[::1]:6379', 'redis://cache', 'redis://user:p%40ss@10.0.0.5:6379/0?family=6']) {
    t.equal(redisUrlProblem(url), null, `${url} is accepted`)
  }
})

t.test('redisUrlProblem, fuzzed: never throws, linear in its input', async (t) => {
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (text) => {
    const problem = redisUrlProblem(`redis://${text}`)
    return problem === null || typeof problem === 'string'
  }), { numRuns: 5000 })
  const grown = growth((n) => `redis://${'a'.repeat(n)}:${'9'.repeat(n)}/${'1'.repeat(n)}`, redisUrlProblem, [1000, 2000, 4000, 8000], { rounds: 21, repeat: 20 })
  t.ok(grown.exponent < 1.5, `time grows linearly with the URL's length: ${grown.text}`)
})
