/**
 * The suite without its session, as a user runs it in production (see suite-app.ts): TLS from
 * certificate files, the redirect listener, proxy trust, HSTS, the security headers and the
 * production error handler. Against bare Fastify it gives the cost of the headers (and the hooks
 * deciding them) alone.
 */
import { serveSuite } from './suite-app.ts'

await serveSuite(false, (app) => { app.get('/anonymous', async () => ({ hello: 'world' })) })
