/**
 * The suite with everything on, as a user runs it in production (see suite-app.ts): TLS from
 * certificate files, the HTTP redirect listener, proxy trust, HSTS, the security headers, the
 * session with a configured key and the production error handler.
 */
import { serveSuite } from './suite-app.ts'
import { sessionRoutes } from './routes.ts'

await serveSuite(true, sessionRoutes)
