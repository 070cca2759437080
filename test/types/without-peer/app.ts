/**
 * An app with the session section off that never imports @fastify/secure-session: the suite's
 * declarations add no request.session (it would be a 500 at run time). Compiled by
 * test/types.test.ts with skipLibCheck false, against the built declarations (dist/).
 */
import Fastify from 'fastify'
import secureHttps, { loadConfig, serverOptions } from 'fastify-secure-https'

const config = { ...loadConfig(process.env), secureSession: false as const }
const app = Fastify({ ...(await serverOptions(config)) })
await app.register(secureHttps, config)

app.get('/', async (request) => {
  // @ts-expect-error request.session is not declared when nothing imports @fastify/secure-session
  return { user: request.session.get('user') }
})

export default app
