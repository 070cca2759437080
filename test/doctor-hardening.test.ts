/**
 * The doctor's host, cross-site and proxy checks: what the production rules refuse, and what only
 * code options can turn off.
 */
import t from 'tap'
import { doctor, doctorConfig, resolveConfig } from '../index.ts'

const KEY = Buffer.from('484707b40cafa9a93c62a3a2eea911371f5d13fd06e54164d1e33967b13ba709', 'hex').toString('base64')
const ENV = { NODE_ENV: 'production', TLS_MODE: 'proxy', TRUST_PROXY: '127.0.0.1', SESSION_KEYS: KEY, ALLOWED_HOSTS: 'example.com', HTTP_PORT: 'off' }
const status = (report: { checks: Array<{ id: string, status: string, message: string }> }, id: string) => report.checks.find((check) => check.id === id)

t.test('SH-HOST-001: ALLOWED_HOSTS is required in production, even without the redirect', async (t) => {
  const { ALLOWED_HOSTS: _omitted, ...withoutHosts } = ENV
  t.equal(status(await doctor(withoutHosts), 'SH-HOST-001')?.status, 'fail')
  t.equal(status(await doctor(ENV), 'SH-HOST-001')?.status, 'pass')
  const open = resolveConfig({ production: true, tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'] }, allowedHosts: ['example.com'], secureSession: { keys: [KEY] }, hostAuthorization: false })
  t.match(status(await doctorConfig(open), 'SH-HOST-001'), { status: 'fail', message: /host authorization is off/ })
})

t.test('SH-CSRF-001: cross-site protection on, no plain-HTTP trusted origin', async (t) => {
  t.equal(status(await doctor(ENV), 'SH-CSRF-001')?.status, 'pass')
  t.match(status(await doctor({ ...ENV, CROSS_SITE_TRUSTED_ORIGINS: 'http://front.example.com' }), 'SH-CSRF-001'), { status: 'fail', message: /plain-HTTP/ })
  const off = resolveConfig({ production: true, tls: { mode: 'proxy' }, proxyTrust: { trust: ['127.0.0.1'] }, allowedHosts: ['example.com'], secureSession: { keys: [KEY] }, crossSite: false })
  t.equal(status(await doctorConfig(off), 'SH-CSRF-001')?.status, 'fail')
})

t.test('SH-PROXY-001: a trust covering the internet fails, however it is written', async (t) => {
  for (const trust of ['::ffff:0:0/96', '0.0.0.0/1,128.0.0.0/1', '0.0.0.0/0', '::/0']) {
    t.equal(status(await doctor({ ...ENV, TRUST_PROXY: trust }), 'SH-PROXY-001')?.status, 'fail', trust)
  }
})
