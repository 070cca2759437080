/**
 * The suite with everything on, as a user would run it: `serverOptions` + `secureHttps` with a
 * self-signed certificate (the runner's pair, already in the TLS_DIR cache), the HTTP redirect
 * listener on a free port, HSTS for a real host name (so the header is sent: it is skipped only for
 * localhost), the security headers, the session with a configured key, and the production error
 * handler.
 */
import { serveSuite } from './suite-app.js'
import { sessionRoutes } from './routes.js'

await serveSuite(true, sessionRoutes)
