/**
 * The `suite` variant with Prometheus metrics on (METRICS=true: the metrics plugin, prom-client's
 * default process metrics, the metrics listener on a free loopback port), the same production
 * configuration otherwise, to be measured side by side with `suite` in the same run: with no event
 * firing (no tampered cookie, no redirect, no reload), the anonymous, read and write paths must
 * cost what they cost without metrics. The runner's keep-alive connections make one handshake
 * each, counted once. Needs prom-client (a dev dependency here, an optional peer for apps).
 * @internal
 */
import { serveSuite } from './suite-app.ts'
import { sessionRoutes } from './routes.ts'

process.env.METRICS = 'true'
process.env.METRICS_PORT = '0'
await serveSuite(true, sessionRoutes)
