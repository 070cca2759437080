/**
 * The suite variant built from another checkout (`--baseline PATH`: its `dist/index.js`), with the
 * same production environment, routes and requests as `suite`: a change measured before and after
 * in the same run, side by side with bare Fastify and the control.
 * @internal
 */
import { pathToFileURL } from 'node:url'
import { sessionRoutes } from './routes.ts'
import { serveSuite, type SuitePackage } from './suite-app.ts'

const path = process.env.BENCH_BASELINE
if (path === undefined || path === '') throw new Error('BENCH_BASELINE is not set: run the benchmark with --baseline PATH')
const baseline = await import(pathToFileURL(path).href) as SuitePackage

await serveSuite(true, sessionRoutes, baseline)
