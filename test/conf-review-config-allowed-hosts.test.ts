/**
 * ALLOWED_HOSTS set to something that is not a list of host names: the report says what is wrong
 * with the value given, not that ALLOWED_HOSTS "is required" (which it was, and was set). Before,
 * in production, the entry's own problem was dropped in favour of the follow-ups of an empty list.
 */
import t from 'tap'
import { loadConfig, resolveConfig } from '../index.ts'
import { configErrorOf } from './helpers/config.ts'

const production = { NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: '127.0.0.1', SESSION_KEYS: 'ylE0anVsDPz1Szgj+866K888dHSbhoeUD9uLsmorf6c=' }

t.test('loadConfig in production: the entry\'s problem, and no "is required"', async (t) => {
  for (const value of ['exa mple.com', 'https://example.com/', '*']) {
    const error = configErrorOf(() => loadConfig({ ...production, ALLOWED_HOSTS: value }))
    const lines = error.issues.filter((issue) => issue.variable === 'ALLOWED_HOSTS').map((issue) => issue.message)
    t.equal(lines.length, 1, `${value}: one line for ALLOWED_HOSTS`)
    t.match(lines[0], /is not a host name/, `${value}: says what is wrong with the value`)
    t.notOk(lines.some((line) => /is required|is empty/.test(line)), `${value}: not that it is missing`)
  }
  const unset = configErrorOf(() => loadConfig(production))
  t.match(unset.message, /ALLOWED_HOSTS: is required in production/, 'unset, it is required')
  const empty = configErrorOf(() => loadConfig({ ...production, ALLOWED_HOSTS: ' , ' }))
  t.match(empty.message, /ALLOWED_HOSTS: is required in production/, 'only commas: required too')
})

t.test('code options: the same, without follow-ups under other sections', async (t) => {
  const error = configErrorOf(() => resolveConfig({ production: true, tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'] }, secureSession: { keys: [production.SESSION_KEYS] }, allowedHosts: ['exa mple.com'] }))
  t.strictSame(error.issues.map((issue) => issue.path), ['allowedHosts.0'], 'the entry only: no hostAuthorization.allowedHosts, httpsRedirect.allowedHosts or tls.hosts')
})
