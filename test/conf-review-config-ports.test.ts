/**
 * HTTP_PORT equal to PORT on the same address is refused by loadConfig, naming HTTP_PORT: the
 * redirect listener could never listen there. Before, the configuration passed and the redirect
 * listener failed with EADDRINUSE after the app had started, leaving plain HTTP unanswered.
 */
import t from 'tap'
import { loadConfig, resolveConfig } from '../index.ts'
import { configErrorOf } from './helpers/config.ts'

t.test('HTTP_PORT = PORT is refused; 0 (a free port each) and other addresses are not', async (t) => {
  t.match(configErrorOf(() => loadConfig({ PORT: '8443', HTTP_PORT: '8443' })).message, /HTTP_PORT: is 8443, the port of the app \(PORT\) on the same address: the HTTP redirect listener needs a port of its own; use e\.g\. 8080, or HTTP_PORT=off/)
  t.match(configErrorOf(() => loadConfig({ HTTP_PORT: '8443' })).message, /HTTP_PORT: is 8443, the port of the app/, 'PORT by default is 8443')
  t.ok(loadConfig({ PORT: '0', HTTP_PORT: '0' }), 'both 0: each gets a free port')
  t.ok(loadConfig({ PORT: '8443', HTTP_PORT: 'off' }))
  t.ok(loadConfig({ TLS_MODE: 'proxy', TRUST_PROXY: '127.0.0.1', PORT: '3000', HTTP_PORT: '3000' }), 'no listener behind a proxy: the redirect is a hook of the app')
  t.ok(resolveConfig({ port: 8443, httpsRedirect: { port: 8443, host: '10.0.0.5' } }), 'another address: both can listen')
})
