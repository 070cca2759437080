/**
 * The demo app: a login page in the style of the Flask HTTPS tutorials, on top of the suite.
 * Routes (stable, the tests use them): GET /, POST /login, GET /dashboard, GET /api/me,
 * POST /logout, GET /healthz.
 */
import formbody from '@fastify/formbody'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify'
import secureHttps, { serverOptions, type SecureHttpsConfig } from 'fastify-secure-https'

// request.session is @fastify/secure-session's session: its values are typed there.
declare module '@fastify/secure-session' {
  interface SessionData {
    user: string
  }
}

const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function page (title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escape(title)}</title></head>
<body>
<main>
<h1>${escape(title)}</h1>
${body}
</main>
</body>
</html>
`
}

const USER = /^[\p{L}\p{N}_.@-]{1,64}$/u

/** Builds the demo app for a resolved config; the caller listens. */
export async function buildDemo (config: SecureHttpsConfig, fastifyOptions: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ ...fastifyOptions, ...(await serverOptions(config)) }) as unknown as FastifyInstance
  await app.register(formbody)
  await app.register(secureHttps, config)
  const csrf = config.secureSession !== false && config.secureSession.csrf
  // With SESSION_CSRF=true every form carries the session's CSRF token; the plugin checks it on POST.
  const csrfField = (reply: FastifyReply): string => csrf ? `<input type="hidden" name="_csrf" value="${escape(reply.generateCsrf())}">` : ''

  app.get('/', async (request, reply) => {
    const user = config.secureSession === false ? undefined : request.session.get('user')
    const status = user === undefined
      ? '<p id="status">Not logged in.</p>'
      : `<p id="status">Logged in as <strong id="user">${escape(user)}</strong>. <a href="/dashboard">Dashboard</a></p>`
    return reply.type('text/html; charset=utf-8').send(page('fastify-secure-https demo', `${status}
<form method="post" action="/login">${csrfField(reply)}
<label>User <input id="login-user" name="user" autocomplete="username" required maxlength="64"></label>
<button id="login" type="submit">Log in</button>
</form>
<form method="post" action="/logout">${csrfField(reply)}<button id="logout" type="submit">Log out</button></form>`))
  })

  app.post<{ Body: { user?: unknown } | undefined }>('/login', async (request, reply) => {
    const user = request.body?.user
    if (typeof user !== 'string' || !USER.test(user)) {
      return reply.code(400).type('text/html; charset=utf-8').send(page('Log in', '<p>A user name is 1 to 64 letters, digits, or _ . @ -</p><p><a href="/">Back</a></p>'))
    }
    // A new session at login, so that a session planted before it (fixation) is worth nothing.
    request.session.regenerate()
    request.session.set('user', user)
    return reply.redirect('/dashboard', 303)
  })

  app.get('/dashboard', async (request, reply) => {
    const user = request.session.get('user')
    if (user === undefined) return reply.redirect('/', 303)
    return reply.type('text/html; charset=utf-8').send(page('Dashboard', `<p>Welcome, <strong id="user">${escape(user)}</strong>.</p>
<form method="post" action="/logout">${csrfField(reply)}<button id="logout" type="submit">Log out</button></form>`))
  })

  app.get('/api/me', async (request) => ({ user: request.session.get('user') ?? null }))

  app.post('/logout', async (request, reply) => {
    request.session.delete()
    return reply.redirect('/', 303)
  })

  app.get('/healthz', async (_request, reply) => reply.type('text/plain; charset=utf-8').send('ok'))

  return app
}
